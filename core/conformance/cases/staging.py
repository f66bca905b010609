"""staging: page-locked host buffers and asynchronous uploads into existing device arrays.

Every upload must arrive bit for bit once awaited; work queued before an upload must
still see the old contents; a staging buffer rewritten after ``upload_finished`` must
not reach the device; two uploads in flight to two slots must both arrive; and the
double-buffered pipeline the step runner drives (:mod:`genrecnn.engine.steps`) must give
every step its own batch. Work that reads the slots is queued with ``mix`` (lam 1: a
copy) where the backend has the ``batch`` ops, the only place uploads are used;
elsewhere the slots are read back at once.
"""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance.checks import CheckFailed, output
from genrecnn.conformance.cases.common import Case, normal

# upload shapes: a single value, a small matrix, a batch larger than a GPU block every way
SHAPES = [(1,), (3, 4), (40, 70, 300)]
PIPELINE_STEPS = 7


def _label(shape) -> str:
    return "x".join(map(str, shape))


def _values(rng, shape, dtype) -> np.ndarray:
    """Normal values with the bits a transfer must keep: -0.0, the extremes, NaN."""
    a = normal(rng, shape, dtype, 10.0)
    info = np.finfo(dtype)
    special = np.array([-0.0, info.max, -info.tiny, np.nan], dtype=dtype)
    flat = a.reshape(-1)
    flat[:min(flat.size, special.size)] = special[:flat.size]
    return a


def _exact(what: str, got: np.ndarray, want: np.ndarray) -> None:
    """Uploads move bits: values, NaN and the sign of zero must survive unchanged."""
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    bad = ~same | (np.signbit(got) != np.signbit(want))
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CheckFailed(f"{what}{list(idx)} = {got[idx].item()!r}, expected "
                          f"{want[idx].item()!r}", float("inf"))


def _pinned(be, shape, dtype) -> np.ndarray:
    """pinned_empty's array, checked: a writable C-contiguous NumPy array as asked."""
    a = be.pinned_empty(shape, dtype)
    if not isinstance(a, np.ndarray):
        raise CheckFailed(f"pinned_empty returned {type(a).__name__}, expected a numpy array")
    if a.shape != tuple(shape) or str(a.dtype) != dtype:
        raise CheckFailed(f"pinned_empty({shape}, {dtype!r}) gave {a.dtype}{a.shape}")
    if not (a.flags.c_contiguous and a.flags.writeable):
        raise CheckFailed("pinned_empty's array must be C-contiguous and writable")
    return a


def _reader(be, dtype):
    """A function queueing a copy of a device array on the compute stream (None: read
    back at once instead, for backends without the batch ops)."""
    if not be.supports("batch"):
        return None

    def read(x):
        b = int(x.shape[0])
        return be.mix(x, be.from_host(np.arange(b, dtype=np.int32)),
                      be.from_host(np.ones(b, dtype=dtype)))
    return read


def _arrive(be, dtype, rng, shape):
    """The data arrives exactly; host is left alone; work queued before sees the old dst."""
    old, new = _values(rng, shape, dtype), _values(rng, shape, dtype)
    dst = be.from_host(old)
    read = _reader(be, dtype)
    before = read(dst) if read else None
    host = _pinned(be, shape, dtype)
    host[...] = new
    token = be.upload_async(host, dst)
    be.await_upload(token)
    got = output(be, dst, "dst after await_upload", shape, dtype)
    _exact("dst after await_upload", got, new)
    be.upload_finished(token)
    _exact("the staging buffer after the upload (upload_async may not change it)", host, new)
    if before is not None:
        _exact("mix queued before upload_async (it must see the old dst)",
               output(be, before, "mix y", shape, dtype), old)
    return 0.0


def _rewrite(be, dtype, rng, shape):
    """After upload_finished the staging buffer is the host's again: rewriting it leaves
    dst alone, and uploading it again brings the new values."""
    first, second = _values(rng, shape, dtype), _values(rng, shape, dtype)
    dst = be.zeros(shape, dtype)
    host = _pinned(be, shape, dtype)
    host[...] = first
    token = be.upload_async(host, dst)
    be.upload_finished(token)
    host[...] = second
    be.await_upload(token)
    _exact("dst (the staging buffer was rewritten after upload_finished; dst must hold "
           "what it held before)", output(be, dst, "dst", shape, dtype), first)
    token = be.upload_async(host, dst)
    be.await_upload(token)
    be.upload_finished(token)
    _exact("dst after a second upload of the same staging buffer",
           output(be, dst, "dst", shape, dtype), second)
    return 0.0


def _two_in_flight(be, dtype, rng, shape):
    """Two uploads started before either is awaited each reach their own slot."""
    values = [_values(rng, shape, dtype) for _ in range(2)]
    slots = [be.zeros(shape, dtype) for _ in range(2)]
    hosts = [_pinned(be, shape, dtype) for _ in range(2)]
    tokens = []
    for host, slot, v in zip(hosts, slots, values):
        host[...] = v
        tokens.append(be.upload_async(host, slot))
    for token in reversed(tokens):
        be.await_upload(token)
    for k, (slot, v) in enumerate(zip(slots, values)):
        _exact(f"slot {k} of two uploads in flight", output(be, slot, f"slot {k}", shape,
                                                            dtype), v)
    for token in tokens:
        be.upload_finished(token)
    return 0.0


def _pipeline(be, dtype, rng, shape):
    """The step runner's double buffering: before step i the compute waits for upload i,
    upload i + 1 starts into the other slot (after the host waited for upload i - 1 to
    finish reading its staging buffer), then step i reads its slot."""
    values = [_values(rng, shape, dtype) for _ in range(PIPELINE_STEPS)]
    slots = [be.zeros(shape, dtype) for _ in range(2)]
    hosts = [_pinned(be, shape, dtype) for _ in range(2)]
    tokens: list = [None, None]
    read = _reader(be, dtype)

    def start(i):
        k = i % 2
        if tokens[k] is not None:
            be.upload_finished(tokens[k])
        hosts[k][...] = values[i]
        tokens[k] = be.upload_async(hosts[k], slots[k])

    seen = []
    start(0)
    for i in range(PIPELINE_STEPS):
        be.await_upload(tokens[i % 2])
        if i + 1 < PIPELINE_STEPS:
            start(i + 1)
        slot = slots[i % 2]
        seen.append(read(slot) if read else output(be, slot, f"slot at step {i}", shape, dtype))
    for i, (got, want) in enumerate(zip(seen, values)):
        host = got if isinstance(got, np.ndarray) else output(be, got, "mix y", shape, dtype)
        _exact(f"the batch step {i} read from slot {i % 2}", host, want)
    return 0.0


def staging_cases(dtype):
    checks = [("arrive", _arrive), ("rewrite", _rewrite), ("two-in-flight", _two_in_flight),
              ("pipeline", _pipeline)]
    return [Case("staging", dtype, check, _label(s), functools.partial(fn, shape=s))
            for check, fn in checks for s in SHAPES]
