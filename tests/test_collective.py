"""The collective op: planted bugs fail exactly their group in the shipped suite, and
under ``mpiexec -n 2`` the NumPy backend sums over the ranks with each rank's weight."""
import textwrap

import numpy as np
import pytest

from genrecnn.backends.numpy_backend import NumpyBackend
from genrecnn.conformance import FAIL, run_conformance
from mpi_launch import needs_mpi, run_python


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
    rows = w.gather({"rank": w.rank, "size": w.size, "a": arrays[0].tolist(),
                     "b": arrays[1].tolist()})
    if w.rank == 0:
        print(json.dumps(rows))
""")


@needs_mpi
def test_sum_across_two_ranks(tmp_path):
    script = tmp_path / "sum.py"
    script.write_text(SCRIPT)
    done = run_python([script], ranks=2, timeout=120)
    assert done.returncode == 0, done.stderr
    import json
    rows = json.loads(done.stdout)
    assert [r["size"] for r in rows] == [2, 2]
    want_a = np.full((2, 3), 0.25 * 1 + 0.75 * 2)
    want_b = np.arange(4.0) * (0.25 * 1 + 0.75 * 2)
    for r in rows:
        np.testing.assert_allclose(r["a"], want_a)
        np.testing.assert_allclose(r["b"], want_b)


# -- on the GPU: the NCCL path of one rank -------------------------------------------------

def _gpu_reason(name):
    from genrecnn.engine.registry import registry
    info = registry().infos.get(name)
    return "" if info is not None and info.available else \
        f"{name} unavailable: {info.reason if info else 'not installed'}"


def _one_rank_world():
    """A world of one rank that has a communicator all the same (NCCL's path, as mpirun
    -n 1 would take it if it forced data-parallel training)."""
    pytest.importorskip("mpi4py")
    from mpi4py import MPI
    from genrecnn.world import World
    return World(MPI.COMM_WORLD)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cupy", "pycuda"])
def test_gpu_sum_across_one_nccl_rank_scales_the_fused_gradients(name):
    if _gpu_reason(name):
        pytest.skip(_gpu_reason(name))
    from genrecnn.engine.registry import registry
    be = registry().get(name)
    rng = np.random.default_rng(3)
    shapes = [(5,), (70, 33), (1,)] + [(i % 7 + 1, 3) for i in range(40)]   # two launches
    host = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    dev = [be.from_host(h) for h in host]
    be.sum_across(dev, 0.25, _one_rank_world())
    for h, d in zip(host, dev):
        np.testing.assert_allclose(be.to_host(d), 0.25 * h, rtol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cupy", "pycuda"])
def test_gpu_one_nccl_rank_trains_as_no_communicator_does(name):
    """Graph-captured steps with the NCCL sum inside give the same weights as without."""
    if _gpu_reason(name):
        pytest.skip(_gpu_reason(name))
    from genrecnn.engine.architectures import build_network, load_architecture
    from genrecnn.engine.batches import StepOptions, epoch_rng, plan_epoch
    from genrecnn.engine.items import ArrayItems
    from genrecnn.engine.optim import make_optimizer
    from genrecnn.engine.steps import StepRunner
    rng = np.random.default_rng(0)
    x, y = rng.random((48, 32, 40), dtype=np.float32), rng.integers(0, 4, 48)
    opts = StepOptions(batch_size=8)
    out = []
    for world in (None, _one_rank_world()):
        net = build_network(load_architecture("cnn2d"), (32, 32), 4, seed=0)
        net.place(name)
        runner = StepRunner(net, make_optimizer("adamw", lr=1e-3), ArrayItems(x, y), opts,
                            world=world)
        runner.run_epoch(plan_epoch(48, 32, 40, 32, opts, epoch_rng(0, 1)), [1e-3] * 6)
        assert runner.path == "graph"
        runner.close()
        out.append(net.host_params())
    for key in out[0]:
        np.testing.assert_allclose(out[1][key], out[0][key], rtol=1e-5, atol=1e-6, err_msg=key)
