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
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from genrecnn.errors import DataError
from genrecnn.fsutil import regular_file_problem
from genrecnn.music.clip_readers import (SILENCE_PEAK, Unusable, decode_audio, quiet,
                                         read_npy, read_png, wrong_bands)
from genrecnn.music.feature_cache import FeatureCache, Lookup

AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a", ".opus")
IMAGE_EXTENSIONS = (".png",)
ARRAY_EXTENSIONS = (".npy",)
SUPPORTED_EXTENSIONS = AUDIO_EXTENSIONS + IMAGE_EXTENSIONS + ARRAY_EXTENSIONS

# Below this many frames (~0.4 s) a clip carries too little to classify.
MIN_FRAMES = 16
# The most one clip may cost: 10 minutes of audio, i.e. 25,840 frames at the default hop
# (13 MB of features); images and arrays get the same number of frames. Longer input is
# refused before it is decoded in full, so no reader or command grows with the file.
MAX_SECONDS = 600
# Bump when the computation changes, so old cache entries are not reused.
FEATURE_VERSION = 2   # 2: cache entries carry a checksum


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

    @property
    def max_frames(self) -> int:
        """The most frames one clip may have (``MAX_SECONDS`` of audio)."""
        return self.frames_for(MAX_SECONDS * self.sr)

    def too_long(self, frames: int) -> str:
        """Why a clip of ``frames`` frames is refused, with what to do."""
        return (f"is too long: {frames} frames, over the {self.max_frames} "
                f"({MAX_SECONDS} s of audio) one clip may have; cut it into shorter clips")

    def digest(self) -> str:
        text = json.dumps({"v": FEATURE_VERSION, **self.as_dict()}, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def audio_to_features(y: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """Waveform (mono, at ``params.sr``) -> float32 [n_mels, frames] log-mel in [0, 1].

    0 is ``top_db`` below the clip's loudest bin (or quieter), 1 the loudest bin.
    Raises DataError for an empty, silent or non-finite waveform.
    """
    try:
        return _audio_to_features(y, params)
    except Unusable as exc:
        raise DataError(f"waveform: {exc}") from None


def native_rate(path) -> int | None:
    """The sample rate an audio file was recorded at (read from its header), or None."""
    if Path(path).suffix.lower() not in AUDIO_EXTENSIONS or regular_file_problem(path):
        return None
    import librosa

    try:
        with quiet():
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


def load_features(path, params: FeatureParams = FeatureParams(), cache: FeatureCache | None = None,
                  min_frames: int = MIN_FRAMES) -> np.ndarray:
    """float32 [n_mels, frames] features of one file: audio, greyscale PNG or .npy.

    Audio goes through :func:`audio_to_features` (and ``cache`` when given; None
    means no caching). A PNG is read as intensity / 255 with low frequencies at
    the bottom row; a .npy must already be [n_mels, frames]. Raises
    DataError("<path>: <problem>; <what to do>") for anything unusable,
    including fewer than ``min_frames`` frames or more than ``params.max_frames``.
    """
    try:
        feat, lookup = _load(Path(path), params, cache, min_frames)
    except Unusable as exc:
        raise DataError(f"{path}: {exc}") from None
    if cache is not None:
        cache.count(lookup)
    return feat


def _load(path: Path, params: FeatureParams, cache: FeatureCache | None,
          min_frames: int) -> tuple[np.ndarray, Lookup | None]:
    """(features, the cache lookup or None where no cache was used) or Unusable."""
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise Unusable(f"unsupported file type {ext or '(none)'!r}; use audio "
                       f"({', '.join(AUDIO_EXTENSIONS)}), .png or .npy")
    problem = regular_file_problem(path)
    if problem is not None:
        if not path.exists():
            raise Unusable("cannot be read (missing, or a broken link); restore or remove it")
        raise Unusable(f"{problem}; pass an audio, .png or .npy file")
    if _readable(path.stat) == 0:
        raise Unusable("is empty (0 bytes); replace or remove the file")
    lookup = None
    if ext in AUDIO_EXTENSIONS:
        feat, lookup = _audio_features(path, params, cache)
    elif ext in IMAGE_EXTENSIONS:
        feat = read_png(path, params)
    else:
        feat = read_npy(path, params)
    _check(feat, params, min_frames, is_audio=ext in AUDIO_EXTENSIONS)
    return feat, lookup


def _readable(read):
    """``read()``, with an OSError (permissions, I/O) as Unusable; a stat gives the size."""
    try:
        result = read()
    except OSError as exc:
        raise Unusable(f"cannot be read ({exc.strerror or exc}); fix its permissions or "
                       f"remove it") from None
    return getattr(result, "st_size", result)


def _audio_features(path: Path, params: FeatureParams,
                    cache: FeatureCache | None) -> tuple[np.ndarray, Lookup | None]:
    """An audio file's features, from the cache where a verified entry holds them."""
    def compute():
        return _audio_to_features(decode_audio(path, params, MAX_SECONDS), params)

    if cache is None:
        return compute(), None
    digest = _readable(lambda: file_digest(path))
    feat, damaged = cache.read(digest, params, params.max_frames)
    if feat is not None:
        return feat, Lookup(hit=True)
    feat = compute()
    return feat, Lookup(hit=False, repaired=damaged, unwritten=cache.write(digest, params, feat))


def _check(feat: np.ndarray, params: FeatureParams, min_frames: int, is_audio: bool) -> None:
    if feat.shape[0] != params.n_mels:
        raise Unusable(wrong_bands(feat.shape[0], params))
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
