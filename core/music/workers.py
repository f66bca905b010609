"""Worker processes for feature extraction: never more than the usable cores, never orphans.

A worker asks the kernel (Linux ``PR_SET_PDEATHSIG``) to send it SIGTERM when
the process that started it dies, so ``kill`` on a running ``genrecnn features``
(or any command loading a dataset) takes its workers with it instead of
leaving them decoding for nobody.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1


def usable_cores() -> int:
    """How many cores this process may run on (its affinity mask, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def worker_count(jobs: int, n_tasks: int) -> int:
    """The processes worth starting: ``jobs`` at most, no more than the usable cores or tasks."""
    return max(1, min(jobs, usable_cores(), n_tasks))


def _die_with(parent: int) -> None:
    """Pool initializer: SIGTERM this worker when ``parent`` ends (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):     # no prctl here: workers end when their queue closes
        return
    if os.getppid() != parent:            # the parent died before the request was in place
        os._exit(1)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers`` processes that die with this process."""
    return ProcessPoolExecutor(max_workers=workers, initializer=_die_with,
                               initargs=(os.getpid(),))
