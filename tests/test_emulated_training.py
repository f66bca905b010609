"""A whole training step of the default CNN on the CUDA backends' own code over the CPU
emulator: forward (fused blocks included), loss and every gradient at fp32, tf32 and bf16
match NumPy's at the same precision (up to the order of the sums, which may also flip an
operand's rounding near a tie). This is the GPU test of test_precision_training, run
where there is no GPU: layers, network, fused.cu and mma.cu together."""
from __future__ import annotations

import pytest

from cuda_emulator import compiler
from cuda_emulator.backend import EmulatedPycudaBackend
from cuda_emulator.cupy_backend import EmulatedCupyBackend
from plugins import registry_with
from steps import TOLERANCE, cnn2d_step, gradient_gaps

pytestmark = pytest.mark.skipif(compiler() is None,
                                reason="no g++: the CUDA emulator compiles the kernels with it")


@pytest.fixture(scope="module")
def registry():
    return registry_with(EmulatedPycudaBackend, EmulatedCupyBackend)


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
@pytest.mark.parametrize("backend", ["pycuda-emulated", "cupy-emulated"])
def test_a_cnn2d_step_on_the_emulated_kernels_matches_numpy(registry, backend, precision):
    want_loss, want = cnn2d_step("numpy", precision, registry)
    loss, got = cnn2d_step(backend, precision, registry)
    assert abs(loss - want_loss) <= TOLERANCE[precision] * abs(want_loss)
    for k, gap in gradient_gaps(got, want).items():
        assert gap < TOLERANCE[precision], (k, gap)
