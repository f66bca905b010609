"""train / evaluate / predict / filters on a tiny .npy dataset: results, resume, and bad input.

Every bad input must end in one `error: ...` line and a non-zero exit.
"""

import numpy as np
import pytest

from badinput import FRAMES, N_MELS, one_error_line, run_cli as run, write_npy_clip


def test_train_writes_model_metrics_and_plots(trained, strict_json):
    m = strict_json((trained / "metrics.json").read_text())
    assert m["class_names"] == ["high", "low"]
    assert m["epochs_done"] == 2 and len(m["history"]) == 2
    assert m["test_clip_acc"] == 1.0 and m["test_clips"] == 4
    for name in ("model.safetensors", "learning_curve.png", "confusion_matrix.png"):
        assert (trained / name).stat().st_size > 1000


def test_json_output_is_the_metrics(npy_data, tmp_path, capsys, strict_json):
    code, out, err = run(["train", npy_data, "--epochs", "1", "--out", tmp_path, "--json"], capsys)
    assert code == 0
    assert strict_json(out)["epochs_done"] == 1
    assert "epoch   1" in err


def test_cli_resume_matches_uninterrupted(npy_data, tmp_path, capsys):
    from genrecnn.run.model_io import read_model_file
    args = ["train", npy_data, "--optimizer", "sgd", "--seed", "5", "--batch-size", "4",
            "--schedule", "constant"]   # a schedule over the run changes with --epochs
    assert run(args + ["--epochs", "3", "--out", tmp_path / "a"], capsys)[0] == 0
    assert run(args + ["--epochs", "1", "--out", tmp_path / "b"], capsys)[0] == 0
    code, out, _ = run(["train", npy_data, "--resume", "--epochs", "3", "--out", tmp_path / "b"],
                       capsys)
    assert code == 0 and "resuming at epoch 2 of 3" in out
    _, pa, _ = read_model_file(tmp_path / "a" / "model.safetensors")
    _, pb, _ = read_model_file(tmp_path / "b" / "model.safetensors")
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)


def test_resume_with_a_conflicting_option_is_refused(trained, npy_data, capsys):
    code, _, err = run(["train", npy_data, "--resume", "--out", trained, "--lr", "0.5"], capsys)
    assert code == 2 and "--lr 0.5 differs" in one_error_line(err)


def test_resume_without_checkpoint(npy_data, tmp_path, capsys):
    code, _, err = run(["train", npy_data, "--resume", "--out", tmp_path], capsys)
    assert code == 2 and "nothing to resume" in one_error_line(err)


def test_resume_on_other_data_is_refused(trained, tmp_path, capsys):
    other = tmp_path / "other"
    rng = np.random.default_rng(1)
    for genre in ("high", "low"):
        (other / genre).mkdir(parents=True)
        for i in range(4):
            write_npy_clip(other / genre / f"{genre}.{i:05d}.npy", genre == "high", rng)
    (trained_copy := tmp_path / "run").mkdir()
    (trained_copy / "model.safetensors").write_bytes((trained / "model.safetensors").read_bytes())
    code, _, err = run(["train", "--resume", "--out", trained_copy], capsys)  # saved DATA
    assert code == 0
    code, _, err = run(["train", other, "--resume", "--out", trained_copy], capsys)
    assert code == 2 and "differs" in one_error_line(err)


def test_dry_run_prints_plan_and_writes_nothing(npy_data, tmp_path, capsys):
    code, out, _ = run(["train", npy_data, "--dry-run", "--out", tmp_path / "x"], capsys)
    assert code == 0 and "conv1=numpy" in out and "softmax" in out
    assert not (tmp_path / "x").exists()


def test_predict_top_k_json(trained, npy_data, capsys, strict_json):
    f = npy_data / "high" / "high.00000.npy"
    code, out, _ = run(["predict", trained / "model.safetensors", f, "--top", "2", "--json"], capsys)
    assert code == 0
    (res,) = strict_json(out)
    assert [g["genre"] for g in res["top"]][0] == "high"
    assert sum(g["probability"] for g in res["top"]) == pytest.approx(1.0, abs=1e-5)


def test_predict_windows_long_clips(trained, tmp_path, capsys, strict_json):
    long = np.random.default_rng(2).uniform(0, 0.3, (N_MELS, 3 * FRAMES)).astype(np.float32)
    long[N_MELS // 2:] += 0.6
    np.save(tmp_path / "long.npy", long)
    code, out, _ = run(["predict", trained / "model.safetensors", tmp_path / "long.npy", "--json"], capsys)
    assert code == 0
    (res,) = strict_json(out)
    assert res["windows"] == 5 and res["top"][0]["genre"] == "high"


def test_filters_png(trained, npy_data, tmp_path, capsys):
    code, out, _ = run(["filters", trained / "model.safetensors", npy_data / "low" / "low.00001.npy",
                        "--filters", "0,3", "--out", tmp_path / "f.png"], capsys)
    assert code == 0 and (tmp_path / "f.png").stat().st_size > 1000


def test_filters_outputs_come_from_the_backend_op(trained):
    from genrecnn.run.inference import first_layer_outputs
    from genrecnn.run.model_io import load_model
    net, _, _ = load_model(trained / "model.safetensors", placement="numpy")
    x = np.random.default_rng(0).normal(size=(N_MELS, 60)).astype(np.float32)
    y = first_layer_outputs(net, x)
    w, b = net.host_params()["conv1/w"], net.host_params()["conv1/b"]
    assert y.shape == (w.shape[0], N_MELS, 60)              # 3x3, padding 1: the map's size
    # an interior position: y[f, i, j] = b[f] + sum_uv w[f, 0, u, v] x[i + u - 1, j + v - 1]
    ref = np.einsum("fuv,uv->f", w[:, 0], x[4:7, 6:9]) + b
    np.testing.assert_allclose(y[:, 5, 7], ref, rtol=1e-4, atol=1e-4)


def test_evaluate_json_with_baseline(npy_data, tmp_path, capsys, strict_json):
    code, out, _ = run(["evaluate", npy_data, "--repeats", "2", "--test-fraction", "0.34",
                        "--epochs", "2", "--json", "--out", tmp_path / "cm.png"], capsys)
    assert code == 0
    rep = strict_json(out)
    assert rep["partitions"] == 2 and rep["network"]["test_clips"] == [4, 4]
    assert rep["network"]["accuracy"] >= 0.75 and rep["baseline"]["accuracy"] >= 0.75
    assert rep["combined"]["test_clips"] == [4, 4] and rep["combined"]["accuracy"] >= 0.75
    assert (tmp_path / "cm.png").stat().st_size > 1000


def test_evaluate_with_split_dir(npy_data, tmp_path, capsys, strict_json):
    split = tmp_path / "split"
    split.mkdir()
    (split / "train.txt").write_text("".join(f"{g}/{g}.{i:05d}\n" for g in ("high", "low")
                                             for i in range(4)))
    (split / "test.txt").write_text("high/high.00004\nlow/low.00005\nlow/missing.00009\n")
    code, out, _ = run(["evaluate", npy_data, "--split", split, "--epochs", "2", "--json",
                        "--no-baseline", "--out", tmp_path / "cm.png"], capsys)
    assert code == 0
    rep = strict_json(out)
    assert rep["protocol"] == "split" and rep["partitions"] == 1
    assert rep["network"]["test_clips"] == [2] and rep["baseline"] is None
    assert rep["combined"] is None


# -- bad input: one clear line, non-zero exit ------------------------------------------------

def test_model_file_not_ours(tmp_path, npy_data, capsys):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    code, _, err = run(["predict", tmp_path / "other.npz", npy_data / "low" / "low.00000.npy"],
                       capsys)
    assert code == 2 and "not a genrecnn model" in one_error_line(err)
    (tmp_path / "text.npz").write_text("hello")
    code, _, err = run(["filters", tmp_path / "text.npz", npy_data / "low" / "low.00000.npy"],
                       capsys)
    assert code == 2 and "not a readable genrecnn model" in one_error_line(err)


def test_truncated_model(trained, tmp_path, npy_data, capsys):
    data = (trained / "model.safetensors").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    code, _, err = run(["predict", tmp_path / "cut.npz", npy_data / "low" / "low.00000.npy"],
                       capsys)
    assert code == 2 and "truncated" in one_error_line(err)


def test_features_made_with_other_params(trained, tmp_path, capsys):
    np.save(tmp_path / "mel64.npy", np.random.default_rng(0).uniform(size=(64, 50)))
    code, _, err = run(["predict", trained / "model.safetensors", tmp_path / "mel64.npy"], capsys)
    assert code == 2
    assert any("64 mel bands" in ln and "n_mels=128" in ln for ln in err.splitlines())


def test_resume_with_other_feature_params_is_refused(trained, tmp_path, capsys):
    from genrecnn.run.model_io import load_model, save_model
    net, meta, extra = load_model(trained / "model.safetensors")
    meta["feature_params"]["n_fft"] = 2048
    (tmp_path / "r").mkdir()
    save_model(tmp_path / "r" / "model.safetensors", net, meta=meta, extra_arrays=extra)
    code, _, err = run(["train", "--resume", "--out", tmp_path / "r"], capsys)
    assert code == 2 and "other feature parameters" in one_error_line(err)


@pytest.mark.parametrize("cmd", ["train", "filters"])
def test_output_path_cannot_be_written(cmd, trained, npy_data, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    if cmd == "train":
        argv = ["train", npy_data, "--epochs", "1", "--out", blocker / "sub"]
    else:
        argv = ["filters", trained / "model.safetensors", npy_data / "low" / "low.00000.npy",
                "--out", blocker / "f.png"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "cannot write" in one_error_line(err)


@pytest.mark.parametrize("option,value", [
    ("--epochs", "0"), ("--batch-size", "0"), ("--test-fraction", "0"),
    ("--test-fraction", "1.5"), ("--valid-fraction", "1"), ("--lr", "-1"),
    ("--optimizer", "rmsprop"), ("--norm", "zscore")])
def test_bad_option_values(option, value, npy_data, tmp_path, capsys):
    code, _, err = run(["train", npy_data, option, value, "--out", tmp_path], capsys)
    assert code == 2 and f"Invalid value for '{option}'" in err
    assert not (tmp_path / "model.safetensors").exists()


def test_bad_evaluate_and_predict_options(trained, npy_data, capsys):
    code, _, err = run(["evaluate", npy_data, "--repeats", "0"], capsys)
    assert code == 2 and "Invalid value for '--repeats'" in err
    code, _, err = run(["predict", trained / "model.safetensors", npy_data / "low" / "low.00000.npy",
                        "--top", "0"], capsys)
    assert code == 2 and "Invalid value for '--top'" in err
    code, _, err = run(["filters", trained / "model.safetensors", npy_data / "low" / "low.00000.npy",
                        "--filters", "0,99"], capsys)
    assert code == 2 and "has 16 filters" in one_error_line(err)


def test_unknown_backend(npy_data, tmp_path, trained, capsys):
    code, _, err = run(["train", npy_data, "--backend", "nosuch", "--out", tmp_path], capsys)
    assert code == 2 and "unknown backend 'nosuch'" in one_error_line(err)
    code, _, err = run(["predict", trained / "model.safetensors", npy_data / "low" / "low.00000.npy",
                        "--backend", "conv=nosuch"], capsys)
    assert code == 2 and "unknown backend 'nosuch'" in one_error_line(err)


def test_diverging_run_exits_nonzero(npy_data, tmp_path, capsys):
    with np.errstate(all="ignore"):
        code, _, err = run(["train", npy_data, "--optimizer", "sgd", "--lr", "1e30",
                            "--norm", "none", "--epochs", "3", "--out", tmp_path], capsys)
    assert code == 2 and "diverged" in one_error_line(err)


def test_missing_data_folder(tmp_path, capsys):
    code, _, err = run(["train", tmp_path / "nope", "--out", tmp_path / "o"], capsys)
    assert code == 2 and "nope" in one_error_line(err)


def test_unreadable_files_are_skipped_and_listed(npy_data, tmp_path, capsys):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(npy_data, data)
    (data / "low" / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    code, out, _ = run(["train", data, "--epochs", "1", "--out", tmp_path / "o"], capsys)
    assert code == 0
    tail = out.splitlines()[-4:]        # the skipped files, then the summary ("wrote ..." last)
    assert tail[0].startswith("skipped 1 unreadable file(s)") and "broken.wav" in tail[1]
    assert tail[3].startswith("wrote ")
    code, _, err = run(["train", data, "--epochs", "1", "--strict", "--out", tmp_path / "o2"],
                       capsys)
    assert code == 2 and "broken.wav" in one_error_line(err)


def test_predict_reports_unreadable_files_and_exits_nonzero(trained, npy_data, tmp_path,
                                                            capsys):
    (tmp_path / "empty.wav").write_bytes(b"")
    code, out, err = run(["predict", trained / "model.safetensors", npy_data / "low" / "low.00000.npy",
                          tmp_path / "empty.wav"], capsys)
    assert code == 2
    assert "low.00000.npy: low" in out
    assert "empty.wav" in err and "1 of 2 file(s) could not be classified" in err


@pytest.mark.parametrize("mb, path", [("0", "stream"), ("4096", "device")])
def test_evaluate_honours_resident_mb(npy_data, tmp_path, capsys, monkeypatch, mb, path):
    """evaluate uploads the training set only within --resident-mb, as train does."""
    import genrecnn.run.session as session

    paths = []

    class Recording(session.StepRunner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            paths.append(self.path)

    monkeypatch.setattr(session, "StepRunner", Recording)
    code, _, _ = run(["evaluate", npy_data, "--repeats", "1", "--test-fraction", "0.34",
                      "--epochs", "1", "--resident-mb", mb, "--no-baseline",
                      "--out", tmp_path / "cm.png"], capsys)
    assert code == 0 and paths == [path]


def test_train_streams_a_set_over_resident_mb_with_the_resident_result(npy_data, tmp_path,
                                                                        capsys):
    """--resident-mb 0 streams the batches (NumPy has the staging ops) and trains exactly
    the model the resident set trains."""
    from genrecnn.run.model_io import read_model_file
    args = ["train", npy_data, "--epochs", "2", "--batch-size", "3", "--mixup", "0.3",
            "--time-mask", "4"]
    code, out, _ = run(args + ["--resident-mb", "0", "--out", tmp_path / "s"], capsys)
    assert code == 0 and "steps: stream (" in out
    code, out, _ = run(args + ["--out", tmp_path / "d"], capsys)
    assert code == 0 and "steps: device (" in out
    _, ps, _ = read_model_file(tmp_path / "s" / "model.safetensors")
    _, pd, _ = read_model_file(tmp_path / "d" / "model.safetensors")
    assert ps.keys() == pd.keys() and all(np.array_equal(ps[k], pd[k]) for k in ps)
