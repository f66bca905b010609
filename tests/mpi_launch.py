"""Running Python under ``mpiexec`` from the tests, as a user would launch genrecnn: the
launcher beside this interpreter first (the MPICH wheel of ``genrecnn[mpi]`` puts it
there), OpenMPI's consent to run as root, and the reason to skip where MPI is missing."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MPIEXEC = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                       f"{os.environ.get('PATH', '')}")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           PYTHONUNBUFFERED="1")


def mpi_missing() -> str | None:
    """Why these tests cannot launch ranks here (None: they can)."""
    if MPIEXEC is None:
        return "mpiexec is not installed (pip install 'genrecnn[mpi]')"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'genrecnn[mpi]')"
    return None


needs_mpi = pytest.mark.skipif(mpi_missing() is not None, reason=str(mpi_missing()))


def run_python(args, ranks: int | None = None, timeout: int = 240):
    """``python ARGS`` (under ``mpiexec -n RANKS`` when given), its output captured."""
    cmd = ([MPIEXEC, "-n", str(ranks)] if ranks else []) + [sys.executable, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
