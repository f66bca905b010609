"""The collective op: planted bugs fail exactly their group in the shipped suite, and
under ``mpiexec -n 2`` the NumPy backend sums over the ranks with each rank's weight."""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from genrecnn.backends.numpy_backend import NumpyBackend
from genrecnn.conformance import FAIL, run_conformance

MPIEXEC = shutil.which("mpiexec")
try:
    import mpi4py  # noqa: F401
    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False
needs_mpi = pytest.mark.skipif(MPIEXEC is None or not HAVE_MPI4PY,
                               reason="needs mpiexec and mpi4py (pip install 'genrecnn[mpi]')")


class ForgetsTheWeight(NumpyBackend):
    name = "bug-sum-unweighted"

    def sum_across(self, arrays, weight, world):
        return super().sum_across(arrays, 1.0, world)


class FusesOnlyTheFirst(NumpyBackend):
    name = "bug-sum-first"

    def sum_across(self, arrays, weight, world):
        return super().sum_across(arrays[:1], weight, world)


@pytest.mark.parametrize("cls", [ForgetsTheWeight, FusesOnlyTheFirst])
def test_planted_collective_bugs_fail(cls):
    report = run_conformance(cls(), ops=["collective"])
    failed = [c for c in report.cases if c.status == FAIL]
    assert failed and all("sum_across" in c.id for c in failed), report.text()
    assert not report.ok


def test_correct_collective_passes():
    assert run_conformance(NumpyBackend(), ops=["collective"]).ok


SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from genrecnn.backends.numpy_backend import NumpyBackend
    from genrecnn.world import world
    w = world()
    arrays = [np.full((2, 3), w.rank + 1.0), np.arange(4.0) * (w.rank + 1)]
    NumpyBackend().sum_across(arrays, [0.25, 0.75][w.rank], w)
    print(json.dumps({"rank": w.rank, "size": w.size, "a": arrays[0].tolist(),
                      "b": arrays[1].tolist()}))
""")


@needs_mpi
def test_sum_across_two_ranks(tmp_path):
    script = tmp_path / "sum.py"
    script.write_text(SCRIPT)
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script)], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
                                                           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1"))
    assert done.returncode == 0, done.stderr
    import json
    rows = sorted((json.loads(line) for line in done.stdout.splitlines()), key=lambda r: r["rank"])
    assert [r["size"] for r in rows] == [2, 2]
    want_a = np.full((2, 3), 0.25 * 1 + 0.75 * 2)
    want_b = np.arange(4.0) * (0.25 * 1 + 0.75 * 2)
    for r in rows:
        np.testing.assert_allclose(r["a"], want_a)
        np.testing.assert_allclose(r["b"], want_b)
