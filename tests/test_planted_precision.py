"""Proof that the tf32 and bf16 cases can fail: NumPy backends whose products round their
operands wrongly at one precision, each reported as FAIL at that precision (and only
there), while the correct NumPy backend passes every precision."""
import numpy as np
import pytest

from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.conformance import FAIL, PASS, run_conformance
from genrecnn.engine.ops import precision as contract

PRODUCTS = ["conv1d", "conv2d", "dense"]


def _truncate_tf32(a, precision):
    """tf32 operands truncated (round toward zero) instead of rounded to nearest."""
    if precision != "tf32":
        return contract.round_operand(a, precision)
    return (np.ascontiguousarray(a).view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)


def _bf16_as_tf32(a, precision):
    """bf16 operands rounded to tf32's 10 mantissa bits instead of bf16's 7."""
    return contract.round_operand(a, "tf32" if precision == "bf16" else precision)


def _product(method: str, operands: int):
    """NumPy's ``method`` at fp32 on its first ``operands`` arguments rounded by the
    class's ``wrong`` (x, w; or x, w, dy in a backward op); db, a sum of dy as given, as
    NumPy gives it."""
    def op(self, *args, precision="fp32"):
        rounded = [type(self).wrong(a, precision) for a in args[:operands]]
        out = getattr(NumpyBackend, method)(self, *rounded, *args[operands:])
        if "backward" in method:
            out = (*out[:-1], getattr(NumpyBackend, method)(self, *args)[-1])
        return out
    return op


def _planted(name: str, wrong) -> type:
    methods = {m: _product(m, 3 if "backward" in m else 2) for m in contract.PRECISION_METHODS}
    return type(name, (NumpyBackend,), {"name": name, "wrong": staticmethod(wrong), **methods})


TruncatesTf32 = _planted("bug-tf32-truncates", _truncate_tf32)
RoundsBf16AsTf32 = _planted("bug-bf16-as-tf32", _bf16_as_tf32)


class ForgetsDyInBf16(NumpyBackend):
    """bf16 backward ops that round x and w but leave dy as it is."""

    name = "bug-bf16-dy-unrounded"

    def dense_backward(self, x, w, dy, precision="fp32"):
        if precision != "bf16":
            return super().dense_backward(x, w, dy, precision)
        x, w = contract.round_operands(precision, x, w)
        return super().dense_backward(x, w, dy)


def _failed(report) -> set:
    return {(r.group, r.precision) for r in report.rows if r.status == FAIL}


@pytest.mark.parametrize("cls, precision", [(TruncatesTf32, "tf32"),
                                            (RoundsBf16AsTf32, "bf16")],
                         ids=["tf32-truncated", "bf16-rounded-as-tf32"])
def test_a_wrong_rounding_fails_every_product_at_its_precision_only(cls, precision):
    report = run_conformance(cls(), ops=PRODUCTS, dtypes=["float32"])
    assert _failed(report) == {(g, precision) for g in PRODUCTS}, report.text()
    assert all(r.status == PASS for r in report.rows if r.precision != precision)
    assert f"backend '{cls.name}' [{precision}]: " in report.summary()


def test_bf16_backward_that_forgets_to_round_dy_fails():
    report = run_conformance(ForgetsDyInBf16(), ops=["dense"])
    assert _failed(report) == {("dense", "bf16")}, report.text()
    row = report.row("dense", "float32", "bf16")
    assert "dense_backward" in row.detail and "forward" not in row.detail


def test_the_numpy_backend_passes_every_precision():
    report = run_conformance(NumpyBackend(), ops=PRODUCTS, dtypes=["float32"])
    assert report.ok, report.text()
    assert {r.precision for r in report.rows} == {"fp32", "tf32", "bf16"}
    assert report.summary().splitlines()[1].startswith("backend 'numpy' [tf32]: ")
