"""Proof that the fused block's cases can fail: NumPy backends with one planted bug each in
the fused op (the ReLU mask dropped from the backward; the pooling ignoring a negative
gamma; a zero gamma's windows pointing at the largest z), each reported as FAIL on the
fused group at both dtypes; and the composition a backend may inherit passes them."""
import numpy as np
import pytest

from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.conformance import PASS, run_conformance
from genrecnn.engine.ops.fused import ComposedFusedOps
from test_planted_bugs import check_planted

BOTH = {("fused", "float32"), ("fused", "float64")}


class FusedBackwardDropsReluMask(NumpyBackend):
    name = "bug-fused-no-relu-mask"

    def norm_relu_maxpool2d_backward(self, z, gamma, mean, invstd, argmax, p, dp, size, stride):
        everywhere = np.ones_like(p)              # p > 0 everywhere: the mask passes all
        return super().norm_relu_maxpool2d_backward(z, gamma, mean, invstd, argmax, everywhere,
                                                    dp, size, stride)


class FusedPoolsMaxForNegativeGamma(NumpyBackend):
    name = "bug-fused-gamma-sign"

    def norm_relu_maxpool2d_train(self, z, gamma, beta, eps, size, stride):
        p, mean, invstd = (super().norm_relu_maxpool2d_train(z, gamma, beta, eps, size,
                                                             stride)[i] for i in (0, 2, 3))
        _, arg = self.maxpool2d(z, size, stride)       # max z, whatever gamma's sign
        return p, arg, mean, invstd


class FusedZeroGammaTakesLargestZ(NumpyBackend):
    name = "bug-fused-zero-gamma"

    def norm_relu_maxpool2d_train(self, z, gamma, beta, eps, size, stride):
        p, _, mean, invstd = super().norm_relu_maxpool2d_train(z, gamma, beta, eps, size, stride)
        key = z * np.where(gamma < 0, -1, 1).astype(z.dtype)[None, :, None, None]
        _, arg = self.maxpool2d(key, size, stride)
        return p, arg, mean, invstd


@pytest.mark.parametrize("cls", [FusedBackwardDropsReluMask, FusedPoolsMaxForNegativeGamma,
                                 FusedZeroGammaTakesLargestZ], ids=lambda c: c.name)
def test_planted_fused_bug_fails(cls):
    check_planted(cls, BOTH, "fused")


class ComposedOnNumpy(ComposedFusedOps, NumpyBackend):
    """The composition the CUDA backends inherit, on NumPy's map ops."""
    name = "numpy-composed-fused"


def test_the_composed_fused_ops_pass_the_fused_cases():
    report = run_conformance(ComposedOnNumpy(), ops=["fused"])
    assert report.ok and {r.status for r in report.rows} == {PASS}, report.text()
    assert {r.dtype for r in report.rows} == {"float32", "float64"}
