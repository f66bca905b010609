"""`--ensemble K` (issue 21, item 2): K networks from the run's seed and K-1 derived ones,
in one model file, answering with the mean of their class probabilities; train, evaluate,
predict, export and resume with them. A file of one network is written as before."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from safetensors import safe_open

from genrecnn.cli.main import main
from genrecnn.run.checkpoint import Checkpoint
from genrecnn.run.ensemble import Ensemble, member_seed
from genrecnn.run.fit import predict_proba
from genrecnn.run.inference import load_inference_model
from genrecnn.run.model_io import CHECKSUM, MODEL_FILE, load_members, tensors_digest
from genrecnn.run.options import RunOptions
from genrecnn.run.settings import TrainSettings, new_network
from genrecnn.run.train_job import run_train

from badinput import edit_model, one_error_line, run_cli

pytestmark = pytest.mark.usefixtures("own_cache")
CROP = 20                       # the clips have 40 frames: items are judged over 3 crops
TRAIN = ["--epochs", "2", "--crop", str(CROP), "--test-fraction", "0.34"]


def _tensors(path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="np") as fh:
        return ({k: json.loads(v) for k, v in fh.metadata().items()},
                {k: fh.get_tensor(k) for k in fh.keys()})


def _same_tensors(a: dict, b: dict, prefix: str = "") -> bool:
    keys = {k for k in a if k.startswith(prefix)}
    return keys == {k for k in b if k.startswith(prefix)} and bool(keys) and all(
        np.array_equal(a[k], b[k]) for k in keys)


@pytest.fixture(scope="module")
def ensemble(npy_data, tmp_path_factory):
    """OUT folder of `train --ensemble 2` on ``npy_data``, and its --json metrics."""
    out = tmp_path_factory.mktemp("ensemble") / "out"
    assert main(["train", str(npy_data), *TRAIN, "--ensemble", "2", "--out", str(out),
                 "-q"]) == 0
    return out


def test_member_seeds_are_the_runs_own_then_derived_ones():
    seeds = [member_seed(7, i) for i in range(5)]
    assert seeds[0] == 7 and len(set(seeds)) == 5
    assert seeds == [member_seed(7, i) for i in range(5)]               # deterministic
    assert member_seed(8, 1) != seeds[1] and all(0 <= s < 2 ** 32 for s in seeds)


def _digest(path, leave_out=()) -> str:
    """The file's content (header fields but ``leave_out``, each tensor's name, dtype, shape
    and bytes) independent of the order safetensors writes the header in."""
    header, tensors = _tensors(path)
    h = hashlib.sha256()
    with safe_open(str(path), framework="np") as fh:
        for key, text in sorted(fh.metadata().items()):
            if key not in leave_out:
                h.update(f"{key}={text}\n".encode())
    for key in sorted(tensors):
        a = tensors[key]
        h.update(f"{key}:{a.dtype.str}:{a.shape}\n".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_a_file_of_one_network_is_written_exactly_as_before_ensembles(tmp_path):
    settings = TrainSettings.from_recipe("small", seed=7, epochs=2)
    net = new_network(settings, 16, 24, 3)
    Checkpoint(tmp_path / MODEL_FILE, meta={"class_names": ["a", "b", "c"], "run": {"data": None}},
               extra_arrays={"norm/mean": np.arange(16.0), "norm/std": np.ones(16)}).save(
        net, settings.make_optimizer(), settings, 1,
        [{"epoch": 1, "lr": 0.001, "train_loss": 1.0, "train_acc": 0.5}])
    # the digest of the file genrecnn wrote before ensembles existed (commit fa6f282), and
    # since then one header field more, which readers of that time do not read: the
    # tensors' checksum
    assert _digest(tmp_path / MODEL_FILE, leave_out={CHECKSUM}) == \
        "74f9b85b522fd5791fb56f42724bc144c904cae71bce28a7276f91a6a8f23352"
    header, tensors = _tensors(tmp_path / MODEL_FILE)
    assert header[CHECKSUM] == tensors_digest(tensors)


def test_the_ensemble_file_holds_each_member_beside_the_shared_arrays(ensemble, strict_json):
    header, tensors = _tensors(ensemble / MODEL_FILE)
    assert header["ensemble"] == 2 and header["version"] == 2
    assert [m["seed"] for m in header["members"]] == [0, member_seed(0, 1)]
    assert header["meta"]["settings"]["ensemble"] == 2
    assert {k.split("/")[0] for k in tensors} == {"extra", "m0", "m1"}
    assert {k for k in tensors if k.startswith("extra/")} == {"extra/norm/band_mean",
                                                              "extra/norm/band_std"}
    assert not _same_tensors(
        {k[3:]: v for k, v in tensors.items() if k.startswith("m0/")},
        {k[3:]: v for k, v in tensors.items() if k.startswith("m1/")}, "param/")
    metrics = strict_json((ensemble / "metrics.json").read_text())
    assert metrics["ensemble"] == 2 and metrics["settings"]["ensemble"] == 2
    assert [m["seed"] for m in metrics["members"]] == [0, member_seed(0, 1)]
    assert [m["epochs_done"] for m in metrics["members"]] == [2, 2]


def _crop_mean(net, x) -> np.ndarray:
    """One network's probabilities of 40-frame items, the mean over crops at 0, 10, 20."""
    return np.mean([net.predict_proba(np.ascontiguousarray(x[:, :, s:s + CROP]))
                    for s in (0, 10, 20)], axis=0)


def test_the_ensemble_answers_with_its_members_mean(ensemble):
    members = [net for net, _, _ in load_members(ensemble / MODEL_FILE, placement="numpy")]
    x = np.random.default_rng(3).normal(size=(5, 128, 2 * CROP))
    alone = [_crop_mean(net, x) for net in members]
    assert np.abs(alone[0] - alone[1]).max() > 1e-3        # two different networks
    model = load_inference_model(ensemble / MODEL_FILE, "numpy", echo=lambda s: None)
    assert isinstance(model.net, Ensemble) and model.ensemble == 2
    np.testing.assert_allclose(predict_proba(model.net, x), np.mean(alone, axis=0), atol=1e-12)
    windows = x[:, :, :CROP]
    np.testing.assert_allclose(model.net.predict_proba(windows),
                               (members[0].predict_proba(windows)
                                + members[1].predict_proba(windows)) / 2, atol=1e-12)


def test_predict_json_csv_and_timeline_of_an_ensemble(ensemble, npy_data, tmp_path, capsys,
                                                      strict_json):
    clip = npy_data / "high" / "high.00001.npy"
    code, out, _ = run_cli(["predict", ensemble / MODEL_FILE, clip, "--json", "--timeline",
                            tmp_path / "t.png"], capsys)
    result = strict_json(out)[0]
    assert code == 0 and result["ensemble"] == 2 and len(result["timeline"]) == 3
    model = load_inference_model(ensemble / MODEL_FILE, "numpy", echo=lambda s: None)
    x = model.normalizer.transform(np.load(clip)[None])
    expected = np.mean([_crop_mean(net, x)[0] for net in model.net.members], axis=0)
    assert np.allclose([result["probabilities"][n] for n in model.names], expected, atol=1e-9)
    assert (tmp_path / "t.png").stat().st_size > 1000
    code, _, _ = run_cli(["predict", ensemble / MODEL_FILE, npy_data, "--csv",
                          tmp_path / "g.csv"], capsys)
    assert code == 0 and len((tmp_path / "g.csv").read_text().splitlines()) == 13


def test_export_of_an_ensemble_is_one_graph_of_the_members_mean(ensemble, npy_data, tmp_path,
                                                                 capsys, strict_json):
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    onnx = pytest.importorskip("onnx", reason="the [onnx] extra is not installed")
    code, out, _ = run_cli(["export", ensemble / MODEL_FILE, tmp_path / "e.onnx"], capsys)
    assert code == 0 and "the mean of 2 networks'" in out
    proto = onnx.load(tmp_path / "e.onnx")
    assert [n.op_type for n in proto.graph.node].count("Mean") == 1
    assert {p.key: json.loads(p.value) for p in proto.metadata_props}["ensemble"] == 2
    answers = []
    for model in (ensemble / MODEL_FILE, tmp_path / "e.onnx"):
        code, out, _ = run_cli(["predict", model, npy_data / "low", "--json"], capsys)
        assert code == 0 and all(r["ensemble"] == 2 for r in strict_json(out))
        answers.append([r["probabilities"]["low"] for r in strict_json(out)])
    assert np.abs(np.subtract(*answers)).max() < 1e-5


def test_evaluate_trains_an_ensemble_per_partition_and_scores_its_first_alone(
        npy_data, tmp_path, capsys, strict_json):
    split = tmp_path / "split"
    split.mkdir()
    (split / "train.txt").write_text("".join(f"{g}/{g}.{i:05d}\n" for g in ("high", "low")
                                             for i in range(4)))
    (split / "test.txt").write_text("high/high.00004\nhigh/high.00005\nlow/low.00005\n")
    reports = {}
    for k in ("1", "2"):
        code, out, err = run_cli(["evaluate", npy_data, "--epochs", "1", "--crop", str(CROP),
                                  "--split", split, "--no-baseline", "--ensemble", k, "--json",
                                  "--out", tmp_path / f"cm{k}.png"], capsys)
        assert code == 0
        reports[k] = strict_json(out)
    one, two = reports["1"], reports["2"]
    assert "partition 1, member 2 of 2" in err
    assert one["ensemble"] == 1 and one["single"] is None
    assert two["ensemble"] == 2 and two["single"]["test_clips"] == [3]
    # the ensemble's first network is the one `--ensemble 1` trains (same seed, same data)
    assert two["single"]["errors"] == one["network"]["errors"]
    strip = [[{k: v for k, v in row.items() if "seconds" not in k} for row in h]
             for h in (one["histories"][0], two["histories"][0])]
    assert strip[0] == strip[1]


def _interrupt_at_member(n: int):
    """An echo that stops the run after the first epoch of member ``n`` was saved."""
    seen = []

    def echo(line: str):
        seen.append(line)
        if line.startswith("epoch") and any(s.startswith(f"member {n} of") for s in seen):
            raise KeyboardInterrupt
    return echo


def test_resume_keeps_finished_members_and_ends_as_an_uninterrupted_run(
        npy_data, tmp_path, capsys):
    args = ["train", npy_data, *TRAIN, "--ensemble", "3", "-q"]
    assert run_cli([*args, "--out", tmp_path / "whole"], capsys)[0] == 0
    options = RunOptions(data=npy_data, epochs=2, crop=CROP, test_fraction=0.34, ensemble=3)
    with pytest.raises(KeyboardInterrupt):
        run_train(options, tmp_path / "cut", echo=_interrupt_at_member(2), progress=False)
    cut_header, cut = _tensors(tmp_path / "cut" / MODEL_FILE)
    _, whole = _tensors(tmp_path / "whole" / MODEL_FILE)
    assert cut_header["ensemble"] == 2 and cut_header["members"][1]["meta"]["epoch"] == 1
    assert _same_tensors(cut, whole, "m0/")                # the finished member, as it ended
    code, _, err = run_cli(["predict", tmp_path / "cut" / MODEL_FILE,
                            npy_data / "low" / "low.00001.npy"], capsys)
    assert code == 0 and "holds 2 of the 3 networks" in err
    code, out, _ = run_cli(["train", npy_data, "--resume", "--out", tmp_path / "cut", "-q"],
                           capsys)
    assert code == 0
    assert "member 1 of 3 (seed 0): trained 2 epoch(s) before, kept" in out
    assert "resuming at epoch 2 of 2" in out and "member 3 of 3" in out
    header, resumed = _tensors(tmp_path / "cut" / MODEL_FILE)
    assert header["ensemble"] == 3 and _same_tensors(resumed, whole)


def test_resume_may_add_members_but_not_drop_them(npy_data, tmp_path, capsys):
    args = ["train", npy_data, *TRAIN, "-q"]
    assert run_cli([*args, "--out", tmp_path / "one"], capsys)[0] == 0
    assert run_cli([*args, "--ensemble", "2", "--out", tmp_path / "two"], capsys)[0] == 0
    code, out, _ = run_cli(["train", npy_data, "--resume", "--ensemble", "2", "--out",
                            tmp_path / "one", "-q"], capsys)
    assert code == 0 and "member 1 of 2 (seed 0): trained 2 epoch(s) before, kept" in out
    assert _same_tensors(_tensors(tmp_path / "one" / MODEL_FILE)[1],
                         _tensors(tmp_path / "two" / MODEL_FILE)[1])
    before = (tmp_path / "two" / MODEL_FILE).read_bytes()
    code, _, err = run_cli(["train", npy_data, "--resume", "--ensemble", "1", "--out",
                            tmp_path / "two"], capsys)
    assert code == 2 and "--ensemble 1 is fewer than the 2 networks" in one_error_line(err)
    assert (tmp_path / "two" / MODEL_FILE).read_bytes() == before


def test_the_synthetic_default_trains_an_ensemble_member_by_member(monkeypatch, tmp_path,
                                                                   capsys, strict_json):
    import genrecnn.music.loading as loading
    monkeypatch.setattr(loading, "SYNTHETIC_CLIPS_PER_CLASS", 5)
    code, out, err = run_cli(["train", "--ensemble", "2", "--epochs", "1", "--out",
                              tmp_path / "o", "--json"], capsys)
    assert code == 0 and strict_json(out)["ensemble"] == 2
    lines = [ln for ln in err.splitlines() if ln.startswith(("member", "epoch"))]
    assert [ln[:14] for ln in lines] == ["member 1 of 2 ", "epoch   1  lr ",
                                         "member 2 of 2 ", "epoch   1  lr "]
    assert "(an ensemble of 2; its members alone: " in err


@pytest.mark.parametrize("edit, words", [
    (lambda h: dict(h, ensemble=3), "'members' is"),
    (lambda h: dict(h, ensemble=0), "'ensemble' is 0"),
    (lambda h: dict(h, members=[{"seed": "x"}] * 2), "'members' is"),
])
def test_a_damaged_ensemble_header_is_refused_in_one_line(ensemble, npy_data, tmp_path, capsys,
                                                          edit, words):
    bad = edit_model(ensemble / MODEL_FILE, tmp_path / MODEL_FILE, edit=edit)
    code, _, err = run_cli(["predict", bad, npy_data / "low" / "low.00001.npy"], capsys)
    assert code == 2 and words in one_error_line(err)


def test_a_member_without_its_weights_is_refused_in_one_line(ensemble, npy_data, tmp_path,
                                                             capsys):
    def drop(arrays):
        for key in [k for k in arrays if k.startswith("m1/param/")]:
            del arrays[key]
    bad = edit_model(ensemble / MODEL_FILE, tmp_path / MODEL_FILE, arrays_edit=drop)
    code, _, err = run_cli(["predict", bad, npy_data / "low" / "low.00001.npy"], capsys)
    assert code == 2 and str(bad) in one_error_line(err)
