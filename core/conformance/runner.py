"""Running the cases against a backend and reporting one row per (op group, dtype), and
for the products one more per precision the backend offers beyond fp32.

Nothing a backend does can crash the run: a case that raises is a FAIL with
the exception in its detail. Op groups a backend does not declare are
UNSUPPORTED, not failed. A backend whose declaration is itself broken (an
unknown op name or precision, an op declared without its methods, or tf32 / bf16
offered by products that take no ``precision``) is a BackendError.
"""
from __future__ import annotations

import inspect
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from genrecnn.errors import BackendError, GenrecnnError
from genrecnn.fsutil import json_text
from genrecnn.engine.ops import (DEFAULT_PRECISION, DTYPES, GROUP_OF_METHOD, OP_GROUPS,
                                 PRECISION_METHODS, PRECISIONS, Backend)

from .cases import INDEX, Case, cases_for
from .checks import CheckFailed

_HERE = Path(__file__).parent
PASS, FAIL, UNSUPPORTED = "pass", "fail", "unsupported"
ALL_DTYPES = DTYPES + (INDEX,)
_GROUP_OF = GROUP_OF_METHOD | {g.name: g.name for g in OP_GROUPS}


@dataclass
class CaseResult:
    id: str
    group: str
    dtype: str
    check: str
    label: str
    status: str
    error: float | None = None
    detail: str = ""
    seconds: float = 0.0
    precision: str = DEFAULT_PRECISION


@dataclass
class Row:
    """The table row of one op group at one dtype and precision."""

    group: str
    dtype: str
    status: str
    checks: int = 0
    failed: int = 0
    largest_error: float | None = None
    detail: str = ""
    precision: str = DEFAULT_PRECISION


@dataclass
class Report:
    backend: str
    rows: list[Row] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every declared op group passed at every dtype run."""
        return all(r.status != FAIL for r in self.rows)

    @property
    def failures(self) -> list[CaseResult]:
        return [c for c in self.cases if c.status == FAIL]

    def row(self, group: str, dtype: str, precision: str = DEFAULT_PRECISION) -> Row:
        return next(r for r in self.rows
                    if r.group == group and r.dtype == dtype and r.precision == precision)

    def as_dict(self) -> dict:
        return {"backend": self.backend, "ok": self.ok, "seconds": round(self.seconds, 3),
                "rows": [asdict(r) for r in self.rows],
                "failures": [asdict(c) for c in self.failures]}

    def to_json(self) -> str:
        return json_text(self.as_dict())

    def summary(self) -> str:
        """One line per precision run: fp32's as ``backend 'x': ...``, the others as
        ``backend 'x' [tf32]: ...``."""
        lines = []
        for precision in dict.fromkeys(r.precision for r in self.rows):
            rows = [r for r in self.rows if r.precision == precision]
            n = sum(r.checks for r in rows)
            failed = sum(r.failed for r in rows)
            seconds = sum(c.seconds for c in self.cases if c.precision == precision)
            unsupported = sorted({r.group for r in rows if r.status == UNSUPPORTED})
            at = "" if precision == DEFAULT_PRECISION else f" [{precision}]"
            text = (f"backend {self.backend!r}{at}: {n - failed}/{n} checks passed, {failed} "
                    f"failed in {seconds:.1f} s")
            if unsupported:
                text += f"; unsupported: {', '.join(unsupported)}"
            lines.append(text)
        return "\n".join(lines) or f"backend {self.backend!r}: no checks run"

    def table(self):
        """A rich Table: op group | dtype | result | checks | largest error | first failure
        (the dtype of a row at tf32 or bf16 reads ``float32/tf32``)."""
        from rich.table import Table
        table = Table(title=f"conformance of backend {self.backend!r}")
        for col, kw in (("op group", {}), ("dtype", {}), ("result", {}),
                        ("checks", {"justify": "right"}), ("largest error", {"justify": "right"}),
                        ("first failure", {"overflow": "fold"})):
            table.add_column(col, **kw)
        style = {PASS: "green", FAIL: "bold red", UNSUPPORTED: "yellow"}
        for r in self.rows:
            table.add_row(r.group, _dtype_cell(r), f"[{style[r.status]}]{r.status.upper()}[/]",
                          str(r.checks), _fmt_err(r.largest_error), r.detail)
        return table

    def text(self) -> str:
        """The same table as plain text (for assertion messages and logs)."""
        lines = [f"{'op group':<12} {'dtype':<8} {'result':<12} {'checks':>6} {'largest err':>12}"
                 f"  first failure"]
        for r in self.rows:
            lines.append(f"{r.group:<12} {_dtype_cell(r):<8} {r.status.upper():<12} {r.checks:>6} "
                         f"{_fmt_err(r.largest_error):>12}  {r.detail}")
        lines.append(self.summary())
        return "\n".join(lines)


def _fmt_err(err: float | None) -> str:
    return "-" if err is None else f"{err:.2e}"


def _dtype_cell(r: Row) -> str:
    """The row's dtype, with its precision where that is not fp32 (``float32/bf16``)."""
    return r.dtype if r.precision == DEFAULT_PRECISION else f"{r.dtype}/{r.precision}"


def check_declaration(cls: type[Backend]) -> frozenset[str]:
    """The declared op groups; a BackendError if a declared op lacks its methods."""
    declared = cls.declared_ops()          # raises BackendError for unknown op names
    for group in OP_GROUPS:
        if group.name not in declared:
            continue
        missing = [m for m in group.methods if getattr(cls, m) is getattr(Backend, m)]
        if missing:
            raise BackendError(
                f"backend {cls.name!r} declares op {group.name!r} but does not implement "
                f"{', '.join(missing)}; implement it or drop {group.name!r} from its ops")
    bad = sorted(set(cls.dtypes) - set(DTYPES))
    if bad:
        raise BackendError(f"backend {cls.name!r} declares unknown dtype(s) {', '.join(bad)}; "
                           f"the contract's dtypes are {', '.join(DTYPES)}")
    check_precisions(cls, declared)
    return declared


def check_precisions(cls: type[Backend], declared: frozenset[str]) -> None:
    """A BackendError if ``cls`` declares an unknown precision, or offers tf32 / bf16
    through a product method that takes no ``precision`` argument."""
    bad = sorted(set(cls.precisions) - set(PRECISIONS))
    if bad:
        raise BackendError(f"backend {cls.name!r} declares unknown precision(s) "
                           f"{', '.join(bad)}; the contract's are {', '.join(PRECISIONS)}")
    if set(cls.precisions) <= {DEFAULT_PRECISION}:
        return
    deaf = [m for m in PRECISION_METHODS if GROUP_OF_METHOD[m] in declared
            and "precision" not in inspect.signature(getattr(cls, m)).parameters]
    if deaf:
        raise BackendError(
            f"backend {cls.name!r} offers precisions {', '.join(cls.precisions)} but "
            f"{', '.join(deaf)} {'takes' if len(deaf) == 1 else 'take'} no precision "
            f"argument; add precision=\"fp32\" to its signature or declare "
            f"precisions = (\"fp32\",)")


def resolve_backend(backend_or_name, registry=None) -> Backend:
    """A backend instance from a name (through the registry), a class or an instance."""
    if isinstance(backend_or_name, Backend):
        return backend_or_name
    if isinstance(backend_or_name, type) and issubclass(backend_or_name, Backend):
        return backend_or_name()
    if isinstance(backend_or_name, str):
        if registry is None:
            from genrecnn.engine.registry import registry as default_registry
            registry = default_registry()
        return registry.get(backend_or_name)
    raise BackendError(f"cannot test {backend_or_name!r}: give a backend name, class or instance")


def select_groups(ops) -> list[str]:
    """Op-group names from ``ops`` (group or method names); every group when None."""
    if not ops:
        return [g.name for g in OP_GROUPS]
    chosen = []
    for op in ops:
        if op not in _GROUP_OF:
            raise GenrecnnError(f"unknown op {op!r}; choose one of "
                                f"{', '.join(g.name for g in OP_GROUPS)}")
        if _GROUP_OF[op] not in chosen:
            chosen.append(_GROUP_OF[op])
    return [g.name for g in OP_GROUPS if g.name in chosen]


def select_dtypes(dtypes, be: Backend) -> list[str]:
    """The declared float dtypes plus int32 (transfers) when None; else the ones asked."""
    if not dtypes:
        return [d for d in DTYPES if d in be.dtypes] + [INDEX]
    for d in dtypes:
        if d not in ALL_DTYPES:
            raise GenrecnnError(f"unknown dtype {d!r}; choose one of {', '.join(ALL_DTYPES)}")
    return [d for d in ALL_DTYPES if d in dtypes]


def select_precisions(precisions, be) -> list[str]:
    """The precisions the backend offers when None (fp32 first); else the ones asked."""
    if not precisions:
        return [p for p in PRECISIONS if p == DEFAULT_PRECISION or p in be.precisions]
    for p in precisions:
        if p not in PRECISIONS:
            raise GenrecnnError(f"unknown precision {p!r}; choose one of {', '.join(PRECISIONS)}")
    return [p for p in PRECISIONS if p in precisions]


def run_case(be: Backend, case: Case) -> CaseResult:
    """Run one case; never raises (a raising backend is a FAIL with the exception)."""
    start = time.perf_counter()
    result = CaseResult(case.id, case.group, case.dtype, case.check, case.label, PASS,
                        precision=case.precision)
    try:
        result.error = case.run(be)
    except CheckFailed as exc:
        result.status, result.error, result.detail = FAIL, exc.error, f"{case.check} {case.label}: {exc}"
    except Exception as exc:  # the backend's own bug: report it, keep going
        frames = traceback.extract_tb(exc.__traceback__)
        outside = [f for f in frames if f"{_HERE}" not in f.filename]
        where = (outside or frames)[-1]
        result.status = FAIL
        result.detail = (f"{case.check} {case.label}: raised {type(exc).__name__}: {exc} "
                         f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})")
    result.seconds = time.perf_counter() - start
    return result


def plan(be, dtypes=None, ops=None, precisions=None
         ) -> list[tuple[str, str, str, str | None, list[Case]]]:
    """(group, dtype, precision, reason it is unsupported or None, cases) for every row
    to report: fp32's rows first, then the products' at each further precision.

    ``be`` is a backend instance or class (the pytest plugin plans from the class).
    """
    declared = check_declaration(be if isinstance(be, type) else type(be))
    rows = []
    for precision in select_precisions(precisions, be):
        for group in select_groups(ops):
            for dtype in select_dtypes(dtypes, be):
                cases = cases_for(group, dtype, precision)
                if not cases:
                    continue
                reason = None
                if group not in declared:
                    reason = f"backend {be.name!r} does not declare op {group!r}"
                elif dtype != INDEX and dtype not in be.dtypes:
                    reason = f"backend {be.name!r} does not declare dtype {dtype}"
                elif precision != DEFAULT_PRECISION and precision not in be.precisions:
                    reason = f"backend {be.name!r} does not offer precision {precision}"
                rows.append((group, dtype, precision, reason, cases))
    return rows


def run_conformance(backend_or_name, dtypes=None, ops=None, registry=None,
                    on_case=None, precisions=None) -> Report:
    """Run every case for the chosen op groups, dtypes and precisions; return the Report.

    ``backend_or_name`` is a registered name, a Backend class or an instance;
    ``dtypes``/``ops``/``precisions`` narrow the run (None: everything declared);
    ``on_case(result)`` is called after each case (progress).
    """
    be = resolve_backend(backend_or_name, registry)
    report = Report(backend=be.name)
    start = time.perf_counter()
    for group, dtype, precision, reason, cases in plan(be, dtypes, ops, precisions):
        if reason:
            report.rows.append(Row(group, dtype, UNSUPPORTED, detail=reason,
                                   precision=precision))
            continue
        row = Row(group, dtype, PASS, precision=precision)
        for case in cases:
            res = run_case(be, case)
            report.cases.append(res)
            row.checks += 1
            if res.error is not None and res.error == res.error:   # not NaN
                row.largest_error = max(row.largest_error or 0.0, res.error)
            if res.status == FAIL:
                row.failed += 1
                if row.status != FAIL:
                    row.status, row.detail = FAIL, res.detail
            if on_case:
                on_case(res)
        if row.status == FAIL:
            row.detail = f"{row.failed}/{row.checks} failed; first: {row.detail}"
        report.rows.append(row)
    report.seconds = time.perf_counter() - start
    return report
