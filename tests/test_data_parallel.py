"""Data-parallel training on CPUs under ``mpiexec -n 2``: the same global batch and seed
give the same weights as one process; a checkpoint written by 2 ranks resumes on 1;
evaluate shares its partitions out and reports what one process reports; a failure on
one rank ends the run with one line instead of a hang."""
import json
import textwrap

import numpy as np
import pytest

from genrecnn.engine.batches import BatchPlan, shard
from mpi_launch import needs_mpi, run_python



def _run(args, ranks=None, timeout=240):
    return run_python(args, ranks=ranks, timeout=timeout)


def test_shard_splits_a_plan_and_keeps_mixup_partners_inside():
    b = 7
    plan = BatchPlan(*(np.arange(b, dtype=np.int32) + k for k in range(6)),
                     np.array([3, 0, 6, 1, 5, 2, 4], dtype=np.int32), np.linspace(0.5, 1, b))
    left, right = shard(plan, slice(0, 3)), shard(plan, slice(3, 7))
    assert np.array_equal(np.concatenate([left.index, right.index]), plan.index)
    assert np.array_equal(np.concatenate([left.lam, right.lam]), plan.lam)
    for part in (left, right):
        assert sorted(part.perm) == list(range(len(part.index)))
    # partners keep the order of their global partners' rows: [3, 0, 6] -> [1, 0, 2]
    assert left.perm.tolist() == [1, 0, 2]
    whole = shard(plan, slice(0, b))
    assert whole.perm.tolist() == np.argsort(np.argsort(plan.perm)).tolist()


STEPS = textwrap.dedent("""
    import sys
    import numpy as np
    from genrecnn.engine.architectures import build_network, load_architecture
    from genrecnn.engine.batches import StepOptions, epoch_rng, plan_epoch
    from genrecnn.engine.items import ArrayItems
    from genrecnn.engine.optim import make_optimizer
    from genrecnn.engine.steps import StepRunner
    from genrecnn.world import world
    w = world()
    rng = np.random.default_rng(0)
    x = rng.random((40, 16, 40), dtype=np.float32)
    y = rng.integers(0, 3, 40)
    net = build_network(load_architecture("small"), (16, 32), 3, seed=0)
    net.place("numpy")
    opts = StepOptions(batch_size=8)
    runner = StepRunner(net, make_optimizer("adam", lr=1e-2), ArrayItems(x, y), opts, world=w,
                        graphs=False, resident_budget=int(sys.argv[2]))
    loss, acc = runner.run_epoch(plan_epoch(40, 16, 40, 32, opts, epoch_rng(0, 1)), [1e-2] * 5)
    if w.rank == 0:
        np.savez(sys.argv[1], loss=loss, acc=acc,
                 **{k.replace("/", "_"): v for k, v in net.host_params().items()})
""")


@needs_mpi
@pytest.mark.parametrize("budget", [1 << 30, 0], ids=["device", "stream"])
def test_two_ranks_match_one_process_after_five_steps(tmp_path, budget):
    script = tmp_path / "steps.py"
    script.write_text(STEPS)
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    done = _run([str(script), str(one), str(budget)])
    assert done.returncode == 0, done.stderr
    done = _run([str(script), str(two), str(budget)], ranks=2)
    assert done.returncode == 0, done.stderr
    a, b = np.load(one), np.load(two)
    assert set(a.files) == set(b.files) and len(a.files) > 3
    for key in a.files:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # and the steps did move the weights (the comparison is not of two untouched nets)
    assert float(a["loss"]) > 0


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("dp") / "store"
    done = _run(["-m", "genrecnn", "synth", str(root), "--clips", "48", "--seconds", "3",
                 "-j", "1", "-q"])
    assert done.returncode == 0, done.stderr
    return root


@needs_mpi
def test_checkpoint_of_two_ranks_resumes_on_one(tmp_path, small_store):
    out = tmp_path / "run"
    common = ["-m", "genrecnn", "train", str(small_store), "--arch", "small", "--batch-size",
              "8", "--out", str(out)]
    done = _run(common + ["--epochs", "1"], ranks=2)
    assert done.returncode == 0, done.stderr
    assert "data-parallel over 2 MPI ranks" in done.stdout
    first = json.loads((out / "metrics.json").read_text())
    assert first["epochs_done"] == 1
    done = _run(common + ["--epochs", "2", "--resume"])
    assert done.returncode == 0, done.stderr
    assert "resuming at epoch 2 of 2" in done.stdout
    second = json.loads((out / "metrics.json").read_text())
    assert second["epochs_done"] == 2
    assert second["history"][0] == first["history"][0]


@needs_mpi
def test_evaluate_shares_partitions_and_reports_what_one_process_does(tmp_path, small_store):
    args = ["-m", "genrecnn", "evaluate", str(small_store), "--arch", "small", "--epochs", "1",
            "--batch-size", "8", "--repeats", "2", "--json"]
    one = _run(args + ["--out", str(tmp_path / "one.png")])
    two = _run(args + ["--out", str(tmp_path / "two.png")], ranks=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)    # rank 0 alone prints
    assert b["partitions"] == a["partitions"] == 2
    assert b["network"]["errors"] == pytest.approx(a["network"]["errors"])
    assert b["baseline"]["errors"] == pytest.approx(a["baseline"]["errors"])
    assert "[rank 1]" in two.stderr and "[rank 0]" in two.stderr


@needs_mpi
def test_a_failure_ends_every_rank_with_one_line(tmp_path, small_store):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "model.npz").write_bytes(b"not a model")
    done = _run(["-m", "genrecnn", "train", str(small_store), "--arch", "small", "--epochs",
                 "1", "--out", str(out)], ranks=2)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert errors == [f"error: {out} already holds a trained model (model.npz); pass --resume "
                      f"to continue it, --force to replace it, or another --out "
                      f"(e.g. {out}-2)"]
    assert (out / "model.npz").read_bytes() == b"not a model"
