"""Mismatched inputs, option ranges and broken plugins (issue 24): each case asserts the
exit status and the message, on both sides of the line."""
from __future__ import annotations

import importlib.metadata as md
import sys

import numpy as np
import pytest

from genrecnn.engine import registry as registry_module
from genrecnn.errors import BackendError

pytest.register_assert_rewrite("badinput")   # its checks explain their failures
from badinput import edit_model, one_error_line, run_cli, write_npy_genres  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("own_cache")]


def _png(path, width: int = 40):
    from PIL import Image
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (128, width), dtype=np.uint8), "L").save(path)
    return path


def _npy(path, frames: int = 40):
    np.save(path, np.random.default_rng(2).uniform(0, 1, (128, frames)).astype(np.float32))
    return path


def _kind(trained, tmp_path, kind):
    return edit_model(trained / "model.safetensors", tmp_path / f"{kind}.safetensors",
                      edit=lambda h: dict(h, meta=dict(h["meta"], input_kind=kind)))


# -- the kind of input a model was trained on ---------------------------------------------

def test_a_model_records_its_input_kind(trained):
    from genrecnn.run.model_io import load_model
    assert load_model(trained / "model.safetensors")[1]["input_kind"] == "npy"


@pytest.mark.parametrize("command", ["predict", "filters"])
def test_an_input_of_another_kind_is_refused(command, trained, tmp_path, capsys):
    extra = ["--out", tmp_path / "f.png"] if command == "filters" else []
    code, _, err = run_cli([command, trained / "model.safetensors", _png(tmp_path / "c.png"), *extra],
                           capsys)
    line = one_error_line(err)
    assert code == 2 and "c.png: is PNG spectrogram images (intensity / 255)" in line
    assert "trained on .npy arrays" in line and "value scales differ" in line
    code, _, _ = run_cli([command, trained / "model.safetensors", _npy(tmp_path / "c.npy"), *extra],
                         capsys)
    assert code == 0


def test_an_image_model_refuses_audio_and_takes_images(trained, tmp_path, capsys):
    import soundfile as sf
    from badinput import tone
    png_model = _kind(trained, tmp_path, "png")
    sf.write(tmp_path / "song.wav", tone(2.0), 22050)
    code, _, err = run_cli(["predict", png_model, tmp_path / "song.wav"], capsys)
    assert code == 2 and "song.wav: is audio" in one_error_line(err)
    assert "trained on PNG spectrogram images" in err
    assert run_cli(["predict", png_model, _png(tmp_path / "s.png")], capsys)[0] == 0


def test_an_unknown_recorded_kind_is_a_damaged_model(trained, tmp_path, capsys):
    model = _kind(trained, tmp_path, "midi")
    code, _, err = run_cli(["predict", model, _npy(tmp_path / "c.npy")], capsys)
    assert code == 2 and "unusable input kind 'midi'" in one_error_line(err)


def test_a_folder_mixing_kinds_is_refused_by_train(tmp_path, capsys):
    data = write_npy_genres(tmp_path / "data", n=4)
    _png(data / "high" / "image.png")
    code, _, err = run_cli(["train", data, "--epochs", "1", "--out", tmp_path / "o"], capsys)
    line = one_error_line(err)
    assert code == 2 and "mixes input kinds (high/high.00000 (npy), high/image (png))" in line
    assert "train on one kind" in line and not (tmp_path / "o").exists()
    (data / "high" / "image.png").unlink()
    code, _, _ = run_cli(["train", data, "--epochs", "1", "--out", tmp_path / "o"], capsys)
    assert code == 0


def test_filters_draws_an_image_by_frame_and_audio_by_time(trained, tmp_path, capsys,
                                                            monkeypatch):
    from genrecnn.run import plots
    drawn = []
    monkeypatch.setattr(plots, "filter_outputs",
                        lambda *a, **k: drawn.append((a[4], k.get("time_label"))))
    png_model = _kind(trained, tmp_path, "png")
    code, out, _ = run_cli(["filters", png_model, _png(tmp_path / "c.png"), "--out",
                            tmp_path / "f.png"], capsys)
    assert code == 0 and drawn[-1][0] == 1.0 and drawn[-1][1].startswith("frame")
    import soundfile as sf
    from badinput import tone
    sf.write(tmp_path / "song.wav", tone(2.0), 22050)
    code, _, _ = run_cli(["filters", _kind(trained, tmp_path, "audio"), tmp_path / "song.wav",
                          "--out", tmp_path / "f.png"], capsys)
    assert code == 0 and drawn[-1] == (512 / 22050, "time (s)")


def test_filters_draws_at_most_a_minute_of_a_long_clip(trained, tmp_path, capsys):
    code, out, err = run_cli(["filters", trained / "model.safetensors", _npy(tmp_path / "long.npy", 3000),
                              "--out", tmp_path / "f.png"], capsys)
    assert code == 0 and "note: drawing the first 2584 of 3000 frames" in err
    assert "(2584 frames" in out and (tmp_path / "f.png").exists()
    code, out, err = run_cli(["filters", trained / "model.safetensors", _npy(tmp_path / "s.npy", 500),
                              "--out", tmp_path / "g.png"], capsys)
    assert code == 0 and "note:" not in err and "(500 frames" in out


# -- option ranges --------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_out_of_range_is_one_line(command, seed, npy_data, tmp_path, capsys):
    code, _, err = run_cli([command, npy_data, "--seed", seed, "--epochs", "1"], capsys)
    assert code == 2 and f"{seed} is not a seed; give a whole number from 0 to 4294967295" in err
    assert "Traceback" not in err


def test_the_largest_seed_is_taken(npy_data, tmp_path, capsys):
    code, _, _ = run_cli(["train", npy_data, "--seed", "4294967295", "--epochs", "1",
                          "--test-fraction", "0.34", "--out", tmp_path / "o"], capsys)
    assert code == 0


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_crop_longer_than_the_clips_is_refused(command, npy_data, tmp_path, capsys):
    out = ["--out", tmp_path / ("o" if command == "train" else "cm.png")]
    more = ["--repeats", "1", "--no-baseline"] if command == "evaluate" else []
    code, _, err = run_cli([command, npy_data, "--crop", "100000", "--epochs", "1",
                            "--test-fraction", "0.34", *more, *out], capsys)
    line = one_error_line(err)
    assert code == 2 and "--crop 100000 is longer than the items (40 frames)" in line
    assert "give --crop 40 or less" in line
    code, _, _ = run_cli([command, npy_data, "--crop", "40", "--epochs", "1",
                          "--test-fraction", "0.34", *more, *out], capsys)
    assert code == 0


def test_arch_help_lists_every_named_architecture(capsys):
    from genrecnn.engine.architectures import named_architectures
    code, out, _ = run_cli(["train", "--help"], capsys)
    flat = " ".join(out.split())
    assert code == 0 and "cnn2d-global" in named_architectures()
    assert all(name in flat for name in named_architectures()), flat


# -- plugins --------------------------------------------------------------------------------

@pytest.fixture
def exiting_plugins(tmp_path, monkeypatch):
    """Entry points of two third-party plugins: one calls sys.exit(3) at import, one
    whose hook raises SystemExit (the "hr" of the issue)."""
    (tmp_path / "gr_exit_at_import.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "gr_exit_in_hook.py").write_text(
        "import sys\nfrom genrecnn.engine.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef genrecnn_backends():\n    raise SystemExit(4)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("gr_exit_at_import", "gr_exit_in_hook"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    good = list(md.entry_points(group="genrecnn"))
    extra = [md.EntryPoint("exits", "gr_exit_at_import", "genrecnn"),
             md.EntryPoint("hr", "gr_exit_in_hook", "genrecnn")]
    monkeypatch.setattr(md, "entry_points", lambda group=None: good + extra)
    monkeypatch.setattr(registry_module, "_default", None)


def test_a_plugin_that_exits_is_recorded_as_broken(exiting_plugins, capsys):
    reg = registry_module.build_registry()
    assert reg.infos["numpy"].available
    assert reg.infos["exits"].reason == "plugin failed to load: SystemExit: 3"
    assert any("genrecnn_backends() raised SystemExit: 4" in i.reason
               for i in reg.infos.values())
    code, out, _ = run_cli(["backends"], capsys)
    assert code == 0 and "plugin failed to load: SystemExit: 3" in out and "numpy" in out


def test_a_broken_plugins_backend_is_named_as_such(exiting_plugins, npy_data, tmp_path,
                                                   capsys):
    reg = registry_module.build_registry()
    with pytest.raises(BackendError, match=r"backend 'hr' comes from plugin hr \(gr_exit_in_hook"
                                           r"\), which is broken: genrecnn_backends\(\) raised"):
        reg.get("hr")
    with pytest.raises(BackendError) as info:
        reg.get("zz")
    assert "unknown backend 'zz'" in str(info.value) and "hr (" not in str(info.value)
    assert "numpy" in str(info.value)
    code, _, err = run_cli(["train", npy_data, "--backend", "hr", "--out", tmp_path / "o"],
                           capsys)
    assert code == 2 and "which is broken" in one_error_line(err)


def test_backends_gives_a_pip_hint_for_missing_gpu_libraries():
    from genrecnn.cli.cmd_backends import _reason
    from genrecnn.engine.registry import BackendInfo
    assert _reason(BackendInfo("cupy", "p", reason="cupy not installed")) == \
        "cupy not installed (pip install 'genrecnn[cupy]')"
    assert _reason(BackendInfo("cupy", "p", reason="no CUDA driver")) == "no CUDA driver"
    assert _reason(BackendInfo("pycuda", "p", reason="pycuda not installed (pip install "
                                                     "'genrecnn[pycuda]')")).count("pip") == 1


# -- train's messages -----------------------------------------------------------------------

def test_train_quiet_shows_no_progress_bars(npy_data, tmp_path, capsys):
    code, out, err = run_cli(["train", npy_data, "--epochs", "1", "-q", "--out", tmp_path / "q"],
                             capsys)
    assert code == 0 and "%|" not in err and "test accuracy" in out
    code, _, err = run_cli(["train", npy_data, "--epochs", "1", "--out", tmp_path / "p"], capsys)
    assert code == 0 and "%|" in err


def test_ctrl_c_names_the_kept_checkpoint_and_resume(npy_data, trained, tmp_path, capsys,
                                                     monkeypatch):
    import shutil
    from genrecnn.cli.main import main
    from genrecnn.run import train_job

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_job, "train_members", interrupted)
    assert main(["train", str(npy_data), "--epochs", "1", "--out", str(tmp_path / "new")]) == 130
    err = capsys.readouterr().err
    assert "interrupted before the first epoch ended: nothing was kept" in err
    shutil.copytree(trained, tmp_path / "old")
    assert main(["train", str(npy_data), "--epochs", "5", "--resume", "--out",
                 str(tmp_path / "old")]) == 130
    err = capsys.readouterr().err
    assert f"{tmp_path / 'old' / 'model.safetensors'} keeps the last finished epoch" in err
    assert "--resume" in err and "nothing was kept" not in err


def test_the_synthetic_set_shows_progress_while_it_is_made(capsys):
    from genrecnn.music.synthetic import synthetic_dataset
    synthetic_dataset(n_per_class=1, n_classes=2, progress=True)
    assert "making the synthetic set" in capsys.readouterr().err
    synthetic_dataset(n_per_class=1, n_classes=2)
    assert capsys.readouterr().err == ""


def test_a_one_clip_genre_is_told_to_add_clips_not_to_lower_fractions(tmp_path, capsys):
    data = write_npy_genres(tmp_path / "data", n=4)
    for extra in sorted((data / "low").iterdir())[1:]:
        extra.unlink()
    code, _, err = run_cli(["train", data, "--epochs", "1", "--out", tmp_path / "o"], capsys)
    line = one_error_line(err)
    assert code == 2 and "class 'low' has 1 clip" in line
    assert "add clips (a genre needs at least 2) or leave it out with --genres" in line
    code, _, err = run_cli(["train", data, "--epochs", "1", "--out", tmp_path / "o",
                            "--genres", "high"], capsys)
    assert code == 2 and "lower the fractions" not in err
    data2 = write_npy_genres(tmp_path / "data2", n=3)
    code, _, err = run_cli(["train", data2, "--epochs", "1", "--test-fraction", "0.5",
                            "--valid-fraction", "0.4", "--out", tmp_path / "o2"], capsys)
    assert code == 2 and "lower the fractions" in one_error_line(err)
