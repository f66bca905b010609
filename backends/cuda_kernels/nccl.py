"""The cross-rank sum both CUDA backends make of their fused gradient buffer: one NCCL
all-reduce (CuPy's ``cupy.cuda.nccl``) on the stream the backend issues its work on, so
it orders with the step around it and a captured step graph contains it."""
from __future__ import annotations


def nccl_sum_in_place(world, ptr: int, count: int, dtype: str, stream: int) -> None:
    """Replace the ``count`` values of ``dtype`` at device address ``ptr`` by their sum
    over the ranks of ``world`` (its NCCL communicator), queued on ``stream``."""
    from cupy.cuda import nccl

    kind = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}[str(dtype)]
    world.nccl().allReduce(ptr, ptr, count, kind, nccl.NCCL_SUM, stream)
