"""Reading the first model format, an ``.npz`` archive with a JSON header in the
``__genrecnn__`` array (allow_pickle=False). Still read for predict and resume;
`genrecnn convert` rewrites such a file as safetensors."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genrecnn.errors import ModelFileError

HEADER = "__genrecnn__"
MAX_HEADER_BYTES = 64 << 20       # a header is kilobytes; refuse to inflate more
MAGICS = (b"PK\x03\x04", b"\x93NUM")     # a zip (np.savez), a lone .npy (np.save)


def is_npz(path) -> bool:
    """Whether ``path`` starts as NumPy's files do (an .npz zip or a lone .npy)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in MAGICS
    except OSError:         # the reader that follows says what is wrong
        return False


def legacy_note(path) -> str | None:
    """The one line said once an old model file was read (None for a current one)."""
    if not is_npz(path):
        return None
    return (f"note: {path} is an old .npz model; `genrecnn convert {path}` rewrites it as "
            f"safetensors")


def _damaged(path, what: str) -> ModelFileError:
    return ModelFileError(f"{path} has a damaged header: {what}; the file was edited or "
                          f"corrupted: retrain the model or restore the file")


def read_npz(path: Path) -> tuple[bytes, dict, dict]:
    """(header bytes, params, extra arrays) of an .npz model, or ModelFileError."""
    try:
        data = np.load(path, allow_pickle=False)
    except Exception:   # zip, zlib, npy and OS errors of a damaged or foreign file
        raise ModelFileError(f"{path} is not a readable genrecnn model (truncated, damaged or "
                             f"another format); retrain or restore it") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path} is not a genrecnn model (a single array, no header); "
                             f"pass a file written by `genrecnn train`")
    try:
        with data:
            if HEADER not in data.files:
                raise ModelFileError(f"{path} is not a genrecnn model (no genrecnn header); "
                                     f"pass a file written by `genrecnn train`")
            if data.zip.getinfo(HEADER + ".npy").file_size > MAX_HEADER_BYTES:
                raise _damaged(path, f"the header is larger than {MAX_HEADER_BYTES >> 20} MB")
            raw = np.asarray(data[HEADER])
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise _damaged(path, f"the header is a {raw.dtype} array, not UTF-8 bytes")
            params = {k[len("param/"):]: data[k] for k in data.files if k.startswith("param/")}
            extra = {k[len("extra/"):]: data[k] for k in data.files if k.startswith("extra/")}
    except ModelFileError:
        raise
    except Exception:
        raise ModelFileError(f"{path} is not a readable genrecnn model (truncated, damaged or "
                             f"another format); retrain or restore it") from None
    return raw.tobytes(), params, extra
