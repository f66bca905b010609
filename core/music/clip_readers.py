"""Reading one clip file (audio, greyscale PNG, .npy) within the bound on what a clip may cost.

Each reader looks at the size a file claims (an audio decode stops just past
the longest allowed clip, an image's or array's header is read before its
pixels) so a 174 KB PNG of 1.4 million columns or a 2 GB recording is refused
in one line instead of filling memory. Problems are raised as :class:`Unusable`
(the message has no path; the caller adds it).
"""
from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from tokenize import TokenError
from zipfile import BadZipFile

import numpy as np

# A waveform whose peak is below this (-120 dBFS) is treated as silence.
SILENCE_PEAK = 1e-6
# Values a .npy spectrogram may hold: beyond this it is not log-scaled, and training on it
# overflows (a log-mel in dB or in [0, 1] stays far below).
MAX_ABS_VALUE = 1e6


class Unusable(Exception):
    """Internal: why one input cannot be used (the message has no path; DataError adds it)."""


@contextmanager
def quiet():
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


def decode_audio(path: Path, params, max_seconds: int) -> np.ndarray:
    """Mono waveform at ``params.sr``; decoding stops just past ``max_seconds`` and a longer
    clip is refused. Channels that cancel when mixed (phase-inverted stereo) give the
    loudest channel instead of silence."""
    import librosa

    try:
        with quiet(), open(path, "rb") as fh:
            # a name that is not UTF-8 cannot reach libsndfile: hand it the open file instead
            def load(mono: bool):
                fh.seek(0)
                return librosa.load(path if _utf8(path) else fh, sr=params.sr, mono=mono,
                                    duration=max_seconds + 1)[0]
            y = load(True)
            if y.size and float(np.abs(y).max()) < SILENCE_PEAK:
                y = _loudest_channel(load(False))
    except PermissionError as exc:
        raise Unusable(f"cannot be read ({exc.strerror}); fix its permissions or remove "
                       f"it") from None
    except Exception as exc:  # decoders raise many types (LibsndfileError, NoBackendError, EOF)
        # audioread's NoBackendError has no message: no decoder here understood the bytes
        detail = (str(exc).splitlines()[0][:120] if str(exc).strip()
                  else "no installed decoder recognises its contents")
        raise Unusable(f"is corrupt or not decodable audio ({detail}); re-encode it (e.g. as "
                       f"WAV or FLAC) or remove it") from None
    if y.size > max_seconds * params.sr:
        raise Unusable(f"is longer than the {max_seconds} s ({params.max_frames} frames) one "
                       f"clip may be; cut it into shorter clips")
    return y


def _loudest_channel(y: np.ndarray) -> np.ndarray:
    """The channel with the highest peak of a [channels, n] (or mono) waveform."""
    if y.ndim == 1 or y.size == 0:
        return y
    return y[int(np.argmax(np.abs(y).max(axis=1)))]


def _utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def wrong_bands(n: int, params) -> str:
    return (f"has {n} mel bands (rows), expected n_mels={params.n_mels}; recompute it with "
            f"{params.n_mels} bands")


def read_png(path: Path, params) -> np.ndarray:
    """Intensity / 255 (or / 65535 for 16-bit) with mel band 0 at the bottom row; the
    image's size is checked from its header before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
            if width > params.max_frames:
                raise Unusable(params.too_long(width))
            if height != params.n_mels:
                raise Unusable(wrong_bands(height, params))
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


# what np.load raises on a damaged or foreign .npy file (besides MemoryError and the like):
# a truncated file, a header that does not parse, or a file that starts like a zip archive
NPY_READ_ERRORS = (OSError, ValueError, EOFError, SyntaxError, TokenError, BadZipFile)


def read_npy(path: Path, params) -> np.ndarray:
    """A numeric [n_mels, frames] array; its shape is checked from the header (mapped, not
    read) and its values must be finite and of a spectrogram's magnitude."""
    try:   # mapped first: a header claiming more data than the file holds fails at once
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        if not isinstance(mapped, np.ndarray):     # a .npz archive under a .npy name
            mapped.close()
            raise ValueError("not a single array")
    except (*NPY_READ_ERRORS, MemoryError, TypeError, OverflowError):
        raise Unusable("is not a readable .npy array (damaged, another format, or Python "
                       "objects); save a numeric array with numpy.save") from None
    if mapped.ndim != 2:
        raise Unusable(f"holds an array of shape {mapped.shape}; expected [n_mels, frames]")
    if not (np.issubdtype(mapped.dtype, np.floating) or np.issubdtype(mapped.dtype, np.integer)):
        raise Unusable(f"holds dtype {mapped.dtype}; expected numbers [n_mels, frames]")
    if mapped.shape[1] > params.max_frames:
        raise Unusable(params.too_long(mapped.shape[1]))
    if mapped.shape[0] != params.n_mels:
        raise Unusable(wrong_bands(mapped.shape[0], params))
    arr = np.array(mapped)
    if not np.isfinite(arr).all():
        raise Unusable("contains NaN or infinite values; recompute it")
    peak = float(np.abs(arr).max()) if arr.size else 0.0
    if peak > MAX_ABS_VALUE:
        raise Unusable(f"holds values up to {peak:.3g}, far beyond a spectrogram's range "
                       f"(|x| <= {MAX_ABS_VALUE:g}); save log-scaled features (dB, e.g. "
                       f"librosa.power_to_db, or [0, 1])")
    return arr.astype(np.float32)
