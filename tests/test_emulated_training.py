"""A whole training step of the default CNN on the CUDA backends' own code over the CPU
emulator: forward (fused blocks included), loss and every gradient at fp32, tf32 and bf16
match NumPy's at the same precision (up to the order of the sums, which may also flip an
operand's rounding near a tie). This is the GPU test of test_precision_training, run
where there is no GPU: layers, network, fused.cu and mma.cu together."""
from __future__ import annotations

import numpy as np
import pytest

from cuda_emulator import compiler
from cuda_emulator.backend import EmulatedPycudaBackend
from cuda_emulator.cupy_backend import EmulatedCupyBackend
from genrecnn.engine.architectures import build_network, load_architecture
from plugins import registry_with

pytestmark = pytest.mark.skipif(compiler() is None,
                                reason="no g++: the CUDA emulator compiles the kernels with it")
TOLERANCE = {"fp32": 1e-4, "tf32": 1e-3, "bf16": 1e-2}


@pytest.fixture(scope="module")
def registry():
    return registry_with(EmulatedPycudaBackend, EmulatedCupyBackend)


def _step(registry, backend: str, precision: str):
    """(loss, every gradient) of one cnn2d step on ``backend`` at ``precision``."""
    net = build_network(load_architecture("cnn2d"), (32, 48), 4, seed=0, precision=precision)
    net.place(backend, registry)
    x = np.random.default_rng(3).standard_normal((8, 32, 48)).astype(np.float32)
    loss, _ = net.loss_and_grads(x, np.arange(8) % 4)
    return loss, {f"{layer.name}/{k}": net.backends[i].to_host(g)
                  for i, layer in enumerate(net.layers) for k, g in layer.grads.items()}


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
@pytest.mark.parametrize("backend", ["pycuda-emulated", "cupy-emulated"])
def test_a_cnn2d_step_on_the_emulated_kernels_matches_numpy(registry, backend, precision):
    want_loss, want = _step(registry, "numpy", precision)
    loss, got = _step(registry, backend, precision)
    assert got.keys() == want.keys() and len(got) > 10
    assert abs(loss - want_loss) <= TOLERANCE[precision] * abs(want_loss)
    # A convolution's bias before batch norm has no gradient (the norm subtracts the mean):
    # both give rounding noise there, so each gradient is judged on its own scale or, if
    # that is far below the network's, on a hundredth of the network's largest.
    floor = 1e-2 * max(np.abs(w).max() for w in want.values())
    for k, w in want.items():
        err = np.abs(got[k] - w).max() / max(np.abs(w).max(), floor)
        assert err < TOLERANCE[precision], (k, err)
