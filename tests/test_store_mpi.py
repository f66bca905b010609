"""Stores written by 2 MPI ranks equal those of one process (features and synth).

Each test runs ``mpiexec -n 2`` in a subprocess, as a user would; it is skipped,
with the reason, where mpiexec or mpi4py is missing.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genrecnn.cli.main import main
from mpi_launch import needs_mpi, run_python
from genrecnn.music.store import INDEX_NAME, open_store
from genrecnn.music.synthetic import synth_clip

pytestmark = needs_mpi


def genrecnn(*args, ranks: int = 1) -> subprocess.CompletedProcess:
    return run_python(["-m", "genrecnn", *args], ranks=ranks if ranks > 1 else None,
                      timeout=120)


@pytest.fixture
def data(tmp_path):
    """Ten small clips in two genres: WAV audio and .npy arrays of different lengths."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for genre, recipe in (("rock", "pulse"), ("ambient", "drone")):
        (root / genre).mkdir(parents=True)
        for i in range(2):
            sf.write(root / genre / f"{genre}.{i}.wav",
                     synth_clip(recipe, 1.0 + i, 22050, np.random.default_rng(i)), 22050)
        for i in range(3):
            np.save(root / genre / f"{genre}.n{i}.npy",
                    rng.uniform(0, 1, (128, 30 + 11 * i)).astype(np.float32))
    return root


def assert_same_store(one: Path, two: Path) -> None:
    rows = [json.loads((p / INDEX_NAME).read_text())["clips"] for p in (one, two)]
    strip = [[{k: v for k, v in r.items() if k not in ("shard", "offset")} for r in part]
             for part in rows]
    assert strip[0] == strip[1] and len(strip[0]) > 0
    a, b = open_store(one), open_store(two)
    assert a.clip_ids == b.clip_ids
    for i in range(len(a)):
        assert np.array_equal(a.clip(i), b.clip(i)), a.clip_ids[i]


def test_two_rank_features_equal_one_process(data, tmp_path):
    cache = ["--cache-dir", tmp_path / "cache", "-q", "-j", "1"]
    assert main(["features", str(data), "--store", str(tmp_path / "one"), *map(str, cache)]) == 0
    two = genrecnn("features", data, "--store", tmp_path / "two", *cache, ranks=2)
    assert two.returncode == 0, two.stderr
    assert "over 2 processes" in two.stdout and two.stdout.count("store ") == 1
    shards = {p.name for p in (tmp_path / "two").glob("shard-*")}
    assert {n.split("-")[2] for n in shards} == {"r000", "r001"}      # each rank its own
    assert_same_store(tmp_path / "one", tmp_path / "two")


def test_two_rank_synth_equals_one_process(tmp_path):
    args = ["--clips", "10", "--seconds", "1", "-q", "-j", "1"]
    assert main(["synth", str(tmp_path / "one"), *args]) == 0
    two = genrecnn("synth", tmp_path / "two", *args, ranks=2)
    assert two.returncode == 0, two.stderr
    assert_same_store(tmp_path / "one", tmp_path / "two")


def test_a_failing_rank_stops_every_rank(data, tmp_path):
    """Rank 0 refuses the store; rank 1 must not wait for it for ever."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("not a store")
    two = genrecnn("features", data, "--store", tmp_path / "taken", "-q", ranks=2)
    assert two.returncode == 2
    assert two.stderr.count("error: ") == 1 and "is not a feature store" in two.stderr
