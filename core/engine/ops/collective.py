"""The contract's collective op: gradients summed over the ranks of a data-parallel run.

Each rank of ``mpirun -n N genrecnn train`` holds a copy of the network and computes
the gradients of its share of every global batch; :meth:`~CollectiveOps.sum_across`
turns each rank's gradients into the global batch's, in one fused buffer and one
collective call per step (NCCL between GPUs, MPI ``Allreduce`` between CPU ranks), as
Horovod's tensor fusion and PyTorch DDP's buckets do. Conventions in
:mod:`genrecnn.engine.ops`.
"""
from __future__ import annotations


class CollectiveOps:
    """sum_across."""

    def sum_across(self, arrays: list, weight: float, world) -> None:
        """Replace every array ``x`` of ``arrays`` in place by ``sum_r weight_r * x_r``
        over the ranks ``r`` of ``world`` (a :class:`genrecnn.world.World`), where
        ``weight_r`` is the ``weight`` that rank ``r`` passed (a rank's share of the
        global batch, so that means over each rank's examples become the mean over the
        global batch). Returns None.

        ``arrays``: this backend's floating arrays, one dtype, C-contiguous, any shapes;
        every rank passes arrays of the same shapes in the same order. The arrays are
        summed as one fused buffer in one collective call. In a world without a
        communicator (``world.comm is None``: one process) the result is
        ``weight * x``. On a CUDA backend the call only queues work on the compute
        stream and reads nothing back, so a captured step may contain it.
        """
        raise self._unsupported("sum_across")
