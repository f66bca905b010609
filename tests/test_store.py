"""Feature stores: full-length round trip, updates, crops, and every damaged store refused."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genrecnn.cli.main import main
from genrecnn.errors import DataError
from genrecnn.music import store_build
from genrecnn.music.features import FeatureCache, load_features
from genrecnn.music.store import INDEX_NAME, is_store, open_store
from genrecnn.music.store_write import npy_header

SAMPLE = Path("/work/shared/data/gtzan-sample")


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def write_npy(root: Path, genre: str, i: int, frames: int) -> Path:
    (root / genre).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([i, len(genre)])
    path = root / genre / f"{genre}.{i:03d}.npy"
    np.save(path, rng.uniform(0, 1, (128, frames)).astype(np.float32))
    return path


@pytest.fixture
def npy_data(tmp_path):
    root = tmp_path / "data"
    for i in range(3):
        write_npy(root, "high", i, 40 + 7 * i)
        write_npy(root, "low", i, 60 - 5 * i)
    return root


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    """The 50 real clips of gtzan-sample in a store (small shards: several of them)."""
    if not SAMPLE.is_dir():
        pytest.skip(f"{SAMPLE} is not here")
    tmp = tmp_path_factory.mktemp("sample")
    cache = FeatureCache(tmp / "cache")
    assert main(["features", str(SAMPLE), "--store", str(tmp / "store"), "--cache-dir",
                 str(cache.root), "-q", "-j", "2", "--shard-mb", "4"]) == 0
    return tmp / "store", cache


def test_real_clips_round_trip_at_full_length(sample_store):
    path, cache = sample_store
    store = open_store(path)
    assert is_store(path) and not is_store(SAMPLE) and len(store) == 50
    assert len(json.loads((path / INDEX_NAME).read_text())["shards"]) > 1
    assert len(set(store.frames.tolist())) > 1        # each clip its own length, none cut
    for i, cid in enumerate(store.clip_ids):
        genre, stem = cid.split("/")
        want = load_features(SAMPLE / genre / f"{stem}.wav", cache=cache)
        got = store.clip(i)
        assert got.shape == want.shape == (128, store.frames[i])
        assert np.array_equal(got, want), cid
        assert store.class_names[store.labels[i]] == genre
    assert not store.clip(0).flags.owndata              # a view of the map, no copy


def test_take_crops_equal_slicing_and_subsets(sample_store):
    store = open_store(sample_store[0], genres="rock,blues")
    assert store.class_names == ["blues", "rock"] and len(store) == 10
    assert set(store.labels.tolist()) == {0, 1}
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(store), 8)
    start = np.array([rng.integers(0, store.frames[i] - 100) for i in index])
    crops = store.take_crops(index, start, 100)
    want = np.stack([store.clip(i)[:, s:s + 100] for i, s in zip(index, start)])
    assert crops.dtype == np.float32 and np.array_equal(crops, want)
    staged = np.zeros((8, 128, 100))
    assert store.take_crops(index, start, 100, out=staged) is staged
    assert np.array_equal(staged, want.astype(np.float64))
    part = store.subset([3, 1])
    assert part.clip_ids == [store.clip_ids[3], store.clip_ids[1]]
    assert np.array_equal(part.clip(0), store.clip(3)) and part.labels[1] == store.labels[1]
    with pytest.raises(DataError, match="unknown genre jazzz in"):
        open_store(sample_store[0], genres="rock,jazzz")


def test_update_extracts_only_new_files(npy_data, tmp_path, capsys, monkeypatch):
    calls = []
    worker = store_build._worker
    monkeypatch.setattr(store_build, "_worker", lambda i, p, *a: calls.append(p) or
                        worker(i, p, *a))
    store = tmp_path / "store"
    code, out, err = run(capsys, "features", npy_data, "--store", store, "-j", "1", "-q",
                         "--cache-dir", tmp_path / "c")
    assert code == 0, err
    assert "6 added, 0 kept, 0 dropped; 6 files extracted" in out and len(calls) == 6
    first = open_store(store)
    new = write_npy(npy_data, "low", 7, 50)
    (npy_data / "high" / "high.000.npy").unlink()
    (npy_data / "low" / "low.001.npy").rename(npy_data / "high" / "moved.npy")
    calls.clear()
    code, out, err = run(capsys, "features", npy_data, "--store", store, "-j", "1", "--json",
                         "--cache-dir", tmp_path / "c")
    summary = json.loads(out)
    assert code == 0 and calls == [str(new)], err
    assert (summary["added"], summary["kept"], summary["dropped"]) == (1, 5, 2)
    second = open_store(store)
    assert "high/high.000" not in second.clip_ids and "high/moved" in second.clip_ids
    assert np.array_equal(second.clip(second.clip_ids.index("high/moved")),
                          first.clip(first.clip_ids.index("low/low.001")))
    assert np.array_equal(second.clip(second.clip_ids.index("low/low.007")), np.load(new))


def test_store_from_other_parameters_is_refused(npy_data, tmp_path, capsys):
    store = tmp_path / "store"
    assert run(capsys, "features", npy_data, "--store", store, "-q", "-j", "1")[0] == 0
    doc = json.loads((store / INDEX_NAME).read_text())
    doc["params"]["top_db"] = 60.0
    (store / INDEX_NAME).write_text(json.dumps(doc))
    code, out, err = run(capsys, "features", npy_data, "--store", store, "-q", "-j", "1")
    assert code == 2 and err.count("\n") == 1
    assert "made with other feature parameters (top_db 60.0 (store) vs 80.0)" in err
    assert "use a new --store folder" in err
    assert len(open_store(store)) == 6                    # nothing extracted was lost


@pytest.mark.parametrize("damage, message", [
    (lambda doc: doc.update(version=99), "version 99, this genrecnn reads 1"),
    (lambda doc: doc["clips"][0].update(offset=10 ** 9), "runs past the end of shard"),
    (lambda doc: doc["clips"][1].pop("hash"), "does not have exactly the fields"),
    (lambda doc: doc["clips"][2].update(label=7), "wrong type or range"),
])
def test_damaged_index_is_one_line(npy_data, tmp_path, capsys, damage, message):
    store = tmp_path / "store"
    assert run(capsys, "features", npy_data, "--store", store, "-q", "-j", "1")[0] == 0
    doc = json.loads((store / INDEX_NAME).read_text())
    damage(doc)
    (store / INDEX_NAME).write_text(json.dumps(doc))
    with pytest.raises(DataError, match="is damaged"):
        open_store(store)
    code, _, err = run(capsys, "features", npy_data, "--store", store, "-q", "-j", "1")
    assert code == 2 and err.count("\n") == 1 and message in err
    assert f"delete {store / INDEX_NAME} and re-run" in err


def test_unparseable_index_and_no_store(npy_data, tmp_path, capsys):
    store = tmp_path / "store"
    assert run(capsys, "features", npy_data, "--store", store, "-q", "-j", "1")[0] == 0
    text = (store / INDEX_NAME).read_text()
    (store / INDEX_NAME).write_text(text[: len(text) // 2])
    code, _, err = run(capsys, "features", npy_data, "--store", store, "-q")
    assert code == 2 and err.count("\n") == 1 and "index.json is damaged (" in err
    with pytest.raises(DataError, match="is not a feature store .no index.json.; make one"):
        open_store(tmp_path)
    code, _, err = run(capsys, "features", npy_data, "--store", npy_data, "-q")
    assert code == 2 and "holds other files and is not a feature store" in err


def test_truncated_or_missing_shard_is_named_and_repaired(sample_store, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(sample_store[0], store)
    shards = sorted(store.glob("shard-*.npy"))
    with open(shards[0], "r+b") as fh:
        fh.truncate(shards[0].stat().st_size - 1000)
    shards[1].unlink()
    with pytest.raises(DataError) as err:
        open_store(store)
    assert f"shard {shards[0].name} of store {store} is truncated" in str(err.value)
    assert f"re-run `genrecnn features DATA --store {store}`" in str(err.value)
    code, out, err = run(capsys, "features", SAMPLE, "--store", store, "-q", "-j", "2",
                         "--cache-dir", sample_store[1].root)
    assert code == 0, err
    assert f"re-extracted the clips of damaged shards: {shards[0].name}, {shards[1].name}" in out
    repaired, whole = open_store(store), open_store(sample_store[0])
    assert repaired.clip_ids == whole.clip_ids
    assert all(np.array_equal(repaired.clip(i), whole.clip(i)) for i in range(len(whole)))


def test_half_written_store_is_ignored_then_cleaned(npy_data, tmp_path, capsys):
    store = tmp_path / "store"
    assert run(capsys, "features", npy_data, "--store", store, "-q", "-j", "1")[0] == 0
    # a run killed mid-write: a shard still .part, a complete shard the index never got
    (store / "shard-g0002-r000-0000.npy.part").write_bytes(b"\0" * 500)
    (store / "shard-g0002-r001-0000.npy").write_bytes(npy_header(0, 128))
    (store / f".{INDEX_NAME}.x1y2").write_text("{")
    assert len(open_store(store)) == 6
    write_npy(npy_data, "high", 9, 30)
    code, out, err = run(capsys, "features", npy_data, "--store", store, "-q", "-j", "1")
    assert code == 0 and "1 added, 6 kept" in out, err
    assert sorted(p.name for p in store.iterdir()) == [
        INDEX_NAME, "shard-g0001-r000-0000.npy", "shard-g0002-r000-0000.npy"]
    assert len(open_store(store)) == 7


def test_npy_header_is_the_reserved_size():
    assert len(npy_header(0, 128)) == len(npy_header(10 ** 15, 128)) == 128
