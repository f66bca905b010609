"""What every case module shares: the Case record, seeded input makers, and the
forward / backward / finite-difference pattern of a layer op."""
from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

INDEX = "int32"


@dataclass(frozen=True)
class Case:
    """One check of one op group at one dtype (and, for products, one precision: the
    id names it where it is not fp32); ``id`` is its readable name."""

    group: str
    dtype: str
    check: str
    label: str
    fn: Callable
    precision: str = "fp32"

    @property
    def id(self) -> str:
        at = "" if self.precision == "fp32" else f"-{self.precision}"
        return f"{self.group}-{self.dtype}{at}-{self.check}-{self.label}"

    def run(self, be) -> float:
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        return float(self.fn(be, self.dtype, rng))


def normal(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def distinct(rng, shape, dtype):
    """Values in about [-2, 2], pairwise at least 4/size apart (no ties, safe for FD)."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) * (4.0 / max(size, 1))).reshape(shape).astype(dtype)


def ties(rng, shape, dtype):
    return rng.integers(0, 3, size=shape).astype(dtype)


def with_nans(rng, shape, dtype):
    """Normal values with NaNs: row r of the flattened [rows, W] holds r % 3 of them at
    random places (none, one, or two that may share a window), and row 3 is all NaN."""
    x = normal(rng, shape, dtype)
    rows = x.reshape(-1, shape[-1])
    for r, row in enumerate(rows):
        row[rng.choice(row.size, size=min(r % 3, row.size), replace=False)] = np.nan
    if len(rows) > 3:
        rows[3] = np.nan
    return x


def random_labels(rng, n, k):
    return rng.integers(0, k, size=n).astype(np.int32)


def layer_op_cases(group, dtype, label, configs, fd_configs, forward, backward, gradcheck,
                   precision="fp32"):
    """Forward and backward against the reference on every config, and (float64
    only) finite differences on the small ``fd_configs``; each check is called
    as ``check(be, dtype, rng, cfg=config)``, forward and backward of the products
    at tf32 or bf16 with ``precision=`` too."""
    at = {} if precision == "fp32" else {"precision": precision}

    def cases(check, fn, cfgs, **kw):
        return [Case(group, dtype, check, label(c), functools.partial(fn, cfg=c, **kw),
                     precision) for c in cfgs]
    out = cases("forward", forward, configs, **at) + cases("backward", backward, configs, **at)
    if dtype == "float64":
        out += cases("gradcheck", gradcheck, fd_configs)
    return out
