"""The CuPy backend's own launchers (``backends/cupy_backend``: arguments, their NumPy scalar
types, grids, buffers, the tf32/bf16 adapters) run on the CPU emulator of the kernels
(``cuda_emulator.cupy_backend``): the shipped conformance suite on every op group the
emulation claims, launcher bugs planted in single launches reported as failures, and the
patched-in emulation gone after every op.

conv1d runs its cases of widths 3 and 4 at fp32 only: its tf32/bf16 launches are
``cuda_kernels/lowp.py``'s, which conv2d and dense run at every precision here through
the same three CuPy adapters (and the PyCUDA emulation runs at every width's subset).

Measured on the 2-core dev machine: 41 s for the file with an empty library cache (53
libraries, recorded by the module fixture and built two at a time: 14 s), 30 s once they
are cached. Warm: conv2d 11.5 s and dense 9.7 s, nearly all of it their tf32/bf16 cases
(mma.cu's tiles emulated thread by thread), the fixture's recording run 3.9 s, the conv1d
subset 1.4 s, every other group and test under 0.7 s.
"""
from __future__ import annotations

import numpy as np
import pytest

from cuda_emulator import EmulatorError, compiler
from cuda_emulator.conformance_subset import WHOLE_GROUPS, conv1d_subset, prebuilt
from cuda_emulator.cupy_backend import MODULES, EmulatedCupyBackend, launch_arguments
from cuda_emulator.cupy_standin import DeviceArray
from genrecnn.conformance.runner import FAIL, PASS, run_case, run_conformance

pytestmark = pytest.mark.skipif(compiler() is None,
                                reason="no g++: the CUDA emulator compiles the kernels with it")

CONV1D_PRECISIONS = ("fp32",)


@pytest.fixture(scope="module")
def emulated():
    """The emulated backend, every library its tests launch from built first, in parallel."""
    return prebuilt(EmulatedCupyBackend, CONV1D_PRECISIONS)


@pytest.mark.parametrize("group", WHOLE_GROUPS)
def test_the_conformance_group_passes_on_the_emulated_cupy_backend(emulated, group):
    report = run_conformance(emulated, ops=[group])
    assert report.rows and {r.status for r in report.rows} == {PASS}, report.text()


def test_conv1d_cases_of_two_widths_pass_on_the_emulated_cupy_backend(emulated):
    cases = conv1d_subset(CONV1D_PRECISIONS)
    assert len(cases) >= 10
    failed = [r.detail for r in (run_case(emulated, c) for c in cases) if r.status != PASS]
    assert not failed, "\n".join(failed)


# -- launcher bugs planted at the launch: what a slip in a cupy_backend module would send ---------

class _PlantedLaunch(EmulatedCupyBackend):
    """The emulated backend with every launch of kernel ``kernel`` changed by
    ``edit(grid, args) -> (grid, args)``."""

    name = "cupy-emulated-planted"

    def __init__(self, kernel: str, edit):
        super().__init__()
        self.kernel, self.edit = kernel, edit

    def _launch(self, file, name, dtype, consts, grid, block, args):
        if name == self.kernel:
            grid, args = self.edit(tuple(grid), tuple(args))
        super()._launch(file, name, dtype, consts, grid, block, args)


def _swap(i: int, j: int):
    def edit(grid, args):
        a = list(args)
        a[i], a[j] = a[j], a[i]
        return grid, tuple(a)
    return edit


def _one_row_short(grid, args):
    return (max(1, grid[0] - 1), *grid[1:]), args


def _as_int64(i: int):
    def edit(grid, args):
        return grid, args[:i] + (np.int64(args[i]),) + args[i + 1:]
    return edit


@pytest.mark.parametrize("group, kernel, edit", [
    # fused.py: the strides sh and sw of fused_fwd_train swapped (two int arguments)
    ("fused", "fused_fwd_train", _swap(14, 15)),
    # fused.py: fused_bwd_dz's grid a block row short (the last plane of dz never written)
    ("fused", "fused_bwd_dz", _one_row_short),
    # training.py: labels_a and labels_b of softmax_xent_acc_bwd swapped (a wrong buffer)
    ("train_loss", "softmax_xent_acc_bwd", _swap(1, 2)),
    # maps.py: maxpool2d_fwd's H as np.int64 (CuPy would send 8 bytes for an int)
    ("maxpool2d", "maxpool2d_fwd", _as_int64(3)),
], ids=["fused-strides-swapped", "fused-bwd-grid-short", "xent-labels-swapped",
        "maxpool2d-int64-for-int"])
def test_a_launcher_bug_fails_its_group(emulated, group, kernel, edit):
    report = run_conformance(_PlantedLaunch(kernel, edit), ops=[group])
    assert report.rows and {r.status for r in report.rows} == {FAIL}, report.text()


def test_a_scalar_of_another_type_or_a_host_array_is_refused(emulated):
    x = emulated.from_host(np.zeros(4, np.float32))
    # a 64-bit integer is a pointer where the kernel takes one (kernels.NULL)
    assert launch_arguments((x, np.uint64(0), np.int32(3)), "PPi")[1] == "PPi"
    assert launch_arguments((x, np.float32(0.5)), "Pd")[1] == "Pf"        # the kernel refuses
    with pytest.raises(EmulatorError, match="argument 1 is a ndarray"):
        launch_arguments((x, np.zeros(4, np.float32)), "PP")
    with pytest.raises(EmulatorError, match=r"takes 'PPqf', .* 'PPif' \(.* argument 2 on\)"):
        emulated._launch("elementwise.cu", "act_fwd", "float32", {"ACT": 0}, (1, 1, 1),
                         (32, 1, 1), (x, x, np.int32(4), np.float32(0)))


def test_the_emulation_is_gone_after_every_op(emulated):
    def attributes():
        return [{k: id(v) for k, v in vars(m).items()} for m in MODULES]

    before = attributes()
    x = emulated.from_host(np.ones((2, 3), np.float32))
    assert isinstance(x, DeviceArray)
    with pytest.raises(ValueError, match="unknown activation"):
        emulated.activation("nope", x)
    assert attributes() == before
