"""The processes of one run: MPI ranks when launched by ``mpirun``/``srun``, else one.

genrecnn does not start processes itself: an MPI launcher (``mpirun -n 4 genrecnn
train ...``, Slurm's ``srun``) does, and mpi4py connects them. A process that no
launcher started is a world of one and never imports mpi4py, so a single process
without MPI installed runs exactly as it would without this module.

Each rank of a multi-GPU run sees one GPU: before any CUDA library starts, the
world narrows ``CUDA_VISIBLE_DEVICES`` to the device of its local rank (its index
among the ranks on the same machine), so every backend simply uses "device 0".
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from genrecnn.errors import GenrecnnError

# what MPI launchers (OpenMPI, MPICH/Hydra, Intel MPI, PMIx, Slurm's srun) put in a
# rank's environment: the world size
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
_SLURM_STEP = ("SLURM_STEP_ID", "SLURM_NTASKS")


def launched_size() -> int:
    """The number of processes an MPI launcher started this one among: 1 if none did,
    and 2 (meaning "several: ask MPI") for a launcher that names ranks but not their count."""
    for var in _SIZE_VARS:
        if os.environ.get(var, "").isdigit():
            return max(1, int(os.environ[var]))
    if all(v in os.environ for v in _SLURM_STEP) and os.environ["SLURM_NTASKS"].isdigit():
        return max(1, int(os.environ["SLURM_NTASKS"]))       # srun without a PMI variable
    if any(v in os.environ for v in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK")):
        return 2
    return 1


class World:
    """This run's ranks: ``rank`` of ``size``, ``local_rank`` of ``local_size`` on this
    machine, and the few collectives the run needs (all no-ops in a world of one)."""

    def __init__(self, comm=None):
        self.comm = comm
        self._nccl = None
        if comm is None:
            self.rank, self.size, self.local_rank, self.local_size = 0, 1, 0, 1
            return
        from mpi4py import MPI

        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()

    @property
    def is_root(self) -> bool:
        """Rank 0: the one that writes models, checkpoints, metrics and reports."""
        return self.rank == 0

    def sum(self, a: np.ndarray) -> np.ndarray:
        """Element-wise sum of ``a`` over the ranks (a new array; ``a`` is kept)."""
        a = np.ascontiguousarray(a)
        if self.comm is None:
            return a.copy()
        from mpi4py import MPI

        out = np.empty_like(a)
        self.comm.Allreduce(a, out, op=MPI.SUM)
        return out

    def sum_in_place(self, a: np.ndarray) -> None:
        """Replace contiguous ``a`` by its element-wise sum over the ranks."""
        if self.comm is None:
            return
        from mpi4py import MPI

        self.comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM)

    def broadcast(self, value, root: int = 0):
        """``value`` as rank ``root`` has it (picklable Python values only)."""
        return value if self.comm is None else self.comm.bcast(value, root=root)

    def gather(self, value) -> list | None:
        """Every rank's ``value`` in rank order on rank 0; None on the others."""
        return [value] if self.comm is None else self.comm.gather(value, root=0)

    def all_gather(self, value) -> list:
        """Every rank's ``value`` in rank order, on every rank."""
        return [value] if self.comm is None else self.comm.allgather(value)

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.Barrier()

    def all_ok(self, ok: bool) -> bool:
        """True on every rank when ``ok`` is true on every rank (a failing rank can then
        be answered everywhere instead of leaving the others waiting in a collective)."""
        return ok if self.comm is None else all(self.comm.allgather(bool(ok)))

    def share(self, n: int) -> slice:
        """This rank's part of ``n`` items split as evenly as possible, in rank order."""
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def nccl(self):
        """A NCCL communicator over the ranks (CuPy's ``cupy.cuda.nccl``), made once: rank 0
        draws the unique id and broadcasts it over MPI."""
        if self._nccl is None:
            try:
                from cupy.cuda import nccl
            except ImportError as exc:
                raise GenrecnnError(f"summing gradients between GPUs needs NCCL through CuPy "
                                    f"({exc}); pip install 'genrecnn[cupy]'") from None
            uid = self.broadcast(nccl.get_unique_id() if self.is_root else None)
            self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
        return self._nccl

    def abort(self, status: int) -> None:
        """End every rank with ``status`` (after one rank failed alone)."""
        if self.comm is not None and self.size > 1:
            self.comm.Abort(status)


def _pin_gpu(local_rank: int) -> None:
    """Let this rank see one GPU: its local rank's (before any CUDA library starts)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = [d for d in visible.split(",") if d.strip()] if visible else None
    if devices is None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(local_rank)
    elif len(devices) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[local_rank % len(devices)]


@lru_cache(maxsize=1)
def world() -> World:
    """This process's world, made on first use: MPI's when a launcher started several
    processes, else a world of one (mpi4py not imported)."""
    size = launched_size()
    if size <= 1:
        return World()
    try:
        from mpi4py import MPI
    except ImportError:
        raise GenrecnnError(f"started by an MPI launcher as one of {size} processes, but "
                            f"mpi4py is not installed; pip install 'genrecnn[mpi]'") from None
    w = World(MPI.COMM_WORLD)
    if w.local_size > 1:
        _pin_gpu(w.local_rank)
    return w
