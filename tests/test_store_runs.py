"""A feature store wherever a folder goes: train (clips at their own lengths, crops read
from the map), evaluate, and predict (one row per stored clip); and the store's bad
cases as one line and exit 2 at each of them."""
import json

import numpy as np
import pytest

from badinput import one_error_line, run_cli
from genrecnn.music.store import open_store
from genrecnn.run.store_items import StoreItems, fit_normalizer

TRAIN = ["--arch", "small", "--epochs", "2", "--batch-size", "8", "--crop", "64"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from genrecnn.cli.main import main
    root = tmp_path_factory.mktemp("stores") / "synth"
    assert main(["synth", str(root), "--clips", "40", "--seconds", "4", "-j", "1", "-q"]) == 0
    return root


@pytest.fixture(scope="module")
def trained(store, tmp_path_factory):
    from genrecnn.cli.main import main
    out = tmp_path_factory.mktemp("runs") / "store-run"
    assert main(["train", str(store), *TRAIN, "--out", str(out), "-q"]) == 0
    return out


def test_store_items_read_normalised_crops_and_pad_short_clips(store):
    st = open_store(store)
    norm = fit_normalizer(st, 0)
    items = StoreItems(st, norm)
    want = (st.clip(3)[:, 5:69] - norm.mean[:, None]) / norm.std[:, None]
    np.testing.assert_allclose(items.crops([3], [5], 64)[0], want, rtol=1e-5, atol=1e-5)
    long = int(st.frames[0]) + 10                     # longer than the clip: zeros, normalised
    crop = items.crops([0], [0], long)[0]
    np.testing.assert_allclose(crop[:, -10:], np.repeat((-norm.mean / norm.std)[:, None], 10, 1),
                               rtol=1e-5, atol=1e-5)
    assert items.uploadable is False and len(items[2:5]) == 3


def test_train_from_a_store_keeps_whole_clips(trained, store):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["epochs_done"] == 2 and metrics["data"] == str(store)
    assert metrics["test_clips"] == 8                 # 20% of 40 clips, each judged whole
    assert 0.0 <= metrics["test_clip_acc"] <= 1.0


def test_predict_gives_one_row_per_stored_clip(trained, store, capsys):
    code, out, _ = run_cli(["predict", trained / "model.safetensors", store, "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    st = open_store(store)
    assert [r["file"] for r in rows] == [f"{store}/{cid}" for cid in st.clip_ids]
    for row in rows:
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-5
        assert row["windows"] >= 1


def test_evaluate_from_a_store(store, tmp_path, capsys):
    code, out, _ = run_cli(["evaluate", store, *TRAIN, "--repeats", "2", "--json",
                            "--out", tmp_path / "cm.png"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["partitions"] == 2 and len(result["baseline"]["errors"]) == 2


def test_a_store_refuses_frames_and_windows(store, tmp_path, capsys):
    code, _, err = run_cli(["train", store, *TRAIN, "--frames", "50", "--out", tmp_path / "r"],
                           capsys)
    assert code == 2
    assert "--frames applies to a folder of clips" in one_error_line(err)
    assert not (tmp_path / "r").exists()


def test_a_truncated_store_is_one_line_for_train_and_predict(store, trained, tmp_path, capsys):
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(store, broken)
    shard = sorted(broken.glob("*.npy"))[0]
    with open(shard, "r+b") as fh:
        fh.truncate(shard.stat().st_size - 512)
    for argv in (["train", broken, *TRAIN, "--out", tmp_path / "r"],
                 ["predict", trained / "model.safetensors", broken]):
        code, _, err = run_cli(argv, capsys)
        assert code == 2
        line = one_error_line(err)
        assert f"shard {shard.name}" in line and "truncated" in line, line
    assert not (tmp_path / "r").exists()


def test_predict_refuses_a_store_of_other_feature_parameters(trained, store, tmp_path, capsys):
    import shutil
    other = tmp_path / "other"
    shutil.copytree(store, other)
    index = json.loads((other / "index.json").read_text())
    index["params"]["fmax"] = 8000.0
    (other / "index.json").write_text(json.dumps(index))
    code, _, err = run_cli(["predict", trained / "model.safetensors", other], capsys)
    assert code == 2
    assert "holds features made with other parameters" in one_error_line(err)
