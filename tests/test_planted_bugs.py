"""Proof that the conformance suite can fail: NumPy backends with one planted bug each.

Every bug must be reported as FAIL on exactly the op group (and dtype) where it
lives, with everything else still passing; the unmodified NumPy backend passes.
"""
import numpy as np
import pytest
from click.testing import CliRunner

import genrecnn.engine.registry as registry_mod
from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.cli.main import cli, main
from genrecnn.conformance import FAIL, PASS, UNSUPPORTED, run_conformance
from genrecnn.errors import BackendError
from genrecnn.engine.hookspecs import hookimpl
from genrecnn.engine.ops import Backend


class DenseDwNegated(NumpyBackend):
    name = "bug-dense-dw-sign"

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

    def conv1d_backward(self, x, w, dy):
        dx, dw, _ = super().conv1d_backward(x, w, dy)
        return dx, dw, dy[0].sum(axis=1)                       # forgets all but example 0


class ConvParamsFastPathWrongSign(NumpyBackend):
    name = "bug-conv-params-sign"

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
}


def test_unmodified_numpy_backend_passes():
    report = run_conformance(NumpyBackend())
    assert report.ok and not report.failures, report.text()


@pytest.mark.parametrize("cls", list(PLANTED), ids=lambda c: c.name)
def test_planted_bug_fails_on_the_right_op(cls):
    must_fail, phrase = PLANTED[cls]
    report = run_conformance(cls())
    failed = {(r.group, r.dtype) for r in report.rows if r.status == FAIL}
    assert failed == must_fail, report.text()
    assert not report.ok
    for group, dtype in must_fail:
        row = report.row(group, dtype)
        assert row.failed >= 1 and row.detail
    assert any(phrase in report.row(*key).detail for key in must_fail), report.text()
    assert all(r.status == PASS for r in report.rows if (r.group, r.dtype) not in must_fail)


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
        return [ConvDbFirstExample, DeclaresMissingOp, DeclaresUnknownOp]


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
