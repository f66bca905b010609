"""Threads for the NumPy backend: split the batch over the cores.

NumPy runs elementwise passes on one core and BLAS runs one small GEMM at a
time; both release the GIL. So the backend cuts the batch into one slice per
thread and runs every slice's whole pass (its GEMMs, copies and elementwise
work) in a thread of its own, with BLAS held to one thread meanwhile, so the
threads do not fight BLAS's own. The thread count follows the cores this
process may run on (``taskset``), or :func:`set_threads`, and the work: small
passes stay on fewer threads, and no pass takes more than ``MAX_THREADS``
(memory-bound ones fewer still: ``ELEMENTWISE_THREADS``, ``COPY_THREADS``).
BLAS runs on one thread throughout (see :func:`_blas_limiter`).
:func:`over_batch` splits a batch, :func:`over_blocks` a flat range into
cache-sized blocks; :func:`blockwise` and :func:`copy` are the elementwise
passes built on them.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

MIN_WORK = 1 << 18        # elements touched per thread; less work gets fewer threads
MAX_THREADS = 8           # threads one pass uses at most: on a 16-core host every pass was
                          # slower on 16 threads than on 8 (conv1d forward 7.9 against 5.2 ms)
ELEMENTWISE_THREADS = 2   # memory-bound passes, measured on that host (bench/numpy_scaling.py):
COPY_THREADS = 4          # leaky ReLU 0.82/0.69/0.83 ms and a 21 MB copy 1.98/1.13/0.70 ms on 1/2/4
MADDS_PER_ELEMENT = 32    # BLAS multiply-adds done in the time a ufunc touches one element
BLOCK = 1 << 16           # elements per call of an elementwise pass: its operands stay in cache

_lock = threading.Lock()
_requested: int | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_blas_depth = 0
_blas_limit = None        # threadpoolctl's limiter while BLAS is held to one thread
_controller = False       # threadpoolctl's controller of BLAS; False: not looked up yet
_local = threading.local()


def cores() -> int:
    """How many cores this process may run on (its affinity mask)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def set_threads(n: int | None) -> None:
    """Use ``n`` threads from now on (None: one per core of :func:`cores`)."""
    global _requested
    if n is not None and n < 1:
        raise ValueError(f"thread count must be at least 1, got {n}")
    _requested = n


def threads() -> int:
    """The number of threads a parallel pass uses."""
    return _requested or cores()


def _executor(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != size:
            old, _pool, _pool_size = _pool, ThreadPoolExecutor(
                size, thread_name_prefix="genrecnn-numpy"), size
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def slices(n: int, parts: int) -> list[slice]:
    """``parts`` contiguous slices of ``range(n)`` whose lengths differ by at most one."""
    parts = max(1, min(n, parts))
    q, r = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + q + (i < r)
        out.append(slice(start, stop))
        start = stop
    return out


def _blas_limiter():
    """threadpoolctl's controller of the loaded BLAS libraries, or None without it.

    On first use it holds BLAS to one thread for the rest of the process: this
    module's threads share out the work over the usable cores, and BLAS's own
    threads (one per core of the machine, spinning while they wait) on top of
    them oversubscribed the cores: under load the main job took 74 s instead of 18.
    """
    global _controller
    if _controller is False:
        try:
            from threadpoolctl import ThreadpoolController
            _controller = ThreadpoolController().select(user_api="blas")
            _controller.limit(limits=1)
        except ImportError:          # then BLAS keeps its threads: slower, still right
            _controller = None
    return _controller


@contextlib.contextmanager
def _one_blas_thread():
    """Hold BLAS to one thread while any parallel pass runs (counted, so that
    passes started from several threads at once restore it only at the end)."""
    global _blas_depth, _blas_limit
    with _lock:
        if _blas_depth == 0 and _blas_limiter() is not None:
            _blas_limit = _controller.limit(limits=1)
        _blas_depth += 1
    try:
        yield
    finally:
        with _lock:
            _blas_depth -= 1
            if _blas_depth == 0 and _blas_limit is not None:
                _blas_limit.restore_original_limits()
                _blas_limit = None


def _run(fn, part: slice) -> None:
    _local.inside = True
    try:
        fn(part)
    finally:
        _local.inside = False


def over_batch(fn, n: int, work: int, blas: bool = False, most: int = MAX_THREADS) -> None:
    """Call ``fn(s)`` for slices ``s`` covering ``range(n)``, on as many threads
    as ``work`` (about the number of elements the pass touches; a GEMM's
    multiply-adds count ``1 / MADDS_PER_ELEMENT`` each) keeps busy: at least
    ``MIN_WORK`` each, since every thread woken and every hand-over of the GIL
    costs time.

    The calling thread runs the first slice itself. ``blas``: ``fn`` calls
    BLAS, which is held to one thread meanwhile. ``most``: the most threads the pass
    gains from. A pass started from inside another runs serially.
    """
    _blas_limiter()
    parts = min(n, threads(), most, work // MIN_WORK)
    if parts < 2 or getattr(_local, "inside", False):
        fn(slice(0, n))
        return
    first, *rest = slices(n, parts)
    pool = _executor(threads())
    with _one_blas_thread() if blas else contextlib.nullcontext():
        futures = [pool.submit(_run, fn, s) for s in rest]
        try:
            _run(fn, first)
        finally:
            errors = [f.exception() for f in futures]
        for exc in errors:
            if exc is not None:
                raise exc


def over_blocks(fn, size: int, block: int = BLOCK, work: int | None = None) -> None:
    """Call ``fn(s)`` for slices ``s`` of at most ``block`` items covering
    ``range(size)``, the slices shared out over the threads as in :func:`over_batch`
    (``work`` as there; default ``size``).

    For elementwise passes over flattened arrays: a pass of several ufuncs
    then reads and writes each block while it is still in cache.
    """
    def run(part: slice) -> None:
        for a in range(part.start, part.stop, block):
            fn(slice(a, min(a + block, part.stop)))
    over_batch(run, size, size if work is None else work, most=ELEMENTWISE_THREADS)


def copy(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy, made by all threads: a batch read from memory (not
    cache) copies faster on several cores."""
    out = np.empty(a.shape, dtype=a.dtype)
    if a.ndim == 0:
        out[...] = a
    else:
        over_batch(lambda s: np.copyto(out[s], a[s]), a.shape[0], a.size, most=COPY_THREADS)
    return out


def blockwise(x: np.ndarray, fn, *more: np.ndarray) -> np.ndarray:
    """A new array ``out`` of x's shape from ``fn(x_block, out_block, *more_blocks)``
    on cache-sized blocks of the flattened arrays, shared out over the threads."""
    out = np.empty(x.shape, dtype=x.dtype)          # C order whatever x's layout
    flat = [a.reshape(-1) for a in (x, out, *more)]
    over_blocks(lambda b: fn(*(a[b] for a in flat)), x.size)
    return out
