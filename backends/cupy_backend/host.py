"""What the CuPy backend's op mixins need from the class that hosts them
(:class:`.backend.CupyBackend`). Each mixin derives from :data:`HostBase`, which is
:class:`CupyHost` to a type checker and ``object`` at run time, so the checker sees every
helper a mixin calls and the class hierarchy stays as it was. (Kernels are launched
through the functions of :mod:`.kernels`, not through the host.)"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol


class CupyHost(Protocol):
    """The CuPy backend as its mixins see it."""

    # id(x) -> (weak reference to x, taps, column matrix): the forward's im2col kept for
    # the backward of the same input
    _cols: dict[int, tuple]

    def _remember_cols(self, x, k: int, cols) -> None:
        """Keep ``cols``, the column matrix of ``x``, until ``x`` dies."""

    def _forward_cols(self, x, k: int) -> Any:
        """The remembered column matrix of a conv1d input, or a new one."""

    def _im2col(self, x, k: int) -> Any:
        """The column matrix [C*K, N*Wo] of a conv1d input (:mod:`.sequence`)."""

    def _channels(self, x) -> tuple:
        """norm.cu's per-channel split of x (:mod:`...cuda_kernels.device`)."""

    def _channel_total(self, a, n: int, c: int, s: int) -> Any:
        """out[c] = sum of a[N, C, S] over n and s (:mod:`...cuda_kernels.device`)."""

    def _statistics_parts(self, x) -> tuple:
        """norm.cu's per-block batch statistics of x and the split they used
        (:mod:`...cuda_kernels.device`)."""


if TYPE_CHECKING:
    HostBase = CupyHost
else:
    HostBase = object
