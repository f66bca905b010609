"""Clip -> log-mel spectrogram in [0, 1], from audio, greyscale PNG images or .npy arrays.

The parameters are the dissertation's (Cangea 2016): librosa mel spectrograms
at 22050 Hz, 128 bands up to 10 kHz, log-scaled and mapped to [0, 1] the way
its greyscale spectrogram images stored them (intensity / 255). Audio features
are cached on disk, keyed by the file's content and the parameters, because
decoding and the STFT dominate the cost of every run on the same data.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from genrecnn.errors import DataError, GenrecnnError
from genrecnn.fsutil import atomic_path, regular_file_problem, writable_folder

AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a", ".opus")
IMAGE_EXTENSIONS = (".png",)
ARRAY_EXTENSIONS = (".npy",)
SUPPORTED_EXTENSIONS = AUDIO_EXTENSIONS + IMAGE_EXTENSIONS + ARRAY_EXTENSIONS

# Below this many frames (~0.4 s) a clip carries too little to classify.
MIN_FRAMES = 16
# A waveform whose peak is below this (-120 dBFS) is treated as silence.
SILENCE_PEAK = 1e-6
# Bump when the computation changes, so old cache entries are not reused.
FEATURE_VERSION = 1


@dataclass(frozen=True)
class FeatureParams:
    """Spectrogram parameters; saved with every model so prediction computes the same features."""

    sr: int = 22050
    n_mels: int = 128
    n_fft: int = 1024
    hop_length: int = 512
    fmax: float = 10000.0
    top_db: float = 80.0

    def __post_init__(self):
        for name in ("sr", "n_mels", "n_fft", "hop_length"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise DataError(f"feature parameter {name}={value!r} must be a positive integer")
        if not 0 < self.fmax <= self.sr / 2:
            raise DataError(f"feature parameter fmax={self.fmax} must lie in (0, sr/2 = "
                            f"{self.sr / 2}]; lower fmax or raise sr")
        if not self.top_db > 0:
            raise DataError(f"feature parameter top_db={self.top_db} must be positive")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureParams":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DataError(f"unknown feature parameters {sorted(unknown)}; known ones are "
                            f"{sorted(known)}")
        return cls(**d)

    def frames_for(self, n_samples: int) -> int:
        """Frames librosa produces (centred STFT) for a waveform of ``n_samples``."""
        return 1 + n_samples // self.hop_length

    def digest(self) -> str:
        text = json.dumps({"v": FEATURE_VERSION, **self.as_dict()}, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class Unusable(Exception):
    """Internal: why one input cannot be used (the message has no path; DataError adds it)."""


def audio_to_features(y: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """Waveform (mono, at ``params.sr``) -> float32 [n_mels, frames] log-mel in [0, 1].

    0 is ``top_db`` below the clip's loudest bin (or quieter), 1 the loudest bin.
    Raises DataError for an empty, silent or non-finite waveform.
    """
    try:
        return _audio_to_features(y, params)
    except Unusable as exc:
        raise DataError(f"waveform: {exc}") from None


@contextmanager
def _quiet():
    """Silence decoders: libmpg123 prints to the process's stderr (fd 2) and librosa
    warns; a clip's problem is reported once, in our words."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):   # no usable fd 2: nothing to silence
        saved = None
    if saved is not None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def native_rate(path) -> int | None:
    """The sample rate an audio file was recorded at (read from its header), or None."""
    if Path(path).suffix.lower() not in AUDIO_EXTENSIONS or regular_file_problem(path):
        return None
    import librosa

    try:
        with _quiet():
            return int(librosa.get_samplerate(str(path)))
    except Exception:   # unreadable header: the decoder's own error is reported elsewhere
        return None


def _audio_to_features(y, params: FeatureParams) -> np.ndarray:
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise Unusable(f"expected a mono waveform (1-D), got shape {y.shape}; mix it down first")
    if y.size == 0:
        raise Unusable("contains no audio samples; replace or remove the file")
    if not np.isfinite(y).all():
        raise Unusable("contains NaN or infinite samples; re-encode the file")
    peak = float(np.abs(y).max())
    if peak < SILENCE_PEAK:
        raise Unusable("is silent (all samples zero); replace or remove the file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # e.g. "n_fft too large" for a clip under 1024 samples
        mel = librosa.feature.melspectrogram(y=y, sr=params.sr, n_fft=params.n_fft,
                                             hop_length=params.hop_length, n_mels=params.n_mels,
                                             fmax=params.fmax)
        db = librosa.power_to_db(mel, ref=np.max, top_db=params.top_db)
    return np.clip((db + params.top_db) / params.top_db, 0.0, 1.0).astype(np.float32)


def file_digest(path) -> str:
    """Hash of a file's content (the cache key does not depend on its name or date)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FeatureCache:
    """On-disk cache of audio features, one .npy per (file content, parameters).

    Entries are written atomically; an entry that cannot be read back (truncated,
    corrupt, wrong shape) is recomputed and overwritten, never fatal.
    ``hits`` and ``misses`` count lookups made through this object (load_dataset
    adds its worker processes' counts).
    """

    def __init__(self, root=None):
        if root is None:
            root = os.environ.get("GENRECNN_CACHE") or Path.home() / ".cache" / "genrecnn"
        self.root = Path(root).expanduser()
        self.hits = 0
        self.misses = 0

    def __repr__(self):
        return f"FeatureCache({str(self.root)!r})"

    def entry(self, content_digest: str, params: FeatureParams) -> Path:
        key = f"{content_digest}-{params.digest()}"
        return self.root / "features" / key[:2] / f"{key}.npy"

    def check_writable(self) -> None:
        """Refuse a cache folder that cannot be written (a run would cache nothing)."""
        writable_folder(self.root / "features", "the feature cache",
                        "pass a writable --cache-dir (or set GENRECNN_CACHE)")

    def get(self, content_digest: str, params: FeatureParams) -> np.ndarray | None:
        path = self.entry(content_digest, params)
        try:
            feat = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):  # absent, truncated or not an array
            self.misses += 1
            return None
        if (feat.ndim != 2 or feat.shape[0] != params.n_mels or feat.dtype != np.float32
                or not np.isfinite(feat).all()):
            self.misses += 1
            return None
        self.hits += 1
        return feat

    def put(self, content_digest: str, params: FeatureParams, feat: np.ndarray) -> None:
        path = self.entry(content_digest, params)
        try:
            with atomic_path(path, suffix=".npy") as tmp:
                np.save(tmp, np.ascontiguousarray(feat, dtype=np.float32))
        except (OSError, GenrecnnError):  # a cache that cannot be written is only slower
            return


def load_features(path, params: FeatureParams = FeatureParams(), cache: FeatureCache | None = None,
                  min_frames: int = MIN_FRAMES) -> np.ndarray:
    """float32 [n_mels, frames] features of one file: audio, greyscale PNG or .npy.

    Audio goes through :func:`audio_to_features` (and ``cache`` when given; None
    means no caching). A PNG is read as intensity / 255 with low frequencies at
    the bottom row; a .npy must already be [n_mels, frames]. Raises
    DataError("<path>: <problem>; <what to do>") for anything unusable,
    including fewer than ``min_frames`` frames.
    """
    try:
        return _load(Path(path), params, cache, min_frames)[0]
    except Unusable as exc:
        raise DataError(f"{path}: {exc}") from None


def _load(path: Path, params: FeatureParams, cache: FeatureCache | None,
          min_frames: int) -> tuple[np.ndarray, bool]:
    """(features, cache hit: True/False, None when no cache was asked) or Unusable."""
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise Unusable(f"unsupported file type {ext or '(none)'!r}; use audio "
                       f"({', '.join(AUDIO_EXTENSIONS)}), .png or .npy")
    problem = regular_file_problem(path)
    if problem is not None:
        if not path.exists():
            raise Unusable("cannot be read (missing, or a broken link); restore or remove it")
        raise Unusable(f"{problem}; pass an audio, .png or .npy file")
    try:
        size = path.stat().st_size
        digest = file_digest(path) if ext in AUDIO_EXTENSIONS and cache is not None else None
    except OSError as exc:
        raise Unusable(f"cannot be read ({exc.strerror or exc}); fix its permissions or "
                       f"remove it") from None
    if size == 0:
        raise Unusable("is empty (0 bytes); replace or remove the file")
    feat = cache.get(digest, params) if digest is not None else None
    hit = None if digest is None else feat is not None
    if feat is not None:
        pass
    elif ext in AUDIO_EXTENSIONS:
        feat = _audio_to_features(_decode(path, params), params)
        if digest is not None:
            cache.put(digest, params, feat)
    elif ext in IMAGE_EXTENSIONS:
        feat = _read_png(path)
    else:
        feat = _read_npy(path)
    _check(feat, params, min_frames, is_audio=ext in AUDIO_EXTENSIONS)
    return feat, hit


def _decode(path: Path, params: FeatureParams) -> np.ndarray:
    import librosa

    try:
        with _quiet(), open(path, "rb") as fh:
            # a name that is not UTF-8 cannot reach libsndfile: hand it the open file instead
            source = path if _utf8(path) else fh
            y, _ = librosa.load(source, sr=params.sr, mono=True)
    except PermissionError as exc:
        raise Unusable(f"cannot be read ({exc.strerror}); fix its permissions or remove "
                       f"it") from None
    except Exception as exc:  # decoders raise many types (LibsndfileError, NoBackendError, EOF)
        # audioread's NoBackendError has no message: no decoder here understood the bytes
        detail = (str(exc).splitlines()[0][:120] if str(exc).strip()
                  else "no installed decoder recognises its contents")
        raise Unusable(f"is corrupt or not decodable audio ({detail}); re-encode it (e.g. as "
                       f"WAV or FLAC) or remove it") from None
    return y


def _utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L"):
                arr = np.asarray(img, dtype=np.float32) / 65535.0
            else:
                arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
            SyntaxError, MemoryError):
        raise Unusable("is not a readable PNG image (damaged, too large or another format); "
                       "re-export it as a greyscale PNG") from None
    # image rows run top to bottom; mel band 0 (lowest frequency) is the bottom row
    return np.ascontiguousarray(arr[::-1])


def _read_npy(path: Path) -> np.ndarray:
    try:   # mapped first: a header claiming more data than the file holds fails at once
        arr = np.array(np.load(path, mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError, EOFError, MemoryError, TypeError, OverflowError):
        raise Unusable("is not a readable .npy array (damaged, another format, or Python "
                       "objects); save a numeric array with numpy.save") from None
    if arr.ndim != 2:
        raise Unusable(f"holds an array of shape {arr.shape}; expected [n_mels, frames]")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise Unusable(f"holds dtype {arr.dtype}; expected numbers [n_mels, frames]")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise Unusable("contains NaN or infinite values; recompute it")
    return arr


def _check(feat: np.ndarray, params: FeatureParams, min_frames: int, is_audio: bool) -> None:
    if feat.shape[0] != params.n_mels:
        raise Unusable(f"has {feat.shape[0]} mel bands (rows), expected n_mels="
                       f"{params.n_mels}; recompute it with {params.n_mels} bands")
    if feat.shape[1] < min_frames:
        raise Unusable(f"is too short: {feat.shape[1]} frames, at least {min_frames} needed "
                       f"(~{min_frames * params.hop_length / params.sr:.2f} s); use longer "
                       f"clips or remove it")
    if not is_audio and float(feat.max()) == float(feat.min()):
        raise Unusable("is constant (a blank spectrogram, like silence); replace or remove it")


def fit_length(feat: np.ndarray, frames: int) -> np.ndarray:
    """Crop (centre) or pad one [n_mels, F] to [n_mels, frames].

    Padding is with 0 (the silence floor of the [0, 1] scale), split evenly
    before and after, so the clip stays centred either way.
    """
    if frames <= 0:
        raise DataError(f"frames={frames} must be positive")
    have = feat.shape[1]
    if have == frames:
        return feat
    if have > frames:
        start = (have - frames) // 2
        return feat[:, start:start + frames]
    before = (frames - have) // 2
    return np.pad(feat, ((0, 0), (before, frames - have - before)))
