"""Every launch of both CUDA backends passes the arguments its kernel takes, checked without
a GPU: each op runs with its launches recorded instead of made (NumPy arrays stand in for
device arrays), and every recorded launch is compared, argument by argument, with the
kernel's parameter list in its ``.cu`` file (pointer, int, long long, unsigned int or T of
the op's dtype). CuPy passes NumPy scalars by their own size, so an int64 where the kernel
takes an int is a real bug there; PyCUDA checks its argument letters the same way."""
from __future__ import annotations

import types
from contextlib import contextmanager

import numpy as np
import pytest

from cuda_emulator import cupy_standin
from cuda_emulator.signatures import package_params
from genrecnn.backends.pycuda_backend.backend import PycudaBackend
from genrecnn.world import World

LETTERS = {"P": "ptr", "i": "int", "q": "long long", "I": "unsigned int", "T": "T"}
PARAMS = package_params()          # (file, kernel) -> parameter kinds, read from the .cu files


def _ops(be, dt):
    """Call every op of the contract once with small shapes (few and many filters, one
    and several input channels, every activation)."""
    r = np.random.default_rng(0)

    def a(*shape):
        return r.standard_normal(shape).astype(dt)

    def i(*shape, high=2):
        return r.integers(0, high, shape).astype(np.int32)

    x, xm, x1 = a(2, 3, 20), a(2, 3, 8, 9), a(2, 1, 8, 9)
    for f in (4, 80):                                           # direct and GEMM conv1d
        w, b = a(f, 3, 5), a(f)
        y = be.conv1d(x, w, b)
        be.conv1d_backward(x, w, y)
        be.conv1d_backward_params(x, w, y)
    for xx in (xm, x1):                                         # im2col and one-channel conv2d
        w, b = a(4, xx.shape[1], 3, 3), a(4)
        y = be.conv2d(xx, w, b, (1, 2), (1, 1))
        be.conv2d_backward(xx, w, y, (1, 2), (1, 1))
    y, am = be.maxpool1d(x, 2, 2)
    be.maxpool1d_backward(y, am, 20)
    y, am = be.global_pool(x)
    be.global_pool_backward(x, y, am, y)
    y, am = be.maxpool2d(xm, (2, 2), (2, 2))
    be.maxpool2d_backward(y, am, 8, 9)
    wd, bd = a(6, 5), a(5)
    y = be.dense(a(4, 6), wd, bd)
    be.dense_backward(a(4, 6), wd, y)
    for kind in ("relu", "leaky_relu", "sigmoid", "tanh"):
        y = be.activation(kind, a(4, 6), 0.1)
        be.activation_backward(kind, a(4, 6), y, a(4, 6), 0.1)
    be.activation("relu", a(3, 3))                              # not a whole number of vectors
    logits, labels = a(4, 5), i(4, high=5)
    be.softmax(logits)
    be.softmax_cross_entropy(logits, labels)
    be.softmax_cross_entropy_backward(logits, labels)
    be.sgd_update(a(7), a(7), a(7), 0.1, 0.9, 1e-4)
    be.adam_update(a(7), a(7), a(7), a(7), 3, 0.1, 0.9, 0.999, 1e-8, 1e-4, 1e-2)
    params = [a(7), a(3, 2)]
    be.sgd_update_many(params, params, params, a(3))
    be.adam_update_many(params, params, params, params, a(8))
    y, mean, invstd = be.batchnorm_train(xm, a(3), a(3), 1e-5)
    be.batchnorm_running_update(a(3), a(3), mean, invstd, 144, 0.1, 1e-5)
    be.batchnorm_infer(xm, a(3), a(3), a(3), a(3) ** 2, 1e-5)
    be.batchnorm_backward(xm, a(3), mean, invstd, y)
    p, am, mean, invstd = be.norm_relu_maxpool2d_train(xm, a(3), a(3), 1e-5, (2, 2), (2, 2))
    be.norm_relu_maxpool2d_infer(xm, a(3), a(3), a(3), a(3) ** 2, 1e-5, (2, 2), (2, 2))
    be.norm_relu_maxpool2d_backward(xm, a(3), mean, invstd, am, p, p, (2, 2), (2, 2))
    if dt == "float32":                                         # mma.cu's tensor-core paths
        for precision in ("tf32", "bf16"):
            for f in (4, 80):
                w, b = a(f, 3, 5), a(f)
                y = be.conv1d(x, w, b, precision=precision)
                be.conv1d_backward(x, w, y, precision=precision)
                be.conv1d_backward_params(x, w, y, precision=precision)
            for xx in (xm, x1):
                w, b = a(4, xx.shape[1], 3, 3), a(4)
                y = be.conv2d(xx, w, b, (1, 2), (1, 1), precision=precision)
                be.conv2d_backward(xx, w, y, (1, 2), (1, 1), precision=precision)
                be.conv2d_backward_params(xx, w, y, (1, 2), (1, 1), precision=precision)
            for rows, cols in ((4, 6), (1000, 300)):            # unsplit and split-K
                xd, wd = a(rows, cols), a(cols, 5)
                be.dense_backward(xd, wd, be.dense(xd, wd, a(5), precision=precision),
                                  precision=precision)
    key = np.array([7, 9], dtype=np.uint32)
    be.dropout(xm, 0.25, key)
    be.dropout_backward(xm, 0.25, key)
    be.gather_batch(a(5, 3, 30), i(5), i(2, high=5), i(2, high=10), 8)
    be.mask_spans(x, i(2), i(2), i(2), i(2))
    be.mix(x, i(2), a(2))
    be.softmax_cross_entropy_acc(logits, labels, labels, a(4), a(2))
    be.softmax_cross_entropy_acc_backward(logits, labels, labels, a(4))
    be.softmax_cross_entropy_acc(logits, labels, labels, a(4), a(2), smoothing=0.1)
    be.softmax_cross_entropy_acc_backward(logits, labels, labels, a(4), smoothing=0.1)
    grads = [a(7), a(3, 2)]
    be.sum_across(grads, 0.5, World())                          # a world of one: scaled in place
    with _no_nccl():
        be.sum_across(grads, 0.5, types.SimpleNamespace(comm=True))   # fused, summed, back


@contextmanager
def _no_nccl():
    """The NCCL sum left out (nothing to sum with here); the launches around it stay."""
    from genrecnn.backends.cuda_kernels import collective
    saved = collective.nccl_sum_in_place
    collective.nccl_sum_in_place = lambda *args: None
    try:
        yield
    finally:
        collective.nccl_sum_in_place = saved


def _check(launches: list) -> None:
    assert len(launches) > 40
    fused = {name for file, name in PARAMS if file == "fused.cu"}
    assert fused <= {name for file, name, _ in launches}, "the fused ops run fused.cu's kernels"
    bad = []
    for file, name, kinds in launches:
        want = PARAMS.get((file, name))
        if want is None:
            bad.append(f"{file}:{name} does not exist")
            continue
        # a pointer may travel as a 64-bit integer (0: a null pointer)
        fits = len(kinds) == len(want) and all(
            have == need or (need == "ptr" and have in ("long long", "u64"))
            for have, need in zip(kinds, want))
        if not fits:
            bad.append(f"{file}:{name} takes {want}, was given {kinds}")
    assert not bad, "\n".join(bad)


# -- PyCUDA -------------------------------------------------------------------------------

@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_pycuda_launches_match_their_kernels(dt):
    be = PycudaBackend.__new__(PycudaBackend)
    be.sm_count, launches = 132, []

    def launch(file, name, arg_types, dtype, grid, block, *args, **consts):
        assert len(arg_types) == len(args), f"{name}: {arg_types} for {len(args)} arguments"
        launches.append((file, name, [LETTERS[c] for c in arg_types]))

    be._launch = launch
    be._empty = lambda shape, dtype: np.empty(tuple(int(s) for s in shape), dtype=dtype)
    be._ptr = lambda a: 1
    be._zero_fill = lambda a: None
    be._stream = None
    be._drv = types.SimpleNamespace(memcpy_dtod_async=lambda *args: None)
    be._dev_compute_capability = lambda: (9, 0)
    be.to_host = lambda x: np.zeros(x.shape, x.dtype)
    _ops(be, dt)
    _check(launches)


# -- CuPy ---------------------------------------------------------------------------------

def _device(a):
    return cupy_standin.array(np.ascontiguousarray(a))


def _fake_cupy():
    """The emulator's cupy stand-in, and the stream the collective op asks for."""
    return types.SimpleNamespace(
        empty=cupy_standin.empty, zeros=cupy_standin.zeros, empty_like=cupy_standin.empty_like,
        ndarray=cupy_standin.ndarray, asarray=cupy_standin.asarray,
        asnumpy=cupy_standin.asnumpy, int32=np.int32,
        cuda=types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=0)))


def _kind(value, dt: str) -> str:
    if isinstance(value, np.ndarray):
        return "ptr"
    name = {np.int32: "int", np.int64: "long long", np.uint32: "unsigned int",
            np.uint64: "u64"}.get(type(value))
    if name:
        return name
    return "T" if type(value) is np.dtype(dt).type else f"wrong scalar {type(value).__name__}"


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_cupy_launches_match_their_kernels(dt, monkeypatch):
    from genrecnn.backends.cupy_backend import backend, blas, kernels, maps, sequence
    launches = []

    def launch(file, name, dtype, grid, block, args, **consts):
        if min(grid) > 0:
            launches.append((file, name, [_kind(v, dt) for v in args]))

    def matmul(a, b, trans_a=False, trans_b=False, out=None):
        return _device((a.T if trans_a else a) @ (b.T if trans_b else b))

    fake = _fake_cupy()
    for module in (backend, maps, sequence):
        monkeypatch.setattr(module, "cp", fake, raising=False)
    monkeypatch.setattr(kernels, "launch", launch)
    monkeypatch.setattr(kernels, "current_sm_count", lambda: 132)
    monkeypatch.setattr(kernels, "compute_capability", lambda: (9, 0))
    monkeypatch.setattr(blas, "matmul", matmul)
    be = backend.CupyBackend()

    def on_device(method):
        def call(*args, **kw):
            return method(*[_device(v) if isinstance(v, np.ndarray) else
                            [_device(p) for p in v] if isinstance(v, list) else v
                            for v in args], **kw)
        return call

    proxy = types.SimpleNamespace(**{m: on_device(getattr(be, m)) for m in dir(be)
                                     if not m.startswith("__") and callable(getattr(be, m))})
    _ops(proxy, dt)
    _check(launches)
