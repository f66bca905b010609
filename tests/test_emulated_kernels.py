"""The project's CUDA kernels run on the CPU (``cuda_emulator``): the shipped conformance suite
on the PyCUDA backend with every launch emulated, and the emulator's own checks (block
barriers, warp shuffles, divergent barriers reported, the tensor-core products against
NumPy and, on a GPU, against the hardware).

Measured on the 2-core dev machine: 37 s for the whole file with an empty library cache
(the module fixture records which of the 55 libraries the conformance tests need and
builds them two at a time: 19 s), 17 s once they are cached. Slowest groups, warm: dense
5-6 s (its split-K case N129 I3 O16769 launches 16769 blocks of 256 threads for db),
conv2d 3.4 s, the conv1d subset 3.5 s, every other group under 0.6 s.
"""
from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from cuda_emulator import EmulatorError, Module, compiler, loaded_modules
from cuda_emulator.backend import EmulatedPycudaBackend
from cuda_emulator.conformance_subset import WHOLE_GROUPS, conv1d_subset, prebuilt
from genrecnn.backends.cuda_kernels.loader import HEADER, kernel_source
from genrecnn.conformance.runner import FAIL, PASS, run_case, run_conformance
from genrecnn.errors import UnsupportedOp

pytestmark = pytest.mark.skipif(compiler() is None,
                                reason="no g++: the CUDA emulator compiles the kernels with it")


@pytest.fixture(scope="module")
def emulated():
    """The emulated backend, every library its tests launch from built first, in parallel."""
    return prebuilt(EmulatedPycudaBackend)


@pytest.mark.parametrize("group", WHOLE_GROUPS)
def test_the_conformance_group_passes_on_the_emulated_kernels(emulated, group):
    report = run_conformance(emulated, ops=[group])
    assert report.rows and {r.status for r in report.rows} == {PASS}, report.text()


def test_row_kernels_on_a_grid_of_one_block_a_row_loop_over_the_whole_row(emulated,
                                                                           monkeypatch):
    """copy_rows_grid gives big maps fewer blocks than positions (each thread loops over
    several: fused_bwd_dz, im2col, col2im, the batch cuts); the conformance cases are too
    small for that, so here every row gets one block."""
    from genrecnn.backends.cuda_kernels import grids
    monkeypatch.setattr(grids, "COPY_BLOCKS", 1)
    report = run_conformance(emulated, ops=["fused", "conv2d", "batch"], dtypes=["float32"])
    assert report.rows and {r.status for r in report.rows} == {PASS}, report.text()


def test_conv1d_cases_of_two_widths_pass_on_the_emulated_kernels(emulated):
    cases = conv1d_subset()
    assert len(cases) >= 10
    failed = [r.detail for r in (run_case(emulated, c) for c in cases) if r.status != PASS]
    assert not failed, "\n".join(failed)


def test_tf32_and_bf16_on_a_gpu_without_tensor_cores_are_refused_in_one_line():
    be = EmulatedPycudaBackend(compute_capability=(7, 5))
    x, w = (be.from_host(np.ones(s, np.float32)) for s in ((1, 2, 3, 3), (1, 2, 1, 1)))
    b = be.zeros((1,), "float32")
    be.conv2d(x, w, b, (1, 1), (0, 0))                                  # fp32 runs
    with pytest.raises(UnsupportedOp, match=r"capability 8\.0 or later.*7\.5; use --precision fp32"):
        be.conv2d(x, w, b, (1, 1), (0, 0), precision="bf16")


class _PlantedBug(EmulatedPycudaBackend):
    """The emulated backend with ``old`` replaced by ``new`` in every kernel source that
    holds it (a bug planted in a .cu file or common.cuh)."""

    name = "pycuda-emulated-planted"

    def __init__(self, old: str, new: str):
        super().__init__()
        self.edit, self.built = (old, new), {}

    def _module(self, file, dtype, consts):
        source = kernel_source(file, dtype, consts)
        if self.edit[0] not in source:
            return super()._module(file, dtype, consts)
        key = (file, dtype, tuple(sorted(consts.items())))
        if key not in self.built:
            self.built[key] = Module(source.replace(*self.edit), file, dtype)
        return self.built[key]


@pytest.mark.parametrize("group, old, new", [
    # maxpool2d keeps the last of tied maxima, not the first
    ("maxpool2d", "if (v > best ||", "if (v >= best ||"),
    # block_sum reads the warps' partial sums without waiting for them (a shared-memory race)
    ("softmax", "if (lane == 0) partial[warp] = v;\n    __syncthreads();",
     "if (lane == 0) partial[warp] = v;"),
], ids=["maxpool2d-tie", "block_sum-race"])
def test_a_kernel_bug_planted_in_the_source_fails_its_group(emulated, group, old, new):
    report = run_conformance(_PlantedBug(old, new), ops=[group])
    assert {r.status for r in report.rows} == {FAIL}, report.text()


def test_a_one_channel_convolution_that_skips_the_rounding_fails_at_bf16(emulated):
    """conv2d_c1.cu serves the first layer at tf32/bf16 too, rounding its operands; without
    the rounding exactly its cases (one input channel) fail, and only at the precision."""
    planted = _PlantedBug("#define OPERAND(v) round_bits(v, ROUND)", "#define OPERAND(v) (v)")
    failed = {c.label for c in run_conformance(planted, ops=["conv2d"],
                                               precisions=["bf16"]).failures}
    assert failed and all("C1H" in label for label in failed), failed
    fp32 = run_conformance(planted, ops=["conv2d"], dtypes=["float32"], precisions=["fp32"])
    assert fp32.ok and fp32.rows


def test_no_kernel_comes_near_the_fiber_stack_size(emulated):
    run_conformance(emulated, ops=["batchnorm", "softmax"])   # a few, if run alone
    peaks = {m.file: m.stack_peak() for m in loaded_modules()}
    deepest = max(peaks, key=peaks.get)
    assert 0 < peaks[deepest] < loaded_modules()[0].stack_bytes // 4, \
        f"{deepest}: a fiber used {peaks[deepest]} bytes of stack"


# -- the emulator's own checks ------------------------------------------------------------------

SELFTEST = r"""
// Each round: every thread stores its value, barrier, reads the mirror thread's, barrier.
extern "C" __global__ void reverse_rounds(const int* in, int* out, int rounds)
{
    __shared__ int buf[1024];
    const int n = blockDim.x * blockDim.y * blockDim.z;
    const int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int v = in[blockIdx.x * n + tid];
    for (int r = 0; r < rounds; ++r) {
        buf[tid] = v;
        __syncthreads();
        v = buf[n - 1 - tid] + 1;
        __syncthreads();
    }
    out[blockIdx.x * n + tid] = v;
}

// Per warp: the shfl_down total (lane 0), the shfl_xor total (every lane), lane 5's value
// (shfl), the inclusive prefix sum (shfl_up), and an int and a double moved by shfl_xor.
extern "C" __global__ void warp_reductions(const float* in, float* down, float* xsum,
                                           float* bcast, float* scan, int* pair, double* dpair)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x & 31;
    const float v = in[i];
    float s = v, x = v, p = v;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    for (int o = 1; o < 32; o <<= 1) {
        const float t = __shfl_up_sync(0xffffffffu, p, o);
        if (lane >= o) p += t;
    }
    down[i] = lane == 0 ? s : 0.0f;
    xsum[i] = x;
    bcast[i] = __shfl_sync(0xffffffffu, v, 5);
    scan[i] = p;
    pair[i] = __shfl_xor_sync(0xffffffffu, i, 1);
    dpair[i] = __shfl_xor_sync(0xffffffffu, (double)v * 0.5, 2);
}

// Threads that return early do not hold up a __syncthreads (bar.sync waits for the
// non-exited threads of the block).
extern "C" __global__ void sync_after_returns(int* out)
{
    __shared__ int s[64];
    if (threadIdx.x >= 48) return;
    s[threadIdx.x] = threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = s[47 - threadIdx.x];
}

extern "C" __global__ void two_barriers(int* out)
{
    if (threadIdx.x < 16) {
        __syncthreads();
        out[threadIdx.x] = 1;
    } else {
        __syncthreads();
        out[threadIdx.x] = 2;
    }
}

extern "C" __global__ void barrier_against_shuffle(int* out)
{
    int v = threadIdx.x;
    if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    __syncthreads();
    out[threadIdx.x] = v;
}

extern "C" __global__ void shuffle_after_return(int* out)
{
    if (threadIdx.x == 3) return;
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, (int)threadIdx.x, 1);
}
"""

# One warp: lane l's fragments at a[4l..], b[2l..], its accumulators at d[4l..].
MMA_KERNELS = r"""
extern "C" __global__ void mma_tf32(const unsigned int* a, const unsigned int* b, float* d)
{
    const int l = threadIdx.x;
    float acc[4] = {d[4 * l], d[4 * l + 1], d[4 * l + 2], d[4 * l + 3]};
    const unsigned int av[4] = {a[4 * l], a[4 * l + 1], a[4 * l + 2], a[4 * l + 3]};
    const unsigned int bv[2] = {b[2 * l], b[2 * l + 1]};
    mma_tf32_m16n8k8(acc, av, bv);
    for (int i = 0; i < 4; ++i) d[4 * l + i] = acc[i];
}

extern "C" __global__ void mma_bf16(const unsigned int* a, const unsigned int* b, float* d)
{
    const int l = threadIdx.x;
    float acc[4] = {d[4 * l], d[4 * l + 1], d[4 * l + 2], d[4 * l + 3]};
    const unsigned int av[4] = {a[4 * l], a[4 * l + 1], a[4 * l + 2], a[4 * l + 3]};
    const unsigned int bv[2] = {b[2 * l], b[2 * l + 1]};
    mma_bf16_m16n8k16(acc, av, bv);
    for (int i = 0; i < 4; ++i) d[4 * l + i] = acc[i];
}
"""


@pytest.fixture(scope="module")
def selftest():
    return Module(SELFTEST + MMA_KERNELS, "selftest.cu", "float32")


@pytest.fixture(scope="module")
def selftest_ucontext():
    """The same kernels on the portable fiber switch (makecontext/swapcontext), which
    machines other than x86-64 use."""
    return Module(SELFTEST + MMA_KERNELS, "selftest.cu", "float32", defines=("EMU_UCONTEXT",))


def _ptrs(*arrays):
    return [a.ctypes.data for a in arrays]


@pytest.mark.parametrize("block", [(256, 1, 1), (8, 4, 3), (37, 1, 1)])
@pytest.mark.parametrize("rounds", [1, 4])
def test_block_barriers_order_shared_memory(selftest, block, rounds):
    n = int(np.prod(block))
    x = np.arange(3 * n, dtype=np.int32)
    out = np.full_like(x, -7)
    selftest.launch("reverse_rounds", (3, 1, 1), block, _ptrs(x, out) + [rounds])
    want = x.reshape(3, n)
    if rounds % 2:
        want = want[:, ::-1]
    np.testing.assert_array_equal(out.reshape(3, n), want + rounds)


def test_warp_shuffles_reduce_broadcast_and_scan(selftest):
    x = np.random.default_rng(1).integers(-50, 50, 128).astype(np.float32)
    down, xsum, bcast, scan = (np.zeros_like(x) for _ in range(4))
    pair, dpair = np.zeros(128, np.int32), np.zeros(128, np.float64)
    selftest.launch("warp_reductions", (2, 1, 1), (64, 1, 1),
                    _ptrs(x, down, xsum, bcast, scan, pair, dpair))
    warps = x.reshape(4, 32)
    np.testing.assert_array_equal(down.reshape(4, 32)[:, 0], warps.sum(1))
    np.testing.assert_array_equal(down.reshape(4, 32)[:, 1:], 0)
    np.testing.assert_array_equal(xsum.reshape(4, 32), np.repeat(warps.sum(1)[:, None], 32, 1))
    np.testing.assert_array_equal(bcast.reshape(4, 32), np.repeat(warps[:, 5:6], 32, 1))
    np.testing.assert_array_equal(scan.reshape(4, 32), np.cumsum(warps, 1))
    np.testing.assert_array_equal(pair, np.arange(128) ^ 1)
    np.testing.assert_array_equal(dpair, x[np.arange(128) ^ 2] * 0.5)


def test_the_portable_fiber_switch_runs_barriers_and_shuffles(selftest_ucontext):
    x = np.arange(3 * 96, dtype=np.int32)
    out = np.zeros_like(x)
    selftest_ucontext.launch("reverse_rounds", (3, 1, 1), (96, 1, 1), _ptrs(x, out) + [3])
    np.testing.assert_array_equal(out.reshape(3, 96), x.reshape(3, 96)[:, ::-1] + 3)
    v = np.arange(64, dtype=np.float32)
    outs = [np.zeros_like(v) for _ in range(4)] + [np.zeros(64, np.int32), np.zeros(64)]
    selftest_ucontext.launch("warp_reductions", (1, 1, 1), (64, 1, 1), _ptrs(v, *outs))
    np.testing.assert_array_equal(outs[1].reshape(2, 32)[:, 0], v.reshape(2, 32).sum(1))


def test_a_barrier_ignores_threads_that_returned(selftest):
    out = np.full(64, -1, np.int32)
    selftest.launch("sync_after_returns", (1, 1, 1), (64, 1, 1), _ptrs(out))
    np.testing.assert_array_equal(out, np.r_[np.arange(47, -1, -1), np.full(16, -1)])


@pytest.mark.parametrize("kernel, says", [
    ("two_barriers", r"stuck: thread \(0,0,0\) at __syncthreads selftest.cu:\d+, "
                     r"thread \(16,0,0\) at __syncthreads selftest.cu:\d+"),
    ("barrier_against_shuffle", r"stuck: thread \(0,0,0\) in a warp collective .*"
                                r"thread \(16,0,0\) at __syncthreads"),
    ("shuffle_after_return", r"names lane 3, which has returned"),
])
def test_divergent_barriers_are_reported_not_hung(selftest, kernel, says):
    out = np.zeros(32, np.int32)
    with pytest.raises(EmulatorError, match=says):
        selftest.launch(kernel, (1, 1, 1), (32, 1, 1), _ptrs(out))
    selftest.launch("sync_after_returns", (1, 1, 1), (64, 1, 1), _ptrs(np.zeros(64, np.int32)))


def test_a_launch_with_wrong_argument_types_is_refused(selftest):
    out = np.zeros(64, np.int32)
    with pytest.raises(EmulatorError, match="takes 'P', was launched with 'q'"):
        selftest.launch("sync_after_returns", (1, 1, 1), (64, 1, 1), _ptrs(out), "q")
    with pytest.raises(EmulatorError, match="at most 1024"):
        selftest.launch("sync_after_returns", (1, 1, 1), (2048, 1, 1), _ptrs(out))


def test_a_thread_that_overflows_its_fiber_stack_is_reported():
    source = r"""
    __device__ __noinline__ int fill(int n)
    {
        volatile char big[72 * 1024];               // more than a fiber's 64 KiB
        for (int i = 0; i < (int)sizeof big; ++i) big[i] = (char)n;
        return big[0];
    }

    // Thread 1 overflows into thread 0's stack below it (thread 0 has finished by then).
    extern "C" __global__ void deep(int* out)
    {
        if (threadIdx.x == 1) out[1] = fill(1);
    }
    """
    with pytest.raises(EmulatorError, match="overflowed its 64 KiB fiber stack"):
        Module(source, "overflow.cu", "float32").launch("deep", (1, 1, 1), (2, 1, 1),
                                                        _ptrs(np.zeros(2, np.int32)))


# -- tensor-core products: fragments built from the PTX ISA layouts, independently of the header

def _tf32_fragments(a, b):
    """Lane l = 4g + t holds a: A(g,t), A(g+8,t), A(g,t+4), A(g+8,t+4); b: B(t,g), B(t+4,g)."""
    fa, fb = np.zeros((32, 4), np.float32), np.zeros((32, 2), np.float32)
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        fa[lane] = a[g, t], a[g + 8, t], a[g, t + 4], a[g + 8, t + 4]
        fb[lane] = b[t, g], b[t + 4, g]
    return fa.view(np.uint32), fb.view(np.uint32)


def _bf16_fragments(a, b):
    """Two bf16 a register, the smaller column of A / row of B in the low half:
    a: A(g, 2t..), A(g+8, 2t..), A(g, 2t+8..), A(g+8, 2t+8..); b: B(2t.., g), B(2t+8.., g)."""
    ha, hb = (m.astype(np.float32).view(np.uint32) >> 16 for m in (a, b))

    def pair(lo, hi):
        return lo | (hi << 16)

    fa, fb = np.zeros((32, 4), np.uint32), np.zeros((32, 2), np.uint32)
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        fa[lane] = [pair(ha[r, c], ha[r, c + 1]) for r, c in
                    ((g, 2 * t), (g + 8, 2 * t), (g, 2 * t + 8), (g + 8, 2 * t + 8))]
        fb[lane] = [pair(hb[k, g], hb[k + 1, g]) for k in (2 * t, 2 * t + 8)]
    return fa, fb


def _accumulators(c):
    """d[l] = D(g, 2t), D(g, 2t+1), D(g+8, 2t), D(g+8, 2t+1) for lane l = 4g + t."""
    return np.array([[c[g, 2 * t], c[g, 2 * t + 1], c[g + 8, 2 * t], c[g + 8, 2 * t + 1]]
                     for g, t in ((lane >> 2, lane & 3) for lane in range(32))], np.float32)


def _mma_problem(kind, seed):
    """(A, B, C) with A and B exactly representable in the product's input format, and
    the lane fragments of all three."""
    rng = np.random.default_rng(seed)
    k = 8 if kind == "tf32" else 16
    keep = np.uint32(0xffffe000 if kind == "tf32" else 0xffff0000)
    a = (rng.standard_normal((16, k)).astype(np.float32).view(np.uint32) & keep).view(np.float32)
    b = (rng.standard_normal((k, 8)).astype(np.float32).view(np.uint32) & keep).view(np.float32)
    c = rng.standard_normal((16, 8)).astype(np.float32)
    fa, fb = (_tf32_fragments if kind == "tf32" else _bf16_fragments)(a, b)
    return a, b, c, fa, fb, _accumulators(c)


@pytest.mark.parametrize("kind", ["tf32", "bf16"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_mma_emulation_computes_a_b_plus_c(selftest, kind, seed):
    a, b, c, fa, fb, d = _mma_problem(kind, seed)
    selftest.launch(f"mma_{kind}", (1, 1, 1), (32, 1, 1), _ptrs(fa, fb, d))
    want = _accumulators(a.astype(np.float64) @ b.astype(np.float64) + c)
    scale = _accumulators(np.abs(a.astype(np.float64)) @ np.abs(b) + np.abs(c))
    assert np.all(np.abs(d - want) <= 4e-6 * scale)


def test_tf32_ignores_the_low_mantissa_bits(selftest):
    a, b, c, fa, fb, d = _mma_problem("tf32", 3)
    noisy = fa | np.uint32(0x1fff)                           # set every bit tf32 drops
    selftest.launch("mma_tf32", (1, 1, 1), (32, 1, 1), _ptrs(fa, fb, d))
    d2 = _accumulators(c)
    selftest.launch("mma_tf32", (1, 1, 1), (32, 1, 1), _ptrs(noisy, fb, d2))
    np.testing.assert_array_equal(d, d2)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["tf32", "bf16"])
def test_the_mma_emulation_matches_the_gpu(selftest, kind):
    """The hardware's mma.sync on the same fragments gives the emulator's D (to float
    rounding: the two sum the products in different orders)."""
    from genrecnn.backends.pycuda_backend.backend import probe
    ok, reason = probe()
    if not ok:
        pytest.skip(f"needs a CUDA GPU: {reason}")
    import pycuda.autoprimaryctx  # noqa: F401
    import pycuda.driver as drv
    from pycuda.compiler import SourceModule

    # the two products as common.cuh writes them for the GPU (mma.sync)
    header = (resources.files("genrecnn.backends.cuda_kernels") / HEADER).read_text()
    module = SourceModule("typedef float T;\ntypedef float4 V;\n#define VN 4\n" + header
                          + MMA_KERNELS, no_extern_c=True)
    for seed in range(5):
        a, b, c, fa, fb, d = _mma_problem(kind, seed)
        gpu = d.copy()
        module.get_function(f"mma_{kind}")(drv.In(fa), drv.In(fb), drv.InOut(gpu),
                                           grid=(1, 1), block=(32, 1, 1))
        selftest.launch(f"mma_{kind}", (1, 1, 1), (32, 1, 1), _ptrs(fa, fb, d))
        scale = _accumulators(np.abs(a.astype(np.float64)) @ np.abs(b) + np.abs(c))
        assert np.all(np.abs(d - gpu) <= 4e-6 * scale), (kind, seed, np.abs(d - gpu).max())
