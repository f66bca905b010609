"""train: no silent NaN models, no lost models, no leftovers, honest wording."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from badinput import one_error_line, run_cli

pytestmark = pytest.mark.filterwarnings("ignore")
FAST = ["--epochs", "1", "--test-fraction", "0.34"]


@pytest.mark.parametrize("lr", ["inf", "nan"])
def test_non_finite_lr_is_refused_before_anything_is_written(lr, npy_data, tmp_path, capsys):
    code, _, err = run_cli(["train", npy_data, "--lr", lr, "--out", tmp_path / "o"], capsys)
    assert code == 2 and f"Invalid value for '--lr': {lr} is not a finite number" in err
    assert not (tmp_path / "o").exists()


def test_one_epoch_that_blows_the_weights_up_is_refused(npy_data, tmp_path, capsys):
    """One update per run: the loss (computed before it) is finite, the weights after it not."""
    code, _, err = run_cli(["train", npy_data, "--recipe", "small", "--optimizer", "sgd", "--lr",
                            "1e30", "--norm",
                            "none", "--epochs", "1", "--batch-size", "64", "--out",
                            tmp_path / "o"], capsys)
    assert code == 2 and "diverged at epoch 1" in one_error_line(err)
    assert not (tmp_path / "o").exists()          # no NaN model, no empty folder


def test_metrics_and_json_output_are_strict_json(npy_data, tmp_path, capsys, strict_json):
    code, out, _ = run_cli(["train", npy_data, *FAST, "--out", tmp_path, "--json"], capsys)
    assert code == 0
    printed = strict_json(out)
    assert printed == strict_json((tmp_path / "metrics.json").read_text())
    assert printed["epochs_done"] == 1 and printed["class_names"] == ["high", "low"]


def test_trained_model_is_not_replaced_without_force(npy_data, trained, capsys):
    before = (trained / "model.safetensors").read_bytes()
    code, _, err = run_cli(["train", npy_data, *FAST, "--out", trained], capsys)
    line = one_error_line(err)
    assert code == 2 and "already holds a trained model" in line
    assert "--resume" in line and "--force" in line and f"{trained.name}-2" in line
    assert (trained / "model.safetensors").read_bytes() == before


def test_force_replaces_a_trained_model(npy_data, tmp_path, capsys):
    assert run_cli(["train", npy_data, *FAST, "--out", tmp_path], capsys)[0] == 0
    before = (tmp_path / "model.safetensors").read_bytes()
    code, _, _ = run_cli(["train", npy_data, *FAST, "--seed", "3", "--out", tmp_path,
                          "--force"], capsys)
    assert code == 0 and (tmp_path / "model.safetensors").read_bytes() != before


def test_a_second_run_into_a_locked_folder_says_who_holds_it(npy_data, tmp_path, capsys):
    from genrecnn.fsutil import LOCK_NAME, folder_lock
    with folder_lock(tmp_path):
        code, _, err = run_cli(["train", npy_data, *FAST, "--out", tmp_path], capsys)
        line = one_error_line(err)
        assert code == 2 and "in use by another genrecnn run" in line
        assert f"pid {os.getpid()} on host" in line and "started 20" in line
        assert (tmp_path / LOCK_NAME).exists()            # the holder's lock is untouched
    assert not (tmp_path / LOCK_NAME).exists() and not (tmp_path / "model.safetensors").exists()


def test_a_lock_dies_with_its_holder_even_by_kill_9(npy_data, tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from genrecnn.fsutil import folder_lock\n"
         "with folder_lock(sys.argv[1]):\n print('locked', flush=True); time.sleep(60)",
         str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_cli(["train", npy_data, *FAST, "--out", tmp_path], capsys)
        assert code == 2 and f"pid {holder.pid} on host" in one_error_line(err)
    finally:
        holder.kill()                                     # SIGKILL: no cleanup runs
        holder.wait()
    assert run_cli(["train", npy_data, *FAST, "--out", tmp_path], capsys)[0] == 0


def test_temp_files_of_killed_checkpoint_writes_are_removed(npy_data, tmp_path, capsys):
    stale = [tmp_path / ".model.safetensors.k9abc123.safetensors",
             tmp_path / ".metrics.json.zz1.json"]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    assert run_cli(["train", npy_data, *FAST, "--out", tmp_path], capsys)[0] == 0
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "confusion_matrix.png", "learning_curve.png", "metrics.json", "model.safetensors"]


def test_a_failed_run_leaves_no_empty_out_folder(npy_data, tmp_path, capsys):
    out = tmp_path / "a" / "b" / "run"
    code, _, _ = run_cli(["train", npy_data, *FAST, "--genres", "high,nosuch", "--out", out],
                         capsys)
    assert code == 2 and not (tmp_path / "a").exists()


def test_outputs_respect_the_umask(npy_data, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        assert run_cli(["train", npy_data, *FAST, "--out", tmp_path], capsys)[0] == 0
    finally:
        os.umask(old)
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_resume_names_the_saved_learning_rate_not_none(trained, npy_data, capsys):
    code, _, err = run_cli(["train", npy_data, "--resume", "--out", trained, "--lr", "0.5"],
                           capsys)
    line = one_error_line(err)
    assert code == 2 and "--lr 0.5 differs from 0.003" in line and "None" not in line


def test_dry_run_on_the_synthetic_default_makes_no_dataset(monkeypatch, tmp_path, capsys):
    import genrecnn.music.loading as loading
    made = []
    real = loading.synthetic_dataset
    monkeypatch.setattr(loading, "synthetic_dataset",
                        lambda n_per_class, **kw: made.append(n_per_class) or real(n_per_class,
                                                                                  **kw))
    start = time.perf_counter()
    code, out, _ = run_cli(["train", "--dry-run", "--out", tmp_path / "o"], capsys)
    assert code == 0 and "softmax" in out and made == [1]
    assert time.perf_counter() - start < 10 and not (tmp_path / "o").exists()


def test_summary_speaks_of_clips_and_windows_not_items(npy_data, tmp_path, capsys):
    code, out, _ = run_cli(["train", npy_data, *FAST, "--out", tmp_path / "a"], capsys)
    assert code == 0 and "items" not in out and "test 4 clips" in out
    code, out, _ = run_cli(["train", npy_data, *FAST, "--windows", "20", "--out",
                            tmp_path / "b"], capsys)
    assert code == 0 and "items" not in out and "(by window: " in out and "test 12 windows" in out


def test_a_loss_of_minus_zero_prints_as_zero():
    from genrecnn.run.fit import format_row
    row = {"epoch": 1, "lr": 1e-3, "train_loss": -0.0, "train_acc": 1.0, "test_loss": -1e-9,
           "test_acc": 1.0, "seconds": 0.1}
    assert "-0.0000" not in format_row(row) and "test loss 0.0000" in format_row(row)


def test_placement_typos_fail_before_the_data_is_loaded(monkeypatch, tmp_path, capsys):
    import genrecnn.run.train_job as job
    monkeypatch.setattr(job, "load_run_data", lambda *a, **k: pytest.fail("data loaded first"))
    for spec, words in (("", "placement is empty"), ("nosuch", "unknown backend 'nosuch'"),
                        ("conv=nosuch", "unknown backend 'nosuch'"), ("conv", "unknown")):
        code, _, err = run_cli(["train", "--backend", spec, "--out", tmp_path / "o"], capsys)
        assert code == 2 and words in one_error_line(err), spec
    assert not (tmp_path / "o").exists()

