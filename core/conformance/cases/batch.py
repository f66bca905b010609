"""batch: crops gathered from a resident training set, SpecAugment spans, mixup, and
``write`` (host values into an existing array, in place, after the work queued before it)."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance import reference_maps as ref
from genrecnn.conformance.cases.common import INDEX, Case, normal
from genrecnn.conformance.cases.support import call_in_place, seeded
from genrecnn.conformance.checks import CheckFailed, call, compare, device, output, unpack

# gather: (M clips, H bands, T frames, crop width, B examples)
GATHER_CONFIGS = [(1, 1, 5, 5, 1), (3, 2, 10, 4, 6), (4, 3, 17, 1, 9),
                  (4, 70, 1100, 1030, 35)]          # larger than a GPU block every way
# spans: (B, H, W)
SPAN_CONFIGS = [(1, 1, 1), (7, 6, 9), (40, 70, 300)]
# mix: (x shape, lam values)
MIX_CONFIGS = [((1, 3), "0,1"), ((5, 4), "0,1"), ((6, 3, 7), "uniform"),
               ((4, 2, 3, 5), "uniform"), ((40, 70, 400), "uniform")]
# write: shapes of the destination (float, then int32 as per-step indices and keys are)
WRITE_SHAPES = [(1,), (2,), (4, 5), (2, 3, 4), (40, 40, 70)]


def _shape_label(shape):
    return "x".join(map(str, shape))


# -- gather_batch ------------------------------------------------------------------------------

@seeded
def _gather_data(rng, cfg, dtype):
    m, h, t, width, b = cfg
    data = normal(rng, (m, h, t), dtype)
    labels = rng.integers(0, 10, size=m).astype(np.int32)
    index = rng.integers(0, m, size=b).astype(np.int32)           # repeats allowed
    start = rng.integers(0, t - width + 1, size=b).astype(np.int32)
    start[0] = 0                                                   # crops at both ends,
    index[-1], start[-1] = m - 1, t - width                        # the last of the last clip
    x, y = ref.gather_batch(data, labels, index, start, width)
    return {"data": data, "labels": labels, "index": index, "start": start, "x": x, "y": y}


def _gather(be, dtype, rng, cfg):
    d, width = _gather_data(cfg, dtype), cfg[3]
    out = call(be, "gather_batch", *(device(be, d[k]) for k in ("data", "labels", "index",
                                                                 "start")), width)
    x, y = unpack(out, 2, "gather_batch")
    compare("gather_batch y", output(be, y, "gather_batch y", d["y"].shape, INDEX), d["y"], INDEX)
    return compare("gather_batch x", output(be, x, "gather_batch x", d["x"].shape, dtype), d["x"],
                   dtype)


# -- mask_spans --------------------------------------------------------------------------------

@seeded
def _span_data(rng, cfg, dtype):
    b, h, w = cfg
    x = normal(rng, (b, h, w), dtype)

    def spans(size):
        start = rng.integers(-size // 2, size + 2, size=b)
        width = rng.integers(0, size // 2 + 2, size=b)
        # clipped at the start and at the end, of width 0, the whole axis
        planted = [(-2, 3), (size - 1, 5), (1, 0), (0, size)]
        for i, (s, wd) in enumerate(planted[:b]):
            start[i], width[i] = s, wd
        return start.astype(np.int32), width.astype(np.int32)
    (f0, fw), (t0, tw) = spans(h), spans(w)
    return {"x": x, "f0": f0, "fw": fw, "t0": t0, "tw": tw,
            "y": ref.mask_spans(x, f0, fw, t0, tw)}


def _spans(be, dtype, rng, cfg):
    d = _span_data(cfg, dtype)
    y = call(be, "mask_spans", *(device(be, d[k]) for k in ("x", "f0", "fw", "t0", "tw")))
    return compare("mask_spans y", output(be, y, "mask_spans y", d["x"].shape, dtype), d["y"],
                   dtype)


# -- mix ---------------------------------------------------------------------------------------

@seeded
def _mix_data(rng, cfg, dtype):
    shape, lams = cfg
    b = shape[0]
    x = normal(rng, shape, dtype)
    perm = rng.permutation(b).astype(np.int32)
    lam = rng.random(b)
    if lams == "0,1":
        lam = np.arange(b) % 2.0                                  # 0 and 1 only
    return {"x": x, "perm": perm, "lam": lam.astype(dtype), "y": ref.mix(x, perm, lam)}


def _mix(be, dtype, rng, cfg):
    d = _mix_data(cfg, dtype)
    y = call(be, "mix", *(device(be, d[k]) for k in ("x", "perm", "lam")))
    return compare("mix y", output(be, y, "mix y", d["x"].shape, dtype), d["y"], dtype)


# -- write -------------------------------------------------------------------------------------

def _write(be, dtype, rng, shape, kind):
    """dst takes the host values; the arrays allocated beside it and the host array
    keep theirs; work queued before the write still sees the old values."""
    kind = dtype if kind == "float" else INDEX
    if kind == INDEX:
        values = [rng.integers(-2 ** 31, 2 ** 31, size=shape).astype(np.int32) for _ in range(4)]
    else:
        values = [normal(rng, shape, kind) for _ in range(4)]
    left, old, right, new = values
    before, dst, after = (device(be, a) for a in (left, old, right))   # allocated in order
    if kind != INDEX:       # queued work that reads dst: mix with lam 1 copies it
        b = shape[0]
        queued = be.mix(dst, device(be, np.arange(b, dtype=np.int32)),
                        device(be, np.ones(b, dtype=dtype)))
    _, err = call_in_place(be, "write", {"dst": dst, "a": new}, {"dst": new}, dtype,
                           host=("a",))
    for where, arr, want in (("before", before, left), ("after", after, right)):
        if not np.array_equal(be.to_host(arr), want):
            raise CheckFailed(f"write changed an array allocated just {where} dst (it may "
                              f"change only dst)", float("inf"))
    if kind != INDEX:
        err = max(err, compare("mix queued before the write (it must see the old dst)",
                               output(be, queued, "mix y", shape, dtype), old, dtype))
    return err


def batch_cases(dtype):
    def cases(check, fn, cfgs, label):
        return [Case("batch", dtype, check, label(c), functools.partial(fn, cfg=c)) for c in cfgs]
    out = cases("gather", _gather, GATHER_CONFIGS,
                lambda c: "M{}H{}T{}width{}B{}".format(*c))
    out += cases("spans", _spans, SPAN_CONFIGS, lambda c: "B{}H{}W{}".format(*c))
    out += cases("mix", _mix, MIX_CONFIGS, lambda c: f"{_shape_label(c[0])}-lam{c[1]}")
    out += [Case("batch", dtype, "write", f"{kind}-{_shape_label(s)}",
                 functools.partial(_write, shape=s, kind=kind))
            for kind in ("float", INDEX) for s in WRITE_SHAPES]
    return out
