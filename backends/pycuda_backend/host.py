"""What the PyCUDA backend's op mixins need from the class that hosts them
(:class:`.backend.PycudaBackend`). Each mixin derives from :data:`HostBase`, which is
:class:`PycudaHost` to a type checker and ``object`` at run time, so the checker sees every
helper a mixin calls and the class hierarchy stays as it was."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol


class PycudaHost(Protocol):
    """The PyCUDA backend as its mixins see it."""

    sm_count: int                    # streaming multiprocessors of the device
    _drv: Any                        # pycuda.driver
    _pool: Any                       # the device memory pool arrays come from
    _stream: Any                     # the stream every op is issued on (None: default)

    def _empty(self, shape, dtype) -> Any:
        """An uninitialised array from the pool."""

    @staticmethod
    def _ptr(a) -> int:
        """The device address of an array (0 for an empty one)."""

    def _zero_fill(self, a) -> None:
        """Set ``a`` to zero on the backend's stream."""

    def _launch(self, file: str, name: str, arg_types: str, dtype: str, grid, block, *args,
                **consts) -> None:
        """Launch kernel ``name`` of ``file`` (built for ``dtype`` and ``consts``)."""

    def _run(self, file: str, name: str, arg_types: str, dtype: str, grid, block, *args,
             **consts) -> None:
        """``_launch`` unless the grid is empty."""

    def _elementwise(self, name: str, arg_types: str, dtype: str, n: int, *args,
                     file: str = "elementwise.cu", **consts) -> None:
        """A grid-stride kernel over ``n`` items (nothing when ``n`` is 0)."""

    def _stream_handle(self) -> int | None:
        """The raw handle of ``_stream`` (None: the default stream)."""

    def _settle(self) -> None:
        """Wait for ``_stream`` before a synchronous copy on the default stream."""

    def _tile(self, m: int, n: int, batches: int) -> dict:
        """The GEMM tiling for an m x n output (:mod:`.gemm`)."""

    def _gemm(self, name, dtype, m, n, batches, tile, args, arg_types, **consts) -> None:
        """Launch a tiled kernel of ``gemm.cu`` (:mod:`.gemm`)."""

    def _sum_splits(self, dt, part, out, splits, size, bias=None, ncols=1) -> None:
        """Add the slices of a split-K reduction (:mod:`.gemm`)."""

    def _conv_dw(self, x, dy, dw, dt, n, c, width, f, k, wo) -> None:
        """Split-K weight gradient of a convolution on the GEMM tiles (:mod:`.gemm`)."""

    def _dense_gemm(self, name, dt, m, n, r, inputs, bias, out, dims) -> None:
        """A dense kernel of ``gemm.cu`` into ``out``, split-K where it pays (:mod:`.gemm`)."""

    def _channels(self, x) -> tuple:
        """norm.cu's per-channel split of x (:mod:`...cuda_kernels.device`)."""

    def _channel_total(self, a, n: int, c: int, s: int) -> Any:
        """out[c] = sum of a[N, C, S] over n and s (:mod:`...cuda_kernels.device`)."""

    def _statistics_parts(self, x) -> tuple:
        """norm.cu's per-block batch statistics of x and the split they used
        (:mod:`...cuda_kernels.device`)."""

    def zeros(self, shape, dtype) -> Any: ...

    def to_host(self, x) -> Any: ...

    def from_host(self, a) -> Any: ...


if TYPE_CHECKING:
    HostBase = PycudaHost
else:
    HostBase = object
