"""Inputs an attacker-minded tester would feed genrecnn, made at test time (no binaries in git).

- :func:`write_npy_genres`: a tiny separable dataset of .npy spectrograms (fast to train on);
- :func:`audio_corpus`: broken, odd and hostile clip files (audio, PNG, .npy, and things
  that are not files at all: a FIFO, a folder, dangling and looping links);
- :func:`model_corpus`: model files damaged in every way the reader must refuse;
- :func:`edit_model`: a copy of a model file with its JSON header or arrays changed;
- :func:`run_cli`: one CLI call that must end in a result or one clear error line, never a
  traceback (an escaping exception fails the test) and never a hang (SIGALRM).

The fixtures built on these (``npy_data``, ``trained``, ``own_cache``) are in ``conftest.py``.
"""
from __future__ import annotations

import io
import json
import os
import signal
import struct
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import safetensors.numpy
import soundfile as sf
from hypothesis import strategies as st
from safetensors import safe_open

from genrecnn.cli.main import main
from genrecnn.run.model_io import CHECKSUM, tensors_digest
from genrecnn.run.npz_model import HEADER

N_MELS, FRAMES = 128, 40
HANG_SECONDS = 60


def write_npy_clip(path: Path, high: bool, rng, frames: int = FRAMES) -> None:
    x = rng.uniform(0, 0.3, (N_MELS, frames)).astype(np.float32)
    x[N_MELS // 2:] += 0.6 if high else 0.0
    x[:N_MELS // 2] += 0.0 if high else 0.6
    np.save(path, x)


def write_npy_genres(root: Path, n: int = 6) -> Path:
    """Two separable genres, ``high`` and ``low``, of ``n`` clips each."""
    rng = np.random.default_rng(0)
    for genre in ("high", "low"):
        (root / genre).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_npy_clip(root / genre / f"{genre}.{i:05d}.npy", genre == "high", rng)
    return root


@contextmanager
def no_hang(seconds: int = HANG_SECONDS):
    """Fail (TimeoutError) instead of hanging, e.g. on a FIFO opened for reading."""
    def alarm(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: a hang")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_cli(argv, capsys, seconds: int = HANG_SECONDS) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of one CLI call, checked for the reliability contract:
    status 0, or non-zero with exactly one ``error:`` line when it is a single error; a
    call running over ``seconds`` is a hang."""
    with no_hang(seconds):
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    assert code == 0 or any(ln.startswith("error: ") or ln.startswith("Error: ")
                            for ln in err.splitlines()), (code, err)
    return code, out, err


def one_error_line(err: str) -> str:
    """The only line of stderr besides progress bars and an old model file's ``note:``,
    which must be ``error: ...``."""
    lines = [ln for ln in err.splitlines()
             if ln.strip() and "%|" not in ln and not ln.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# -- clip files -----------------------------------------------------------------------------

def tone(seconds: float = 1.0, sr: int = 22050, hz: float = 330.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def wav_bytes(y: np.ndarray, sr: int = 22050, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def _png_bytes(width: int, height: int, fill: int = 0, mode: str = "L") -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new(mode, (width, height), fill).save(buf, format="PNG")
    return buf.getvalue()


def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _npy_header_only(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + b"\0" * 64


def audio_corpus(folder: Path) -> dict[str, Path]:
    """name -> path of every hostile clip; all must be refused with a reason (or read)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    clip = tone()
    good_wav = wav_bytes(clip)
    png = _png_bytes(40, 128, 0)
    files: dict[str, bytes] = {
        "empty.wav": b"",
        "zeros.wav": b"\0" * 4096,
        "random.wav": rng.bytes(4096), "random.mp3": rng.bytes(4096),
        "random.flac": rng.bytes(4096), "random.ogg": rng.bytes(4096),
        "random.au": rng.bytes(4096), "random.m4a": rng.bytes(4096),
        "random.opus": rng.bytes(4096), "random.aiff": rng.bytes(4096),
        "id3-only.mp3": b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\0" * 200,
        "riff-header-only.wav": good_wav[:44],
        "truncated.wav": good_wav[: len(good_wav) // 7],
        "huge-claim.wav": good_wav[:4] + struct.pack("<I", 0xFFFFFFF0) + good_wav[8:40]
                          + struct.pack("<I", 0xFFFFFFF0) + good_wav[44:2000],
        "nan.wav": wav_bytes(np.full(22050, np.nan, np.float32), subtype="FLOAT"),
        "inf.wav": wav_bytes(np.full(22050, np.inf, np.float32), subtype="FLOAT"),
        "silent.wav": wav_bytes(np.zeros(22050, np.float32)),
        "one-sample.wav": wav_bytes(np.array([0.5], np.float32)),
        "tenth-second.wav": wav_bytes(clip[:2205]),
        "text.png": b"not an image at all",
        "truncated.png": png[: len(png) // 2],
        "one-pixel.png": _png_bytes(1, 1, 255),
        "constant.png": _png_bytes(40, 128, 128),
        "wrong-height.png": _png_bytes(40, 64, 9),
        "huge-claim.png": png[:16] + struct.pack(">II", 200000, 200000) + png[24:],
        "object.npy": _npy_bytes(np.array([{"a": 1}], dtype=object)),
        "three-d.npy": _npy_bytes(np.zeros((2, 128, 40), np.float32)),
        "one-d.npy": _npy_bytes(np.zeros(40, np.float32)),
        "strings.npy": _npy_bytes(np.array([["a"] * 40] * 128)),
        "complex.npy": _npy_bytes(np.ones((128, 40), np.complex64)),
        "nan.npy": _npy_bytes(np.full((128, 40), np.nan, np.float32)),
        "no-frames.npy": _npy_bytes(np.zeros((128, 0), np.float32)),
        "wrong-bands.npy": _npy_bytes(rng.uniform(size=(64, 40)).astype(np.float32)),
        "huge-claim.npy": _npy_header_only((128, 10 ** 9)),
        "pickle.npy": b"\x80\x04\x95" + rng.bytes(200),
        "text.npy": b"hello, world\n",
        "zip.npy": _zip_bytes(),
        "no-extension": good_wav,
        "notes.txt": b"not a clip",
    }
    paths = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    (folder / "folder.wav").mkdir(exist_ok=True)
    paths["folder.wav"] = folder / "folder.wav"
    os.mkfifo(folder / "fifo.wav")
    paths["fifo.wav"] = folder / "fifo.wav"
    (folder / "dangling.wav").symlink_to(folder / "nowhere.wav")
    paths["dangling.wav"] = folder / "dangling.wav"
    (folder / "loop.wav").symlink_to(folder / "loop.wav")
    paths["loop.wav"] = folder / "loop.wav"
    return paths


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.npy", b"nothing")
    return buf.getvalue()


# -- model files ----------------------------------------------------------------------------

def read_archive(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays keyed ``param/...``/``extra/...``) of a model file of either format."""
    if path.read_bytes()[:4] == b"PK\x03\x04":
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        return json.loads(arrays.pop(HEADER).tobytes().decode()), arrays
    with safe_open(path, framework="np") as fh:
        metadata = fh.metadata()
        arrays = {k: fh.get_tensor(k) for k in fh.keys()}
    return {k: json.loads(v) for k, v in metadata.items()}, arrays


def write_archive(path: Path, header, arrays: dict, raw_header: bytes | None = None) -> Path:
    """A model file as its suffix says: ``.safetensors`` (each header field a JSON string;
    a header that is no object goes in one ``genrecnn`` field) or the old ``.npz``."""
    if path.suffix == ".safetensors":
        fields = header.items() if isinstance(header, dict) else [("genrecnn", header)]
        metadata = {k: json.dumps(v) for k, v in fields}
        if raw_header is not None:
            metadata = {"format": raw_header.decode("utf-8", "replace")}
        path.write_bytes(safetensors.numpy.save(arrays, metadata=metadata))
        return path
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    np.savez(path, **arrays, **{HEADER: np.frombuffer(text, dtype=np.uint8)})
    return path


def edit_model(src: Path, dst: Path, edit=None, arrays_edit=None) -> Path:
    """Copy ``src`` to ``dst`` (in the format of ``dst``'s suffix) with ``edit(header)``
    (returning the new header, any JSON value) and ``arrays_edit(arrays)`` applied (the
    checksum, where the header has one, then made that of the edited arrays)."""
    header, arrays = read_archive(src)
    if edit is not None:
        header = edit(header)
    if arrays_edit is not None:
        arrays_edit(arrays)
        if isinstance(header, dict) and CHECKSUM in header:   # as a writer of them would
            header[CHECKSUM] = tensors_digest(arrays)
    return write_archive(dst, header, arrays)


def _set(*keys, value):
    """A header edit setting ``header[k1][k2]... = value``."""
    def edit(h):
        node = h
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
        return h
    return edit


def _nan_weights(arrays):
    key = next(k for k in arrays if k.startswith("param/"))
    arrays[key] = np.full_like(arrays[key], np.nan)


# name -> header edit; every one must be refused with one clear line
HEADER_EDITS = {
    "header-list": lambda h: [h],
    "header-string": lambda h: "genrecnn",
    "version-string": _set("version", value="2"),
    "version-newer": _set("version", value=99),
    "version-zero": _set("version", value=0),
    "format-other": _set("format", value="keras"),
    "layers-garbage": _set("layers", value="garbage"),
    "layers-empty": _set("layers", value=[]),
    "layers-of-numbers": _set("layers", value=[1, 2, 3]),
    "layer-bad-type": _set("layers", 0, "type", value="lstm"),
    "layer-huge": _set("layers", 0, "filters", value=10 ** 7),
    "layer-negative": _set("layers", 0, "filters", value=-3),
    "layer-string-size": _set("layers", 0, "filters", value="many"),
    "input-shape-short": _set("input_shape", value=[128]),
    "input-shape-zero": _set("input_shape", value=[128, 0]),
    "input-shape-huge": _set("input_shape", value=[128, 10 ** 12]),
    "input-shape-floats": _set("input_shape", value=[128.0, 40.5]),
    "input-shape-other": _set("input_shape", value=[64, 40]),
    "dtype-other": _set("dtype", value="float16"),
    "n-classes-bool": _set("n_classes", value=True),
    "n-classes-mismatch": _set("n_classes", value=3),
    "placement-number": _set("placement", value=5),
    "meta-null": _set("meta", value=None),
    "meta-list": _set("meta", value=[]),
    "class-names-null": _set("meta", "class_names", value=None),
    "class-names-short": _set("meta", "class_names", value=["high"]),
    "class-names-numbers": _set("meta", "class_names", value=[1, 2]),
    "feature-params-null": _set("meta", "feature_params", value=None),
    "feature-params-string-sr": _set("meta", "feature_params", "sr", value="fast"),
    "feature-params-unknown": _set("meta", "feature_params", "colour", value=1),
    "feature-params-nan": _set("meta", "feature_params", "fmax", value=float("nan")),
    "norm-other": _set("meta", "norm", value="zscore"),
    "windows-string": _set("meta", "windows", value="yes"),
}


def model_corpus(good: Path, folder: Path) -> dict[str, Path]:
    """name -> path of every damaged model file made from the good model ``good``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = safetensors_corpus(good, folder)
    good = edit_model(good, folder / "good.npz")        # the old format, from the same model
    data = good.read_bytes()
    arrays = read_archive(good)[1]
    paths.update({name: edit_model(good, folder / f"{name}.npz", edit)
                  for name, edit in HEADER_EDITS.items()})
    paths["nan-weights"] = edit_model(good, folder / "nan-weights.npz", arrays_edit=_nan_weights)
    paths["huge-weights"] = edit_model(
        good, folder / "huge-weights.npz",
        arrays_edit=lambda a: a.update({k: v * np.float32(1e30) for k, v in a.items()
                                        if k.startswith("param/")}))
    paths["nan-norm"] = edit_model(
        good, folder / "nan-norm.npz",
        arrays_edit=lambda a: a.update({k: np.full_like(v, np.nan) for k, v in a.items()
                                        if k.startswith("extra/norm/")}))
    paths["string-weights"] = edit_model(
        good, folder / "string-weights.npz",
        arrays_edit=lambda a: a.update({k: np.full(v.shape, "x") for k, v in a.items()
                                        if k.startswith("param/")}))
    paths["missing-weights"] = edit_model(
        good, folder / "missing-weights.npz",
        arrays_edit=lambda a: [a.pop(k) for k in [k for k in a if k.startswith("param/")][:1]])
    raw = {"header-not-json": b"{not json", "header-not-utf8": b"\xff\xfe\xfa",
           "header-deep": b"[" * 100000 + b"]" * 100000,
           "header-huge-int": b'{"format": "genrecnn-model", "version": ' + b"9" * 5000 + b"}"}
    for name, text in raw.items():
        paths[name] = write_archive(folder / f"{name}.npz", None, arrays, raw_header=text)
    blobs = {"empty": b"", "text": b"hello", "truncated": data[: len(data) // 2],
             "random": np.random.default_rng(3).bytes(5000), "zip-no-header": _zip_bytes(),
             "npy-not-npz": _npy_bytes(np.zeros(3))}
    for name, blob in blobs.items():
        (folder / f"{name}.npz").write_bytes(blob)
        paths[name] = folder / f"{name}.npz"
    np.savez(folder / "header-floats.npz", **{HEADER: np.zeros(4)})
    paths["header-floats"] = folder / "header-floats.npz"
    os.mkfifo(folder / "fifo.npz")
    paths["fifo"] = folder / "fifo.npz"
    (folder / "folder.npz").mkdir()
    paths["folder"] = folder / "folder.npz"
    paths["missing"] = folder / "missing.npz"
    return paths


def _wrong_shape(arrays):
    key = next(k for k in arrays if k.startswith("param/") and arrays[k].ndim > 1)
    arrays[key] = np.ascontiguousarray(arrays[key][..., :-1])


def _safetensors_header_length(blob: bytes, length: int) -> bytes:
    return struct.pack("<Q", length) + blob[8:]


def safetensors_corpus(good: Path, folder: Path) -> dict[str, Path]:
    """name -> damaged safetensors model (``st-...``) made from the good one ``good``: every
    header edit of :data:`HEADER_EDITS` that keeps an object, metadata that is not JSON or
    not genrecnn's, a tensor of the wrong shape, truncated and overlong headers."""
    sub = folder / "safetensors"
    sub.mkdir(parents=True, exist_ok=True)
    paths = {f"st-{name}": edit_model(good, sub / f"{name}.safetensors", edit)
             for name, edit in HEADER_EDITS.items()}
    paths["st-wrong-shape"] = edit_model(good, sub / "wrong-shape.safetensors",
                                         arrays_edit=_wrong_shape)
    paths["st-nan-weights"] = edit_model(good, sub / "nan-weights.safetensors",
                                         arrays_edit=_nan_weights)
    arrays = read_archive(good)[1]
    paths["st-no-metadata"] = sub / "no-metadata.safetensors"
    paths["st-no-metadata"].write_bytes(safetensors.numpy.save(arrays))
    paths["st-not-json"] = write_archive(sub / "not-json.safetensors", None, arrays,
                                         raw_header=b"{not json")
    paths["st-deep"] = write_archive(sub / "deep.safetensors", None, arrays,
                                     raw_header=b"[" * 100000 + b"]" * 100000)
    data = good.read_bytes()
    blobs = {"truncated": data[: len(data) // 2], "header-cut": data[:200],
             "length-huge": _safetensors_header_length(data, 1 << 60),
             "length-short": _safetensors_header_length(data, 10)}
    for name, blob in blobs.items():
        paths[f"st-{name}"] = sub / f"{name}.safetensors"
        paths[f"st-{name}"].write_bytes(blob)
    return paths


def flipped_copy(data, src: Path, dst: Path) -> Path:
    """``src`` with 1 to 8 bytes changed and cut short where Hypothesis ``data`` says."""
    blob = bytearray(src.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    dst.write_bytes(bytes(blob[:data.draw(st.integers(1, len(blob)))]))
    return dst
