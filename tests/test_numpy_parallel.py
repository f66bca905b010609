"""The NumPy backend's thread splitting (parallel.py) and the chunked convolution
that relies on it: every index covered once, errors and BLAS limits handled,
and the same results however the batch is cut."""
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from genrecnn.backends.numpy_backend import conv, parallel
from genrecnn.conformance import reference as ref

BIG = 1 << 40       # work enough for every thread


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads, and every pass big enough to split."""
    monkeypatch.setattr(parallel, "MIN_WORK", 1)
    parallel.set_threads(2)
    yield
    parallel.set_threads(None)


def blas_threads():
    """Threads of the BLAS libraries loaded when the backend first limited them
    (NumPy's among them; a library loaded later, say SciPy's, is not NumPy's)."""
    known = {i["filepath"] for i in parallel._blas_limiter().info()}
    return [i["num_threads"] for i in threadpool_info() if i["filepath"] in known]


@pytest.mark.parametrize("n,parts", [(0, 3), (1, 4), (7, 2), (7, 3), (32, 16), (5, 5)])
def test_slices_cover_the_range_evenly(n, parts):
    got = parallel.slices(n, parts)
    assert [i for s in got for i in range(s.start, s.stop)] == list(range(n))
    lengths = [s.stop - s.start for s in got]
    assert len(got) == max(1, min(n, parts)) and max(lengths) - min(lengths) <= 1


def test_over_batch_covers_each_index_once_on_several_threads(two_threads):
    seen, names = [], set()

    def fn(s):
        seen.extend(range(s.start, s.stop))
        names.add(threading.current_thread().name)
    parallel.over_batch(fn, 9, BIG)
    assert sorted(seen) == list(range(9))
    assert len(names) == 2


def test_small_work_or_one_thread_runs_in_the_caller():
    names = set()
    parallel.over_batch(lambda s: names.add(threading.current_thread().name), 8, 10)
    parallel.set_threads(1)
    try:
        parallel.over_batch(lambda s: names.add(threading.current_thread().name), 8, 1 << 30)
    finally:
        parallel.set_threads(None)
    assert names == {threading.current_thread().name}


def test_threads_follow_the_work():
    parallel.set_threads(4)
    try:
        for work, want in [(parallel.MIN_WORK - 1, 1), (2 * parallel.MIN_WORK, 2), (BIG, 4)]:
            got = []
            parallel.over_batch(lambda s: got.append(s), 8, work)
            assert len(got) == want
    finally:
        parallel.set_threads(None)


def test_memory_bound_passes_use_fewer_threads(monkeypatch):
    """GEMM passes take up to MAX_THREADS; copies COPY_THREADS; elementwise passes
    ELEMENTWISE_THREADS (more made them slower on a 16-core host)."""
    parallel.set_threads(16)
    try:
        parts = []
        parallel.over_batch(lambda s: parts.append(s), 64, BIG, blas=True)
        assert len(parts) == parallel.MAX_THREADS
        seen, real = [], parallel.over_batch

        def counting(fn, n, work, blas=False, most=parallel.MAX_THREADS):
            seen.append(most)
            return real(fn, n, work, blas, most)
        monkeypatch.setattr(parallel, "over_batch", counting)
        a = np.arange(64 * 1024 * 64, dtype=np.float64).reshape(64, -1)
        assert np.array_equal(parallel.copy(a), a) and seen == [parallel.COPY_THREADS]
        out = parallel.blockwise(a, lambda x, o: np.multiply(x, 2, out=o))
        assert np.array_equal(out, 2 * a)
        assert seen == [parallel.COPY_THREADS, parallel.ELEMENTWISE_THREADS]
    finally:
        parallel.set_threads(None)


def test_blas_is_held_to_one_thread_inside_and_restored_after(two_threads):
    before = blas_threads()
    inside = []
    parallel.over_batch(lambda s: inside.append(blas_threads()), 4, BIG, blas=True)
    assert inside and all(t == [1] * len(before) for t in inside)
    assert blas_threads() == before


def test_errors_in_a_worker_reach_the_caller_and_blas_is_restored(two_threads):
    before = blas_threads()

    def fn(s):
        if s.start > 0:
            raise ValueError("worker failed")
    with pytest.raises(ValueError, match="worker failed"):
        parallel.over_batch(fn, 4, BIG, blas=True)
    assert blas_threads() == before


def test_a_pass_inside_a_pass_runs_serially(two_threads):
    calls = []

    def outer(s):
        me = threading.current_thread().name
        parallel.over_batch(lambda t: calls.append((me, threading.current_thread().name, t)),
                            3, BIG)
    parallel.over_batch(outer, 4, BIG)
    assert len(calls) == 2
    assert all(a == b and t == slice(0, 3) for a, b, t in calls)


def test_over_blocks_respects_the_block_size(two_threads):
    seen = []
    parallel.over_blocks(lambda s: seen.append((s.start, s.stop)), 23, 4)
    assert max(b - a for a, b in seen) <= 4
    assert sorted(i for a, b in seen for i in range(a, b)) == list(range(23))


def test_thread_count_must_be_positive():
    with pytest.raises(ValueError):
        parallel.set_threads(0)
    assert parallel.threads() == parallel.cores()


@pytest.mark.parametrize("c,f", [(6, 3), (3, 6)])   # both forward strategies
def test_conv_is_the_same_however_the_batch_is_cut(two_threads, monkeypatch, c, f):
    """Chunks of one example inside each thread's slice: every boundary in play."""
    monkeypatch.setattr(conv, "CACHE_BYTES", 1)
    rng = np.random.default_rng(0)
    n, width, k = 7, 11, 3
    x, w = rng.normal(size=(n, c, width)), rng.normal(size=(f, c, k))
    b, dy = rng.normal(size=f), rng.normal(size=(n, f, width - k + 1))
    np.testing.assert_allclose(conv.forward(x, w, b), ref.conv1d(x, w, b), rtol=1e-12)
    dx, dw, db = conv.backward(x, w, dy)
    for got, want in zip((dx, dw, db), ref.conv1d_backward(x, w, dy)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert conv.backward(x, w, dy, need_dx=False)[0] is None


@pytest.mark.parametrize("kind", ["relu", "leaky_relu"])
def test_blockwise_activations_take_any_layout_and_return_c_order(two_threads, kind):
    """Another CPU backend may hand over a Fortran-ordered array (adopt shares it)."""
    from genrecnn.backends.numpy_backend import NumpyBackend
    be = NumpyBackend()
    x = np.asfortranarray(np.random.default_rng(0).normal(size=(6, 5)))
    slope = 0.01 if kind == "leaky_relu" else 0.0
    y = be.activation(kind, x, slope)
    dx = be.activation_backward(kind, x, y, np.asfortranarray(x * 3), slope)
    assert y.flags.c_contiguous and dx.flags.c_contiguous
    np.testing.assert_array_equal(y, np.where(x > 0, x, x * slope))
    np.testing.assert_array_equal(dx, x * 3 * np.where(x > 0, 1.0, slope))


def test_copy_is_c_ordered_and_independent(two_threads):
    a = np.asfortranarray(np.arange(24.0).reshape(4, 6))
    out = parallel.copy(a)
    assert out.flags.c_contiguous and out.dtype == a.dtype
    np.testing.assert_array_equal(out, a)
    a[0, 0] = -1
    assert out[0, 0] == 0
    assert parallel.copy(np.float32(3)).shape == ()
