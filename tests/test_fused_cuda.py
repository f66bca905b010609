"""The fused op's CUDA kernels (``fused.cu``) on both CUDA backends at what the conformance
cases do not reach: a cnn2d block's size, where every per-channel reduction is split over
many blocks (forward statistics and the backward's sums over the pooled outputs), overlapping
windows, and NaN at inference; against NumPy's fused op (itself checked by the suite)."""
import numpy as np
import pytest

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.engine.registry import registry

EPS = 1e-5
TOL = {"float32": 2e-4, "float64": 1e-9}
# (z shape, size, stride): a cnn2d first block at batch 32, and overlapping windows
SHAPES = [((32, 16, 64, 64), (2, 2), (2, 2)), ((8, 24, 33, 35), (3, 3), (2, 2))]


@pytest.fixture(params=["cupy", "pycuda"])
def be(request):
    info = registry().infos.get(request.param)
    if info is None or not info.available:
        pytest.skip(f"{request.param} unavailable: {info.reason if info else 'not installed'}")
    from genrecnn.engine.registry import get_backend
    return get_backend(request.param)


def _inputs(shape, dtype):
    rng = np.random.default_rng(0)
    c = shape[1]
    gamma = 0.5 + rng.random(c)
    gamma[::3] *= -1
    gamma[1] = 0.0                                      # the window's first position wins
    return (rng.standard_normal(shape).astype(dtype), gamma.astype(dtype),
            rng.standard_normal(c).astype(dtype))


def _close(got, want, dtype, what):
    scale = max(1.0, float(np.abs(want).max()))
    assert got.shape == want.shape and got.dtype == want.dtype, what
    assert np.abs(got.astype(np.float64) - want).max() <= TOL[dtype] * scale, what


def test_the_shapes_split_every_reduction_over_several_blocks():
    (n, c, h, w), size, stride = SHAPES[0]
    q = G.pool2d_shape((n, c, h, w), size, stride)
    assert G.channel_split(n, c, h * w, 132)[0] > 1
    assert G.channel_split(n, c, q.ho * q.wo, 132)[0] > 1


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,size,stride", SHAPES)
def test_train_and_backward_match_numpy(be, dtype, shape, size, stride):
    z, gamma, beta = _inputs(shape, dtype)
    ref = NumpyBackend()
    want = ref.norm_relu_maxpool2d_train(z, gamma, beta, EPS, size, stride)
    p, argmax, mean, invstd = (be.to_host(a) for a in be.norm_relu_maxpool2d_train(
        *(be.from_host(a) for a in (z, gamma, beta)), EPS, size, stride))
    assert np.array_equal(argmax, want[1])              # z pooled by the same sign rule
    for got, w, what in zip((p, mean, invstd), (want[0], want[2], want[3]),
                            ("p", "mean", "invstd")):
        _close(got, w, dtype, what)
    dp = np.random.default_rng(1).standard_normal(p.shape).astype(dtype)
    back = ref.norm_relu_maxpool2d_backward(z, gamma, want[2], want[3], want[1], want[0], dp,
                                            size, stride)
    args = (z, gamma, want[2], want[3], want[1], want[0], dp)
    got = be.norm_relu_maxpool2d_backward(*(be.from_host(a) for a in args), size, stride)
    for g, w, what in zip(got, back, ("dz", "dgamma", "dbeta")):
        _close(be.to_host(g), w, dtype, what)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inference_keeps_nan_where_numpy_does(be, dtype):
    (n, c, h, w), size, stride = (4, 6, 10, 12), (2, 2), (2, 2)
    z, gamma, beta = _inputs((n, c, h, w), dtype)
    rng = np.random.default_rng(2)
    z[rng.random(z.shape) < 0.05] = np.nan
    z[0, :, 0, 1] = np.inf                              # a zero scale makes y NaN here too
    run_mean = rng.standard_normal(c).astype(dtype)
    run_var = (0.5 + rng.random(c)).astype(dtype)
    args = (z, gamma, beta, run_mean, run_var)
    want = NumpyBackend().norm_relu_maxpool2d_infer(*args, EPS, size, stride)
    got = be.to_host(be.norm_relu_maxpool2d_infer(*(be.from_host(a) for a in args), EPS, size,
                                                  stride))
    assert np.isnan(want).any() and np.isinf(want).any()
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[np.isinf(want)], want[np.isinf(want)])
    finite = np.isfinite(want)
    _close(got[finite], want[finite], dtype, "p")
