"""Proof that the conformance suite can fail: NumPy backends with one planted bug each.

Every bug must be reported as FAIL on exactly the op group (and dtype) where it
lives, with the rest of that group passing. Each planted class overrides only
methods of its own op groups, so every other group runs the NumPy backend's own
code, which passes the whole suite (tests/test_conformance.py).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import genrecnn.engine.registry as registry_mod
from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.cli.main import cli, main
from genrecnn.conformance import FAIL, PASS, UNSUPPORTED, cases_for, checks, run_conformance
from genrecnn.conformance.cases import updates
from genrecnn.engine.hookspecs import hookimpl
from genrecnn.engine.ops import GROUP_OF_METHOD, Backend
from genrecnn.errors import BackendError


class DenseDwNegated(NumpyBackend):
    name = "bug-dense-dw-sign"
    precisions = ("fp32",)     # its products take no precision: planted at fp32

    def dense_backward(self, x, w, dy):
        dx, dw, db = super().dense_backward(x, w, dy)
        return dx, -dw, db


class PoolWindowsShifted(NumpyBackend):
    name = "bug-pool-off-by-one"

    def maxpool1d(self, x, size, stride):
        shifted = np.concatenate([x[:, :, 1:], x[:, :, -1:]], axis=2)   # windows start one late
        y, arg = super().maxpool1d(shifted, size, stride)
        return y, np.minimum(arg + 1, x.shape[2] - 1).astype(np.int32)


class ConvDowncasts(NumpyBackend):
    name = "bug-conv-downcast"
    precisions = ("fp32",)     # its products take no precision: planted at fp32

    def conv1d(self, x, w, b):
        return super().conv1d(x, w, b).astype(np.float32)


class NaiveSoftmax(NumpyBackend):
    name = "bug-softmax-no-max"

    def softmax(self, logits):
        with np.errstate(all="ignore"):
            e = np.exp(logits)
            return e / e.sum(axis=1, keepdims=True)

    def softmax_cross_entropy(self, logits, labels):
        p = self.softmax(logits)
        with np.errstate(all="ignore"):
            return float(-np.log(p[np.arange(len(labels)), labels]).mean()), p


class ReluInPlace(NumpyBackend):
    name = "bug-mutates-input"

    def activation(self, kind, x, slope=0.01):
        if kind == "relu":
            np.maximum(x, 0, out=x)
            return x.copy()
        return super().activation(kind, x, slope)


class ConvDbFirstExample(NumpyBackend):
    name = "bug-conv-db"
    precisions = ("fp32",)     # its products take no precision: planted at fp32

    def conv1d_backward(self, x, w, dy):
        dx, dw, _ = super().conv1d_backward(x, w, dy)
        return dx, dw, dy[0].sum(axis=1)                       # forgets all but example 0


class ConvParamsFastPathWrongSign(NumpyBackend):
    name = "bug-conv-params-sign"
    precisions = ("fp32",)     # its products take no precision: planted at fp32

    def conv1d_backward_params(self, x, w, dy):
        dw, db = super().conv1d_backward_params(x, w, dy)
        return -dw, db                                          # only the first layer sees this


class PoolBackwardIgnoresOverlap(NumpyBackend):
    name = "bug-pool-overlap"

    def maxpool1d_backward(self, dy, argmax, width):
        dx = np.zeros(dy.shape[:2] + (width,), dtype=dy.dtype)
        np.put_along_axis(dx, argmax.astype(np.intp), dy, axis=2)   # last write wins
        return dx


class SgdNotInPlace(NumpyBackend):
    name = "bug-sgd-rebinds"

    def sgd_update(self, param, grad, velocity, lr, momentum, weight_decay):
        velocity = momentum * velocity - lr * (grad + weight_decay * param)
        param = param + velocity                                   # new arrays, caller sees nothing


class ArgmaxInt64(NumpyBackend):
    name = "bug-argmax-int64"

    def global_pool(self, x):
        y, arg = super().global_pool(x)
        return y, arg.astype(np.int64)


class GlobalPoolRaises(NumpyBackend):
    name = "bug-raises"

    def global_pool_backward(self, x, y, argmax, dy):
        raise RuntimeError("kernel launch failed")


class MaxPoolIgnoresNaN(NumpyBackend):
    """Compares with '>' only, as a kernel might: a NaN never wins its window."""

    name = "bug-pool-ignores-nan"

    def maxpool1d(self, x, size, stride):
        return super().maxpool1d(np.where(np.isnan(x), -np.inf, x), size, stride)


class ReluZeroesNaN(NumpyBackend):
    """ReLU as where(x > 0, x, 0), as a kernel might: a NaN becomes 0 and a diverging
    network goes on as if nothing happened."""

    name = "bug-relu-zeroes-nan"

    def activation(self, kind, x, slope=0.01):
        if kind == "relu":
            return np.where(x > 0, x, x.dtype.type(0))
        return super().activation(kind, x, slope)


class ConvOutputNotContiguous(NumpyBackend):
    """Right values, but laid out [F, N, Wo] in memory (a transposed view)."""

    name = "bug-conv-layout"
    precisions = ("fp32",)     # its products take no precision: planted at fp32

    def conv1d(self, x, w, b):
        y = super().conv1d(x, w, b)
        return np.ascontiguousarray(y.transpose(1, 0, 2)).transpose(1, 0, 2)


class CrossEntropyGradHalfN(NumpyBackend):
    """Divides by N rounded to half precision: 2e-4 off for N = 5 or 300, which an
    absolute error on outputs below 1 (the suite's former measure) did not see."""

    name = "bug-xent-grad-half-n"

    def softmax_cross_entropy_backward(self, probs, labels):
        n = len(labels)
        g = probs.copy()
        g[np.arange(n), labels] -= 1
        return g * g.dtype.type(np.float16(1 / n))


class AdamStepTooLarge(NumpyBackend):
    """Adam whose step is 0.2% too large (a bias correction slightly off)."""

    name = "bug-adam-step-0.2pct"
    excess = 0.002

    def adam_update(self, param, grad, m, v, *args, **kwargs):
        old = param.copy()
        super().adam_update(param, grad, m, v, *args, **kwargs)
        param += param.dtype.type(self.excess) * (param - old)


class AdamStepHalfPercentTooLarge(AdamStepTooLarge):
    name = "bug-adam-step-0.5pct"
    excess = 0.005


# backend -> (the rows that must fail, a phrase the first failure must contain)
PLANTED = {
    DenseDwNegated: ({("dense", "float32"), ("dense", "float64")}, "dense_backward dw"),
    PoolWindowsShifted: ({("maxpool1d", "float32"), ("maxpool1d", "float64")}, "maxpool1d"),
    ConvDowncasts: ({("conv1d", "float64")}, "dtype float32, expected float64"),
    NaiveSoftmax: ({("softmax", "float32"), ("softmax", "float64")}, "huge-logits"),
    ReluInPlace: ({("activation", "float32"), ("activation", "float64")},
                  "modified its input 'x'"),
    ConvDbFirstExample: ({("conv1d", "float32"), ("conv1d", "float64")}, "conv1d_backward db"),
    ConvParamsFastPathWrongSign: ({("conv1d", "float32"), ("conv1d", "float64")},
                                  "conv1d_backward_params dw"),
    PoolBackwardIgnoresOverlap: ({("maxpool1d", "float32"), ("maxpool1d", "float64")},
                                 "maxpool1d_backward dx"),
    SgdNotInPlace: ({("sgd_update", "float32"), ("sgd_update", "float64")}, "in place"),
    ArgmaxInt64: ({("global_pool", "float32"), ("global_pool", "float64")},
                  "argmax has dtype int64, expected int32"),
    GlobalPoolRaises: ({("global_pool", "float32"), ("global_pool", "float64")},
                       "raised RuntimeError: kernel launch failed"),
    MaxPoolIgnoresNaN: ({("maxpool1d", "float32"), ("maxpool1d", "float64")},
                        "-nan: maxpool1d y"),
    ReluZeroesNaN: ({("activation", "float32"), ("activation", "float64")},
                    "activation(relu) y"),
    ConvOutputNotContiguous: ({("conv1d", "float32"), ("conv1d", "float64")},
                              "conv1d y is not C-contiguous"),
    CrossEntropyGradHalfN: ({("softmax", "float32"), ("softmax", "float64")},
                            "softmax_cross_entropy_backward"),
    AdamStepTooLarge: ({("adam_update", "float32"), ("adam_update", "float64")},
                       "adam_update param (in place)"),
}
def _groups_overridden(cls) -> set[str]:
    """The op groups whose methods ``cls`` (or a parent below NumpyBackend) overrides."""
    own = {m for c in cls.__mro__[:cls.__mro__.index(NumpyBackend)] for m in vars(c)
           if callable(getattr(Backend, m, None)) and not m.startswith("_")}
    assert own <= set(GROUP_OF_METHOD), f"{cls.name} overrides {own - set(GROUP_OF_METHOD)}"
    return {GROUP_OF_METHOD[m] for m in own}


@pytest.mark.parametrize("cls", list(PLANTED), ids=lambda c: c.name)
def test_planted_bug_fails_on_the_right_op(cls):
    check_planted(cls, *PLANTED[cls])


def check_planted(cls, must_fail: set, phrase: str) -> None:
    """``cls`` overrides exactly the groups of ``must_fail`` ((group, dtype) pairs), fails
    there and only there, says ``phrase`` in a failure, and passes the rest of them."""
    groups = _groups_overridden(cls)
    assert groups == {g for g, _ in must_fail}
    report = run_conformance(cls(), ops=sorted(groups))
    failed = {(r.group, r.dtype) for r in report.rows if r.status == FAIL}
    assert failed == must_fail, report.text()
    assert not report.ok
    for group, dtype in must_fail:
        row = report.row(group, dtype)
        assert row.failed >= 1 and row.detail
    assert any(phrase in report.row(*key).detail for key in must_fail), report.text()
    assert all(r.status == PASS for r in report.rows if (r.group, r.dtype) not in must_fail)


def _former_error(got, ref, slack=0.0):
    """The suite's former measure: max |got - ref| / max(1, max |ref|)."""
    got = np.atleast_1d(np.asarray(got, dtype=np.float64))
    ref = np.atleast_1d(np.asarray(ref, dtype=np.float64))
    diff = np.abs(got - ref)
    worst = int(np.argmax(diff))
    return float(diff.flat[worst]) / max(1.0, float(np.abs(ref).max())), np.unravel_index(
        worst, got.shape)


@pytest.mark.parametrize("cls", [CrossEntropyGradHalfN, AdamStepTooLarge], ids=lambda c: c.name)
def test_the_former_absolute_measure_let_these_float32_bugs_pass(cls, monkeypatch):
    """Put the former rule back (values, not steps; tolerance 1e-4): both bugs pass."""
    monkeypatch.setattr(checks, "relative_error", _former_error)
    monkeypatch.setitem(checks.TOLERANCE, "float32", 1e-4)
    monkeypatch.setattr(updates, "compare_step",
                        lambda what, new, old, ref_new, dtype: checks.compare(what, new, ref_new,
                                                                              dtype))
    (group,) = {g for g, _ in PLANTED[cls][0]}
    report = run_conformance(cls(), dtypes=["float32"], ops=[group])
    assert report.ok, report.text()


def test_gradient_sign_bug_is_also_caught_by_finite_differences():
    report = run_conformance(DenseDwNegated(), dtypes=["float64"], ops=["dense"])
    fd = [c for c in report.failures if c.check == "gradcheck"]
    assert fd and "finite differences" in fd[0].detail


def test_overlap_bug_passes_where_windows_do_not_overlap():
    report = run_conformance(PoolBackwardIgnoresOverlap(), ops=["maxpool1d"])
    failing_labels = {c.label for c in report.failures}
    assert failing_labels and all("stride" in lab for lab in failing_labels)
    assert not any(lab.endswith("size4stride4") for lab in failing_labels)


# -- declarations --------------------------------------------------------------------------

class DeclaresMissingOp(Backend):
    name = "bug-declares-missing"
    ops = frozenset({"transfer", "conv1d"})

    def from_host(self, a):
        return np.array(a)

    def to_host(self, x):
        return np.array(x)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype)

    def conv1d(self, x, w, b):            # conv1d_backward is missing
        return NumpyBackend().conv1d(x, w, b)


class DeclaresUnknownOp(NumpyBackend):
    name = "bug-declares-unknown"
    ops = frozenset({"transfer", "conv3d"})


class DenseOnlyFloat32(Backend):
    """A correct partial backend: it declares only what it has."""

    name = "partial"
    dtypes = ("float32",)
    ops = frozenset({"transfer", "dense"})
    from_host = NumpyBackend.from_host
    to_host = NumpyBackend.to_host
    zeros = NumpyBackend.zeros
    dense = NumpyBackend.dense
    dense_backward = NumpyBackend.dense_backward


def test_declared_but_missing_op_is_a_clear_error():
    with pytest.raises(BackendError, match=r"declares op 'conv1d' but does not implement "
                                           r"conv1d_backward"):
        run_conformance(DeclaresMissingOp())


def test_unknown_declared_op_is_a_clear_error():
    with pytest.raises(BackendError, match=r"declares unknown op\(s\) conv3d"):
        run_conformance(DeclaresUnknownOp())


def test_undeclared_ops_and_dtypes_are_unsupported_not_failed():
    report = run_conformance(DenseOnlyFloat32())
    assert report.ok, report.text()
    status = {(r.group, r.dtype): r.status for r in report.rows}
    assert status[("dense", "float32")] == PASS and status[("transfer", "float32")] == PASS
    assert status[("conv1d", "float32")] == UNSUPPORTED
    assert not any(d == "float64" for _, d in status)          # not declared, not asked
    asked = run_conformance(DenseOnlyFloat32(), dtypes=["float64"], ops=["dense"])
    assert [(r.group, r.dtype, r.status) for r in asked.rows] == [("dense", "float64", UNSUPPORTED)]
    assert asked.ok


# -- the CLI and pytest items on broken backends ----------------------------------------------

class _Plugin:
    @hookimpl
    def genrecnn_backends(self):
        return [ConvDbFirstExample, AdamStepHalfPercentTooLarge, DeclaresMissingOp,
                DeclaresUnknownOp]


ENTRY_POINT_PLUGIN = _Plugin()     # what the entry point of the fake distribution below names


@pytest.fixture
def buggy_registry(monkeypatch):
    reg = registry_mod.build_registry(extra_plugins=[_Plugin()])
    monkeypatch.setattr(registry_mod, "_default", reg)
    return reg


def test_cli_exit_1_and_failure_shown(buggy_registry):
    result = CliRunner().invoke(cli, ["conformance", "--backend", "bug-conv-db", "--op", "conv1d",
                                      "--dtype", "float32"])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "conv1d_backward db" in result.output


def test_cli_exit_1_and_summary_for_a_half_percent_adam_error(buggy_registry, capsys):
    assert main(["conformance", "--backend", "bug-adam-step-0.5pct", "--op", "adam_update"]) == 1
    out = capsys.readouterr().out
    n = sum(len(cases_for("adam_update", d)) for d in ("float32", "float64"))
    assert f"backend 'bug-adam-step-0.5pct': 0/{n} checks passed, {n} failed in " in out
    assert "FAIL" in out and "adam_update param (in place)" in out


def test_cli_declaration_errors_exit_2(buggy_registry, capsys):
    assert main(["conformance", "--backend", "bug-declares-missing"]) == 2
    assert "does not implement conv1d_backward" in capsys.readouterr().err
    assert main(["conformance", "--backend", "bug-declares-unknown"]) == 2
    err = capsys.readouterr().err
    assert "not available" in err and "unknown op(s) conv3d" in err


def test_pytest_items_fail_and_skip(buggy_registry):
    from genrecnn.conformance.pytest_plugin import backend_checks
    checks = backend_checks("bug-conv-db", dtypes=["float32"], ops=["conv1d"])
    outcomes = []
    for check in checks:
        try:
            check()
            outcomes.append("passed")
        except pytest.fail.Exception:
            outcomes.append("failed")
    assert "failed" in outcomes and "passed" in outcomes
    assert len({c.id for c in checks}) == len(checks)
    (declaration,) = backend_checks("bug-declares-missing")
    with pytest.raises(pytest.fail.Exception, match="does not implement"):
        declaration()
    (unknown,) = backend_checks("no-such-backend")
    with pytest.raises(pytest.fail.Exception, match="unknown backend"):
        unknown()


def test_pytest_one_liner_exits_1_on_a_failure(tmp_path):
    """``pytest --pyargs genrecnn.conformance`` in a fresh process, on the NumPy backend and
    on a planted bug installed the way a third party's backend is: through the
    ``genrecnn`` entry point of a distribution (a bare dist-info folder on the path)."""
    info = tmp_path / "genrecnn_planted-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: genrecnn-planted\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(
        "[genrecnn]\nplanted = test_planted_bugs:ENTRY_POINT_PLUGIN\n")
    path = os.pathsep.join([str(tmp_path), str(Path(__file__).parent),
                            os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs",
         "genrecnn.conformance", "--genrecnn-backend", "numpy", "--genrecnn-backend",
         "bug-adam-step-0.5pct", "--genrecnn-op", "adam_update"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True,
        timeout=120)
    n = sum(len(cases_for("adam_update", d)) for d in ("float32", "float64"))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert f"{n} failed, {n} passed" in proc.stdout, proc.stdout[-3000:]
