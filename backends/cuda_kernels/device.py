"""What a CUDA backend supplies so that the launches of an op group are planned once for
both CuPy and PyCUDA (the op mixins of this package, built on :class:`Launches`): six
primitives on the backend class, each backend's own in its own argument style.

``_dev_empty(shape, dtype)``
    an uninitialised device array.
``_dev_launch(file, name, arg_types, dtype, grid, block, args, consts)``
    launch kernel ``name`` of ``file`` built for ``dtype`` (the kernels' ``T``) with the
    compile-time ``consts`` on the backend's stream, nothing for an empty grid;
    ``arg_types`` has a letter per argument: ``P`` a device array (None: a null
    pointer), ``i`` an int32, ``I`` a uint32, ``q`` an int64, ``T`` a scalar of ``dtype``.
``_dev_sm_count()``
    the device's multiprocessors.
``_dev_compute_capability()``
    (major, minor) of the device.
``_dev_ptr(a)``
    the device address of array ``a``.
``_dev_stream()``
    the raw handle of the stream the backend issues its work on (0: the default).

Pure Python: importing it needs no CUDA.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G

BLOCK = (G.THREADS, 1, 1)


class Launches:
    """The two launch shapes the op mixins share, on top of ``_dev_launch``."""

    def _flat_launch(self, file: str, name: str, arg_types: str, dtype, total: int,
                     args: tuple, consts: dict | None = None) -> None:
        """A grid-stride kernel over ``total`` items (nothing when there are none), built
        with the compile-time ``consts``."""
        if total > 0:
            self._dev_launch(file, name, arg_types, dtype,
                             (G.flat_blocks(total, self._dev_sm_count()), 1, 1), BLOCK, args,
                             consts or {})

    def _slot_launches(self, file: str, name: str, arg_types: str, dtype, sizes: list[int],
                       slot_args, tail: tuple) -> None:
        """A kernel that takes up to ``grids.UPDATE_SLOTS`` arrays by value (the updates of
        many parameters, the collective's fused buffer) over arrays of ``sizes``, one launch
        per group of them; ``slot_args(first, last)`` gives the by-value arguments of arrays
        first..last, ``tail`` follows them."""
        for first, last, grid in G.update_launches(sizes, self._dev_sm_count()):
            self._dev_launch(file, name, arg_types, dtype, grid, BLOCK,
                             (*slot_args(first, last), *tail), {})


class ChannelStatistics(Launches):
    """norm.cu's per-channel sums and batch statistics, which batch norm, the fused block and
    the convolutions' bias gradients share."""

    def _channels(self, x) -> tuple[int, ...]:
        """(N, C, S, G, rows, lts) of x[N, C, ...] for norm.cu's per-channel grid (C, G)."""
        n, c = int(x.shape[0]), int(x.shape[1])
        s = G.positions(x.shape)
        return (n, c, s) + G.channel_split(n, c, s, self._dev_sm_count())

    def _statistics_parts(self, x) -> tuple:
        """norm.cu's bn_stats_part over x[N, C, ...]: (pmean, pm2), the mean and M2 of each
        of the G blocks of every channel, and the (N, C, S, G, rows, lts) they were taken
        over."""
        n, c, s, parts, rows, lts = split = self._channels(x)
        pmean, pm2 = self._dev_empty((c * parts,), x.dtype), self._dev_empty((c * parts,), x.dtype)
        self._dev_launch("norm.cu", "bn_stats_part", "PPPiiqii", x.dtype, (c, parts, 1), BLOCK,
                         (x, pmean, pm2, n, c, s, rows, lts), {})
        return pmean, pm2, split

    def _channel_total(self, a, n: int, c: int, s: int):
        """out[c] = sum of a[N, C, S] over n and s (norm.cu's channel sums, no x)."""
        parts, rows, lts = G.channel_split(n, c, s, self._dev_sm_count())
        pa = self._dev_empty((c * parts,), a.dtype)
        self._dev_launch("norm.cu", "channel_sums", "PPPPPPiiqiii", a.dtype, (c, parts, 1),
                         BLOCK, (a, a, a, a, pa, pa, n, c, s, rows, lts, 0), {})
        out = self._dev_empty((c,), a.dtype)
        self._flat_launch("norm.cu", "channel_sums_total", "PPii", a.dtype, c, (pa, out, c, parts))
        return out
