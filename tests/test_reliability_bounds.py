"""What one clip may cost, the verified feature cache and the worker processes (issue 24):
each case asserts the exit status and the message, on both sides of the line."""
from __future__ import annotations

import errno
import io
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings, strategies as st

from genrecnn.errors import DataError
from genrecnn.music import features as F
from genrecnn.music.features import FeatureParams, load_features

pytest.register_assert_rewrite("badinput")   # its checks explain their failures
from badinput import one_error_line, run_cli, tone, write_npy_genres  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("own_cache")]


def _png_header_only(width: int, height: int) -> bytes:
    """A greyscale PNG whose (valid) header claims ``width`` x ``height``, with one tiny
    IDAT: the 174 KB "bomb" of the issue, without its compressed zeros."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _png(path, width: int, height: int = 128):
    from PIL import Image
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8), "L").save(path)
    return path


# -- the bound on one clip ------------------------------------------------------------------

def test_the_bound_is_ten_minutes_of_frames():
    p = FeatureParams()
    assert F.MAX_SECONDS == 600 and p.max_frames == 25840
    assert "25840" in p.too_long(25841) and "cut it into shorter clips" in p.too_long(25841)


@pytest.mark.parametrize("command", ["predict", "filters"])
def test_a_png_bomb_is_refused_from_its_header(command, trained, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(1_395_000, 128))
    extra = ["--out", tmp_path / "f.png"] if command == "filters" else []
    start = time.perf_counter()
    code, _, err = run_cli([command, trained / "model.safetensors", bomb, *extra], capsys)
    assert code == 2 and "is too long: 1395000 frames, over the 25840" in one_error_line(err)
    assert time.perf_counter() - start < 20          # refused from the header, not decoded
    assert not (tmp_path / "f.png").exists()


def test_images_and_arrays_at_the_bound_are_read_and_past_it_refused(tmp_path):
    p = FeatureParams()
    np.save(tmp_path / "at.npy", np.linspace(0, 1, 128 * p.max_frames, dtype=np.float32)
            .reshape(128, p.max_frames))
    np.save(tmp_path / "past.npy", np.full((128, p.max_frames + 1), 0.5, np.float16))
    assert load_features(tmp_path / "at.npy").shape == (128, p.max_frames)
    with pytest.raises(DataError, match=r"past.npy: is too long: 25841 frames"):
        load_features(tmp_path / "past.npy")
    assert load_features(_png(tmp_path / "at.png", 400)).shape == (128, 400)
    (tmp_path / "tall.png").write_bytes(_png_header_only(40, 1_000_000))
    with pytest.raises(DataError, match="has 1000000 mel bands"):
        load_features(tmp_path / "tall.png")


@pytest.fixture
def short_bound(monkeypatch):
    """Clips of at most 3 s (130 frames), so a too-long clip is quick to make and decode."""
    monkeypatch.setattr(F, "MAX_SECONDS", 3)


def test_long_audio_is_refused_while_decoding_stops_early(short_bound, audio_model, tmp_path,
                                                          capsys):
    sf.write(tmp_path / "long.wav", tone(4.0), 22050)
    sf.write(tmp_path / "ok.wav", tone(2.5), 22050)
    code, _, err = run_cli(["predict", audio_model, tmp_path / "long.wav"], capsys)
    line = one_error_line(err)
    assert code == 2 and "long.wav: is longer than the 3 s (130 frames) one clip may be" in line
    assert "cut it into shorter clips" in line
    code, out, _ = run_cli(["predict", audio_model, tmp_path / "ok.wav"], capsys)
    assert code == 0 and "ok.wav:" in out


def test_train_skips_a_clip_past_the_bound(short_bound, tmp_path, capsys):
    data = write_npy_genres(tmp_path / "data", n=4)
    np.save(data / "high" / "huge.npy", np.linspace(0, 1, 128 * 131).reshape(128, 131))
    code, out, _ = run_cli(["train", data, "--epochs", "1", "--test-fraction", "0.5",
                            "--out", tmp_path / "o"], capsys)
    assert code == 0 and "huge.npy: is too long: 131 frames, over the 130" in out
    np.save(data / "high" / "huge.npy", np.linspace(0, 1, 128 * 130).reshape(128, 130))
    code, out, _ = run_cli(["train", data, "--epochs", "1", "--test-fraction", "0.5",
                            "--out", tmp_path / "o", "--force"], capsys)
    assert code == 0 and "huge.npy" not in out


def test_npy_values_far_beyond_a_spectrogram_are_refused(trained, tmp_path, capsys):
    np.save(tmp_path / "huge.npy", np.full((128, 40), 3e38, np.float32))
    np.save(tmp_path / "db.npy", np.linspace(-80, 1e5, 128 * 40).reshape(128, 40))
    code, _, err = run_cli(["predict", trained / "model.safetensors", tmp_path / "huge.npy"], capsys)
    line = one_error_line(err)
    assert code == 2 and "holds values up to 3e+38" in line and "log-scaled" in line
    assert "lower --lr" not in line
    assert run_cli(["predict", trained / "model.safetensors", tmp_path / "db.npy"], capsys)[0] == 0


def test_phase_inverted_stereo_is_read_and_true_silence_refused(audio_model, tmp_path, capsys):
    y = tone(2.0)
    sf.write(tmp_path / "inverted.wav", np.stack([y, -y], axis=1), 22050, subtype="FLOAT")
    sf.write(tmp_path / "silent.wav", np.zeros((44100, 2), np.float32), 22050)
    code, out, _ = run_cli(["predict", audio_model, tmp_path / "inverted.wav"], capsys)
    assert code == 0 and "inverted.wav:" in out
    assert np.allclose(load_features(tmp_path / "inverted.wav"),
                       F.audio_to_features(y), atol=1e-5)
    code, _, err = run_cli(["predict", audio_model, tmp_path / "silent.wav"], capsys)
    assert code == 2 and "silent.wav: is silent" in one_error_line(err)


# -- the feature cache -----------------------------------------------------------------------

@pytest.fixture
def wav_data(tmp_path):
    root = tmp_path / "wavs"
    for g, hz in (("a", 220.0), ("b", 880.0)):
        (root / g).mkdir(parents=True)
        for i in range(2):
            sf.write(root / g / f"{g}{i}.wav", tone(1.0, hz=hz * (1 + i / 10)), 22050)
    return root


def _features(capsys, data, cache, *more):
    return run_cli(["features", data, "--cache-dir", cache, "-j", "1", *more], capsys)


def _entries(cache):
    return sorted(cache.rglob("*.npy"))


@pytest.mark.parametrize("damage", ["zeroed", "overwritten", "swapped"])
def test_damaged_cache_entries_are_recomputed_with_a_note(damage, wav_data, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert _features(capsys, wav_data, cache)[0] == 0
    code, out, _ = _features(capsys, wav_data, cache)
    assert code == 0 and "4 hits, 0 computed" in out and "checksum" not in out
    first, second = _entries(cache)[:2]
    good = np.load(first)
    if damage == "zeroed":
        with open(first, "r+b") as fh:              # the array's bytes, not its header
            fh.seek(len(first.read_bytes()) - good.nbytes - 47)
            fh.write(b"\0" * good.nbytes)
    elif damage == "overwritten":
        np.save(first, np.full_like(good, 0.5))     # a valid .npy, without our checksum
    else:
        first.write_bytes(second.read_bytes())      # another clip's (valid) entry
    code, out, _ = _features(capsys, wav_data, cache)
    assert code == 0 and "3 hits, 1 computed" in out
    assert "note: 1 cache entry failed the checksum (damaged or replaced); recomputed" in out
    code, out, _ = _features(capsys, wav_data, cache)           # rewritten: hits again
    assert code == 0 and "4 hits, 0 computed" in out and "checksum" not in out


def test_a_cache_that_stops_accepting_writes_is_reported(wav_data, tmp_path, capsys,
                                                         monkeypatch):
    from genrecnn.music import feature_cache

    real = feature_cache.atomic_path
    calls = []

    def full_after_one(path, suffix=""):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, suffix)

    monkeypatch.setattr(feature_cache, "atomic_path", full_after_one)
    code, out, err = _features(capsys, wav_data, tmp_path / "cache")
    line = one_error_line(err)
    assert code == 2 and "3 of 4 computed clip(s) were not cached" in line
    assert "No space left on device" in line and "free space there" in line
    assert "4 computed" in out and len(_entries(tmp_path / "cache")) == 1
    monkeypatch.setattr(feature_cache, "atomic_path", real)
    code, out, err = _features(capsys, wav_data, tmp_path / "cache")
    assert code == 0 and "1 hits, 3 computed" in out and "not cached" not in err


# -- worker processes ------------------------------------------------------------------------

POOL_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from genrecnn.music.workers import worker_pool
    pool = worker_pool(2)
    futures = [pool.submit(time.sleep, 0.5) for _ in range(2)]
    print(" ".join(str(p) for p in pool._processes), flush=True)
    time.sleep(120)
""")


def _end(pids) -> None:
    """Kill what a failed test may have left running (only the pids it started)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _survivors_of_sigterm(proc, pids, grace: float = 15) -> list[int]:
    """SIGTERM ``proc``; the ``pids`` still alive ``grace`` seconds after it ended."""
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    deadline = time.monotonic() + grace
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_die_with_their_parent_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-c", POOL_SCRIPT], stdout=subprocess.PIPE,
                            text=True)
    pids = []
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        assert not _survivors_of_sigterm(proc, pids), "workers outlived their parent"
    finally:
        proc.kill()
        proc.wait()
        _end(pids)


def test_jobs_are_capped_at_the_usable_cores(wav_data, tmp_path, capsys):
    from genrecnn.music.workers import usable_cores, worker_count

    cores = usable_cores()
    assert cores == len(os.sched_getaffinity(0))
    assert worker_count(1000, 50) == cores and worker_count(1000, 1) == 1
    assert worker_count(1, 50) == 1
    code, out, err = run_cli(["features", wav_data, "--cache-dir", tmp_path / "c", "-j", "1000",
                              "-q"], capsys)
    assert code == 0 and f"note: --jobs 1000: this process may use {cores} core(s)" in err
    code, _, err = run_cli(["features", wav_data, "--cache-dir", tmp_path / "c", "-j", "1",
                            "-q"], capsys)
    assert code == 0 and "note:" not in err


def test_audio_decoding_reads_from_an_open_file_as_well(tmp_path):
    """The stereo fallback re-reads the file: from the start, also for a non-UTF-8 name."""
    buf = io.BytesIO()
    y = tone(1.0)
    sf.write(buf, np.stack([y, -y], axis=1), 22050, format="WAV")
    name = tmp_path / os.fsdecode(b"\xfe.wav")
    name.write_bytes(buf.getvalue())
    assert load_features(name).shape[0] == 128


# -- threads --------------------------------------------------------------------------------

BLAS_SCRIPT = textwrap.dedent("""
    import numpy as np
    from threadpoolctl import threadpool_info
    def blas():
        return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    before = blas()
    from genrecnn.backends.numpy_backend import parallel
    parallel.over_batch(lambda s: None, 8, 1 << 30, blas=True)
    x = np.ones((64, 64)); x @ x
    print(before, blas())
""")


@pytest.mark.skipif(os.cpu_count() < 2, reason="needs BLAS with more than one thread to start")
def test_blas_stays_on_one_thread_beside_our_own_pool():
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    res = subprocess.run([sys.executable, "-c", BLAS_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=60)
    before, after = map(int, res.stdout.split())
    assert before > 1 and after == 1, res.stdout


@settings(max_examples=60, deadline=None)
@given(offset=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_flipped_bit_in_a_cache_entry_is_caught(offset, bit):
    """An entry with one bit changed anywhere (header, array or checksum) is never used."""
    import tempfile
    from genrecnn.music.feature_cache import FeatureCache
    params = FeatureParams()
    feat = np.random.default_rng(3).uniform(0, 1, (128, 20)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        cache = FeatureCache(d)
        assert cache.write("ab" * 16, params, feat) is None
        got, damaged = cache.read("ab" * 16, params, params.max_frames)
        assert np.array_equal(got, feat) and not damaged
        path = cache.entry("ab" * 16, params)
        data = bytearray(path.read_bytes())
        data[offset % len(data)] ^= 1 << bit
        path.write_bytes(bytes(data))
        got, damaged = cache.read("ab" * 16, params, params.max_frames)
        assert got is None and damaged


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except FileNotFoundError:
        return []


@pytest.mark.skipif(not (sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) > 1),
                    reason="needs Linux and two usable cores for two workers")
def test_sigterm_to_features_takes_its_workers_with_it(tmp_path):
    from shared_data import SAMPLE
    if not SAMPLE.is_dir():
        pytest.skip(f"real audio sample: {SAMPLE} not present on this machine")
    proc = subprocess.Popen([sys.executable, "-m", "genrecnn", "features", str(SAMPLE), "-j",
                             "2", "-q", "--cache-dir", str(tmp_path / "c")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        deadline = time.monotonic() + 60
        while len(workers := _children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) >= 2 and all(_alive(p) for p in workers), workers
        assert not _survivors_of_sigterm(proc, workers), "workers outlived `genrecnn features`"
    finally:
        proc.kill()
        proc.wait()
        _end(workers)


def test_train_and_predict_tell_of_damaged_or_unkept_cache_entries(wav_data, tmp_path, capsys,
                                                                   monkeypatch):
    """Not only `features`: a run that recomputes a damaged entry, or whose cache keeps
    nothing, says so in a note (and still trains and predicts)."""
    from genrecnn.music import feature_cache

    cache = tmp_path / "cache"
    monkeypatch.setenv("GENRECNN_CACHE", str(cache))
    assert _features(capsys, wav_data, cache)[0] == 0
    first, second = _entries(cache)[:2]
    first.write_bytes(second.read_bytes())                      # another clip's entry
    out_dir = tmp_path / "run"
    code, out, _ = run_cli(["train", wav_data, "--arch", "small", "--epochs", "1",
                            "--test-fraction", "0.5", "--out", out_dir], capsys)
    assert code == 0
    assert "note: 1 cache entry failed the checksum (damaged or replaced); recomputed" in out
    monkeypatch.setattr(feature_cache, "atomic_path", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    monkeypatch.setenv("GENRECNN_CACHE", str(tmp_path / "other-cache"))
    code, _, err = run_cli(["predict", out_dir / "model.safetensors", wav_data / "a" / "a0.wav"],
                           capsys)
    assert code == 0
    assert "note: 1 of 1 computed clip(s) were not cached" in err and "No space left" in err
