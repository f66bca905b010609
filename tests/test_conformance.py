"""The conformance suite on every built-in backend (once each), its reference, and its CLI.

Backends that cannot run here (no GPU, package missing) are skipped with the
registry's reason, so CI shows which ones it did not test and why. The example
third-party backend runs the suite in its own tests
(examples/genrecnn-example-backend/tests), as any plugin author would.
"""
import functools
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from genrecnn.cli.main import cli
from genrecnn.conformance import PASS, UNSUPPORTED, reference as ref, run_conformance
from genrecnn.conformance.checks import gradcheck
from genrecnn.engine.ops import OP_GROUPS
from genrecnn.engine.registry import registry
from plugins import needs_example

BUILT_IN = sorted(n for n, info in registry().infos.items() if "genrecnn.backends." in info.plugin)


@functools.cache
def report(name):
    """The whole suite on backend ``name``, run once per test session."""
    return run_conformance(name)


def test_the_suite_runs_on_every_built_in_backend():
    assert {"numpy", "pycuda", "cupy"} <= set(BUILT_IN), BUILT_IN


@pytest.mark.parametrize("name", BUILT_IN)
def test_backend_passes_conformance(name):
    info = registry().infos[name]
    if not info.available:
        pytest.skip(f"backend {name!r} not available here: {info.reason}")
    result = report(name)
    assert result.ok, "\n" + result.text()
    declared = set(info.ops)
    for row in result.rows:
        assert (row.status == UNSUPPORTED) == (row.group not in declared), row
        # a passed group ran checks; an unsupported one ran none
        assert (row.checks > 0) == (row.status == PASS), row


def test_numpy_report_covers_every_group_and_dtype():
    result = report("numpy")
    rows = {(r.group, r.dtype) for r in result.rows}
    for g in OP_GROUPS:
        for dtype in ("float32", "float64"):
            assert (g.name, dtype) in rows
    assert ("transfer", "int32") in rows
    # graph capture is for CUDA backends; every other group passes
    assert all(r.status == (UNSUPPORTED if r.group == "graph" else PASS) for r in result.rows)
    checks = {c.check for c in result.cases}
    assert {"forward", "backward", "gradcheck", "roundtrip", "zeros", "adopt", "reshape",
            "inplace"} <= checks
    # finite differences run in float64 only
    assert {c.dtype for c in result.cases if c.check == "gradcheck"} == {"float64"}


# -- the reference is itself right: its backward ops against finite differences ------------

def _fd_check(f, inputs, grads):
    return gradcheck(f, inputs, grads, np.random.default_rng(0))


def test_reference_conv1d_backward_by_finite_differences():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, 9)), rng.standard_normal((4, 3, 3)), rng.standard_normal(4)
    dy = rng.standard_normal((2, 4, 7))
    dx, dw, db = ref.conv1d_backward(x, w, dy)
    assert _fd_check(lambda x, w, b: (ref.conv1d(x, w, b) * dy).sum(),
                     {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}) < 1e-6


@pytest.mark.parametrize("size,stride", [(3, 3), (4, 3), (3, 2), (4, 1), (2, 3)])
def test_reference_maxpool_backward_by_finite_differences(size, stride):
    rng = np.random.default_rng(2)
    x = rng.permutation(2 * 3 * 13).reshape(2, 3, 13) * 0.05    # distinct values
    y, arg = ref.maxpool1d(x, size, stride)
    dy = rng.standard_normal(y.shape)
    dx = ref.maxpool1d_backward(dy, arg, 13)
    assert _fd_check(lambda x: (ref.maxpool1d(x, size, stride)[0] * dy).sum(), {"x": x}, {"x": dx}) < 1e-6


def test_reference_global_pool_backward_by_finite_differences():
    rng = np.random.default_rng(3)
    x = rng.permutation(2 * 4 * 6).reshape(2, 4, 6) * 0.1 - 2
    y, arg = ref.global_pool(x)
    dy = rng.standard_normal(y.shape)
    dx = ref.global_pool_backward(x, y, arg, dy)
    assert _fd_check(lambda x: (ref.global_pool(x)[0] * dy).sum(), {"x": x}, {"x": dx}) < 1e-6


def test_reference_global_pool_backward_zero_row_has_no_l2_term():
    x = np.zeros((1, 1, 4))
    y, arg = ref.global_pool(x)
    dx = ref.global_pool_backward(x, y, arg, np.array([[4.0, 1.0, 7.0]]))
    assert np.allclose(dx, [[[2.0, 1.0, 1.0, 1.0]]])      # mean 4/4 everywhere, max at index 0


def test_reference_dense_backward_by_finite_differences():
    rng = np.random.default_rng(4)
    x, w, b, dy = (rng.standard_normal(s) for s in ((3, 5), (5, 2), (2,), (3, 2)))
    dx, dw, db = ref.dense_backward(x, w, dy)
    assert _fd_check(lambda x, w, b: (ref.dense(x, w, b) * dy).sum(),
                     {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}) < 1e-6


@pytest.mark.parametrize("kind,slope", [("relu", 0.01), ("leaky_relu", 0.2), ("sigmoid", 0.01),
                                        ("tanh", 0.01)])
def test_reference_activation_backward_by_finite_differences(kind, slope):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4))
    x = np.sign(x) * (0.1 + np.abs(x))
    dy = rng.standard_normal(x.shape)
    y = ref.activation(kind, x, slope)
    dx = ref.activation_backward(kind, x, y, dy, slope)
    assert _fd_check(lambda x: (ref.activation(kind, x, slope) * dy).sum(), {"x": x}, {"x": dx}) < 1e-6


def test_reference_cross_entropy_backward_by_finite_differences():
    rng = np.random.default_rng(6)
    z, labels = rng.standard_normal((4, 5)) * 3, np.array([0, 4, 2, 2])
    _, p = ref.softmax_cross_entropy(z, labels)
    g = ref.softmax_cross_entropy_backward(p, labels)
    assert _fd_check(lambda logits: ref.softmax_cross_entropy(logits, labels)[0],
                     {"logits": z}, {"logits": g}) < 1e-6


def test_reference_is_stable_on_huge_inputs():
    p = ref.softmax(np.array([[1e4, 0.0, -1e4]]))
    assert np.allclose(p, [[1, 0, 0]])
    loss, _ = ref.softmax_cross_entropy(np.array([[1e4, 0.0, -1e4]]), np.array([2]))
    assert loss == pytest.approx(2e4)
    s = ref.activation("sigmoid", np.array([-1000.0, 0.0, 1000.0]))
    assert np.all(np.isfinite(s)) and np.allclose(s, [0, 0.5, 1])


def test_reference_does_not_import_a_backend():
    import inspect
    src = inspect.getsource(ref)
    assert "backends" not in src.replace("any backend", "") and "NumpyBackend" not in src


# -- the CLI -----------------------------------------------------------------------------------

def test_cli_conformance_passes_and_prints_table():
    result = CliRunner().invoke(cli, ["conformance", "--backend", "numpy", "--op", "softmax"])
    assert result.exit_code == 0, result.output
    assert "op group" in result.output and "softmax" in result.output and "PASS" in result.output
    assert "conv1d" not in result.output
    assert "backend 'numpy': " in result.output and " 0 failed in " in result.output


def test_cli_conformance_json(strict_json):
    result = CliRunner().invoke(cli, ["conformance", "--backend", "numpy", "--op", "softmax",
                                      "--dtype", "float64", "--json"])
    assert result.exit_code == 0, result.output
    data = strict_json(result.output)
    assert data["ok"] is True and data["backend"] == "numpy"
    assert [(r["group"], r["dtype"], r["status"]) for r in data["rows"]] == [
        ("softmax", "float64", "pass")]


def test_cli_unknown_backend_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "genrecnn.cli.main", "conformance", "--backend",
                           "no-such-backend"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown backend 'no-such-backend'")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_unknown_op_is_a_clear_error():
    from genrecnn.cli.main import main
    assert main(["conformance", "--backend", "numpy", "--op", "conv3d"]) == 2


# -- the pytest helpers for backend authors ----------------------------------------------------

from genrecnn.conformance import parametrize_backend_checks  # noqa: E402


@parametrize_backend_checks("numpy", dtypes=["float32"], ops=["sgd_update", "adam_update"])
def test_parametrize_backend_checks_makes_one_item_per_case(genrecnn_check):
    assert genrecnn_check.id.startswith(("numpy-sgd_update-float32-", "numpy-adam_update-float32-"))
    genrecnn_check()


def test_backend_checks_for_unavailable_and_unknown_backends():
    from genrecnn.conformance.pytest_plugin import backend_checks
    for name in registry().names():
        if not registry().infos[name].available:
            (item,) = backend_checks(name)
            with pytest.raises(pytest.skip.Exception, match="unavailable"):
                item()
    (item,) = backend_checks("numpy", ops=["conv3d"])
    with pytest.raises(pytest.fail.Exception, match="unknown op 'conv3d'"):
        item()


# -- precisions ----------------------------------------------------------------------------------

def test_cli_prints_one_summary_line_per_precision():
    result = CliRunner().invoke(cli, ["conformance", "--backend", "numpy", "--op", "dense",
                                      "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("backend 'numpy'")]
    assert [ln.split(":")[0] for ln in lines] == [
        "backend 'numpy'", "backend 'numpy' [tf32]", "backend 'numpy' [bf16]"]
    assert "float32/bf16" in result.output


def test_cli_precision_runs_one_and_refuses_where_none_is_offered(capsys):
    from genrecnn.cli.main import main
    result = CliRunner().invoke(cli, ["conformance", "--backend", "numpy", "--op", "dense",
                                      "--precision", "tf32"])
    assert result.exit_code == 0, result.output
    assert "backend 'numpy' [tf32]: 20/20 checks passed" in result.output
    assert "backend 'numpy':" not in result.output
    needs_example()
    assert main(["conformance", "--backend", "example", "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not offer precision bf16" in err


def test_pytest_items_per_precision():
    from genrecnn.conformance.pytest_plugin import backend_checks
    checks = backend_checks("numpy", ops=["dense"], precisions=["bf16"])
    assert checks and all(c.id.startswith("numpy-dense-float32-bf16-") for c in checks)
    needs_example()
    (skip,) = backend_checks("example", ops=["dense"], precisions=["tf32"])
    with pytest.raises(pytest.skip.Exception, match="does not offer precision tf32"):
        skip()


def test_offering_a_precision_through_products_without_the_argument_is_a_declaration_error():
    from genrecnn.backends.numpy_backend import NumpyBackend
    from genrecnn.errors import BackendError

    class Deaf(NumpyBackend):
        name = "deaf"

        def dense(self, x, w, b):
            return super().dense(x, w, b)

    with pytest.raises(BackendError, match="dense takes no precision argument"):
        run_conformance(Deaf(), ops=["dense"])
    Deaf.precisions = ("fp32",)
    assert run_conformance(Deaf(), ops=["dense"], dtypes=["float32"]).ok
