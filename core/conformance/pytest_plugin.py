"""pytest plugin (entry point ``pytest11``): the conformance suite as pytest items.

A backend author runs the whole suite, with nothing to clone, by::

    pytest --pyargs genrecnn.conformance --genrecnn-backend NAME

which collects the test shipped in :mod:`genrecnn.conformance.test_backend`
once per (op group, dtype, check case), with ids like
``NAME-conv1d-float32-forward-N2C3W10F4K3``, and for the products once more per
precision the backend offers beyond fp32 (``NAME-conv1d-float32-tf32-forward-...``).
``--genrecnn-dtype``, ``--genrecnn-op`` and ``--genrecnn-precision`` narrow the run. Op groups the backend does not declare are
skipped as unsupported; an unavailable backend is skipped with its reason.

To put the same items into your own suite (like scikit-learn's
``parametrize_with_checks``)::

    from genrecnn.conformance import parametrize_backend_checks

    @parametrize_backend_checks("mybackend")
    def test_mybackend(genrecnn_check):
        genrecnn_check()

This module is loaded in every pytest session where genrecnn is installed,
so it imports nothing heavy until a test asks for ``genrecnn_check``.
"""
from __future__ import annotations

import pytest

FIXTURE = "genrecnn_check"
HOW = "pytest --pyargs genrecnn.conformance --genrecnn-backend NAME"


def pytest_addoption(parser):
    group = parser.getgroup("genrecnn", "genrecnn backend conformance")
    group.addoption("--genrecnn-backend", action="append", default=[], metavar="NAME",
                    help="run the genrecnn conformance suite against this backend (repeatable)")
    group.addoption("--genrecnn-dtype", action="append", default=[], metavar="DTYPE",
                    help="only this dtype: float32, float64 or int32 (repeatable)")
    group.addoption("--genrecnn-op", action="append", default=[], metavar="OP",
                    help="only this op group, e.g. conv1d (repeatable)")
    group.addoption("--genrecnn-precision", action="append", default=[], metavar="PRECISION",
                    help="only this precision of the products: fp32, tf32 or bf16 (repeatable)")


class BackendCheck:
    """One conformance case bound to a backend name; calling it runs the case.

    Resolving the backend waits until the call, so collection never starts a
    GPU. Carries a skip reason (unavailable backend, unsupported op) or a
    declaration error instead of a case where that is all there is to say.
    """

    def __init__(self, backend: str, case=None, skip: str = "", error: str = "", tag: str = ""):
        self.backend, self.case, self.skip, self.error = backend, case, skip, error
        self.id = f"{backend}-{case.id}" if case is not None else f"{backend}-{tag}"

    def __repr__(self) -> str:
        return f"<BackendCheck {self.id}>"

    def __call__(self) -> None:
        if self.skip:
            pytest.skip(self.skip)
        if self.error:
            pytest.fail(self.error, pytrace=False)
        from genrecnn.errors import GenrecnnError
        from genrecnn.engine.registry import registry
        from .runner import FAIL, run_case
        try:
            be = registry().get(self.backend)
        except GenrecnnError as exc:
            pytest.fail(str(exc), pytrace=False)
        result = run_case(be, self.case)
        if result.status == FAIL:
            pytest.fail(f"{self.id}: {result.detail}", pytrace=False)


def backend_checks(name: str, dtypes=None, ops=None, precisions=None) -> list[BackendCheck]:
    """Every BackendCheck for backend ``name`` (never raises: problems become items)."""
    from genrecnn.errors import GenrecnnError
    from genrecnn.engine.registry import registry
    from .runner import plan

    info = registry().infos.get(name)
    if info is None or info.cls is None:
        known = ", ".join(registry().names()) or "none"
        reason = info.reason if info is not None else f"unknown backend; installed: {known}"
        if info is not None and not info.available:
            return [BackendCheck(name, skip=f"backend {name!r} unavailable: {reason}",
                                 tag="unavailable")]
        return [BackendCheck(name, error=f"backend {name!r}: {reason}", tag="unknown")]
    if not info.available:
        return [BackendCheck(name, skip=f"backend {name!r} unavailable: {info.reason}",
                             tag="unavailable")]
    try:
        rows = plan(info.cls, dtypes or None, ops or None, precisions or None)
    except GenrecnnError as exc:
        return [BackendCheck(name, error=str(exc), tag="setup")]
    out = []
    for group, dtype, precision, reason, cases in rows:
        if reason:
            at = "" if precision == "fp32" else f"-{precision}"
            out.append(BackendCheck(name, skip=f"unsupported: {reason}",
                                    tag=f"{group}-{dtype}{at}-unsupported"))
        else:
            out.extend(BackendCheck(name, case) for case in cases)
    return out


def parametrize_backend_checks(name: str, dtypes=None, ops=None, precisions=None):
    """A ``pytest.mark.parametrize`` over every check of backend ``name`` (argument
    ``genrecnn_check``); call the argument in the test body."""
    checks = backend_checks(name, dtypes, ops, precisions)
    return pytest.mark.parametrize(FIXTURE, checks, ids=[c.id for c in checks])


def pytest_generate_tests(metafunc):
    if FIXTURE not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if FIXTURE in (names.split(",") if isinstance(names, str) else names):
            return                          # the author parametrized it already
    opt = metafunc.config.getoption
    backends = opt("genrecnn_backend")
    if not backends:
        checks = [BackendCheck("none", skip=f"no backend chosen; run: {HOW}", tag="no-backend")]
    else:
        checks = [c for name in backends
                  for c in backend_checks(name, opt("genrecnn_dtype"), opt("genrecnn_op"),
                                          opt("genrecnn_precision"))]
    metafunc.parametrize(FIXTURE, checks, ids=[c.id for c in checks])
