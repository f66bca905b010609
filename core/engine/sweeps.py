"""Rows of timings for ``genrecnn bench``: every layer kind and transfer over a range of
input sizes (the dissertation's Figures 4.10-4.19), or every layer and boundary of an
architecture at its own shapes. The timing itself is :mod:`genrecnn.engine.bench`'s."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genrecnn.errors import GenrecnnError, ShapeError
from genrecnn.engine.bench import (BUDGET, REPS, LayerTiming, endpoint_name, measure_layer,
                                   measure_transfer)
from genrecnn.engine.capability import can_run
from genrecnn.engine.layers import KINDS


# -- sweeps over input sizes --------------------------------------------------------------

def sweep_case(kind: str, elements: int) -> tuple[dict, tuple[int, ...], int]:
    """(layer config, per-example input shape, batch) of about ``elements`` input values.

    Sequence layers (conv, pool, gpool, act, norm, drop) see one example of
    C x W with C = min(32, elements / 32) channels (conv keeps C filters of
    width 4, pool takes windows of 4, drop a rate of 0.5); fc sees
    N = min(32, elements / 32) rows of elements / N inputs and has 64 units;
    softmax sees rows of 10 classes. The 2-D layers of the conv and pool kinds
    are timed at an architecture's own shapes (``arch_layers``).
    """
    e = max(32, int(elements))
    if kind in ("conv", "pool", "gpool", "act", "norm", "drop"):
        c = min(32, max(1, e // 32))
        shape, batch = (c, e // c), 1
        cfg = {"conv": {"type": "conv", "filters": c, "width": 4},
               "pool": {"type": "pool", "size": 4},
               "gpool": {"type": "gpool"},
               "act": {"type": "act", "fn": "relu"},
               "norm": {"type": "batchnorm"},
               "drop": {"type": "dropout", "rate": 0.5}}[kind]
        return cfg, shape, batch
    if kind == "fc":
        n = min(32, max(1, e // 32))
        return {"type": "fc", "units": 64}, (e // n,), n
    if kind == "softmax":
        return {"type": "softmax"}, (10,), max(1, e // 10)
    raise ShapeError(f"unknown layer kind {kind!r}; use some of {', '.join(KINDS)}")


def parse_sizes(text: str) -> list[int]:
    """``"5:24"`` (exponents 5..24), ``"5:24:3"`` (every third) or ``"8,12,16"`` -> [2**k]."""
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] < 1):
                raise ValueError
            exps = list(range(parts[0], parts[1] + 1, parts[2] if len(parts) == 3 else 1))
        else:
            exps = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise GenrecnnError(f"bad size range {text!r}; write exponents of 2 as LO:HI, "
                            f"LO:HI:STEP or a comma list, e.g. 5:24") from None
    if not exps or min(exps) < 5 or max(exps) > 30:
        raise GenrecnnError(f"size range {text!r} gives no exponents in 5..30; "
                            f"e.g. --sizes 5:24 for 2^5 to 2^24 elements")
    return [2 ** k for k in exps]


@dataclass
class SweepLimits:
    """Stop a backend's sweep of one layer kind once a call grows this slow."""

    max_call_s: float = 2.0
    skipped: list[str] = field(default_factory=list)


def _rows_for(timing: LayerTiming, base: dict) -> list[dict]:
    return [dict(base, backend=timing.backend, phase=phase, **t.as_dict())
            for phase, t in timing.phases().items()]


def sweep_layers(backends, kinds, sizes, dtype: str, *, reps: int = REPS,
                 budget: float = BUDGET, limits: SweepLimits | None = None,
                 progress=None, precision: str = "fp32") -> list[dict]:
    """Forward and backward rows for every (kind, size, backend) that can run it (conv
    and fc layers at ``precision``).

    A backend whose call at one size took longer than ``limits.max_call_s``
    skips the larger sizes of that kind (noted in ``limits.skipped``), and
    one that runs out of memory or lacks an op is skipped with the reason.
    """
    limits = limits or SweepLimits()
    rows: list[dict] = []
    for kind in kinds:
        too_slow: set[str] = set()
        for size in sizes:
            cfg, shape, batch = sweep_case(kind, size)
            for be in backends:
                if progress:
                    progress(f"{kind} 2^{int(np.log2(size))} on {be.name}")
                if be.name in too_slow or not can_run(be, cfg["type"], dtype,
                                                      precision=precision):
                    continue
                base = {"kind": kind, "layer": kind, "elements": batch * int(np.prod(shape)),
                        "shape": "x".join(map(str, (batch, *shape)))}
                try:
                    t = measure_layer(be, cfg, shape, batch, dtype, reps=reps, budget=budget,
                                      precision=precision)
                except (MemoryError, GenrecnnError) as exc:
                    limits.skipped.append(f"{kind} {base['shape']} on {be.name}: "
                                          f"{type(exc).__name__}: {exc}")
                    too_slow.add(be.name)
                    continue
                rows.extend(_rows_for(t, base))
                slowest = max(x.median for x in t.phases().values())
                if slowest > limits.max_call_s:
                    too_slow.add(be.name)
                    limits.skipped.append(f"{kind} beyond {base['shape']} on {be.name}: "
                                          f"a call took {slowest:.2f} s")
    return rows


def transfer_pairs(backends) -> list[tuple]:
    """Every ordered (src, dst) among the backends and the host (None), src != dst."""
    ends = [None, *backends]
    return [(a, b) for a in ends for b in ends
            if a is not b and not (a is not None and b is not None and a.name == b.name)]


def sweep_transfers(backends, sizes, dtype: str, *, reps: int = REPS, budget: float = BUDGET,
                    limits: SweepLimits | None = None, progress=None) -> list[dict]:
    """Transfer rows for every ordered pair of endpoints at every size (flat arrays)."""
    limits = limits or SweepLimits()
    rows = []
    for src, dst in transfer_pairs(backends):
        pair = f"{endpoint_name(src)}>{endpoint_name(dst)}"
        for size in sizes:
            if progress:
                progress(f"transfer {pair} 2^{int(np.log2(size))}")
            try:
                t = measure_transfer(src, dst, (size,), dtype, reps=reps, budget=budget)
            except (MemoryError, GenrecnnError) as exc:
                limits.skipped.append(f"transfer {pair} {size}: {type(exc).__name__}: {exc}")
                break
            rows.append({"src": endpoint_name(src), "dst": endpoint_name(dst), "pair": pair,
                         "elements": size, "shape": str(size), **t.as_dict()})
    return rows


# -- an architecture's own shapes ---------------------------------------------------------

def arch_layers(network, backends, batch: int, *, optimizer: str | None = None,
                kinds=None, reps: int = REPS, budget: float = BUDGET, progress=None) -> list[dict]:
    """Rows for every layer of ``network`` (of ``kinds``, default all) at its real
    shapes and ``batch``, per backend that can run it."""
    rows = []
    for layer in network.layers:
        if kinds is not None and layer.kind not in kinds:
            continue
        for be in backends:
            if not can_run(be, layer, network.dtype, optimizer, network.precision):
                continue
            if progress:
                progress(f"{layer.name} on {be.name}")
            t = measure_layer(be, layer.config(), layer.input_shape, batch, network.dtype,
                              optimizer=optimizer, reps=reps, budget=budget,
                              precision=network.precision)
            shape = (batch, *layer.input_shape)
            rows.extend(_rows_for(t, {"kind": layer.kind, "layer": layer.name,
                                      "elements": int(np.prod(shape)),
                                      "shape": "x".join(map(str, shape))}))
    return rows


def boundary_shapes(network, batch: int) -> list[tuple[str, tuple[int, ...]]]:
    """(label, batched shape) of every array the network may move between backends:
    the input, each layer's output (forward) which is also its gradient (backward)."""
    out = [("input", (batch, *network.input_shape))]
    for layer in network.layers:
        out.append((layer.name, (batch, *layer.output_shape)))
    return out


def arch_transfers(network, backends, batch: int, *, reps: int = REPS, budget: float = BUDGET,
                   progress=None) -> list[dict]:
    """Transfer rows at each distinct boundary shape of ``network``, every endpoint pair."""
    rows, seen = [], set()
    for label, shape in boundary_shapes(network, batch):
        if shape in seen:
            continue
        seen.add(shape)
        for src, dst in transfer_pairs(backends):
            pair = f"{endpoint_name(src)}>{endpoint_name(dst)}"
            if progress:
                progress(f"transfer {pair} after {label}")
            t = measure_transfer(src, dst, shape, network.dtype, reps=reps, budget=budget)
            rows.append({"src": endpoint_name(src), "dst": endpoint_name(dst), "pair": pair,
                         "after": label, "elements": int(np.prod(shape)),
                         "shape": "x".join(map(str, shape)), **t.as_dict()})
    return rows
