"""The on-disk cache of audio features, with every entry verified on read.

An entry is a .npy array followed by a trailer: a checksum of the entry's key
(file content + parameters) and of the array's bytes. A zeroed, overwritten or
swapped entry then fails its check and is recomputed, instead of being used as
another clip's features; a cache that stops accepting writes (a full disk) is
counted, so the command that filled it can say how many features were not kept.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrecnn.errors import GenrecnnError
from genrecnn.fsutil import atomic_path, writable_folder
from genrecnn.music.clip_readers import NPY_READ_ERRORS

CHECK_TAG = b"genrecnn-check:"


@dataclass(frozen=True)
class Lookup:
    """What one file's pass through the cache did (sent back from worker processes)."""

    hit: bool
    repaired: bool = False            # a damaged entry was found and recomputed
    unwritten: str | None = None      # why the computed features could not be kept


def entry_check(key: str, feat: np.ndarray) -> bytes:
    """The trailer binding an entry's array to its key."""
    h = hashlib.blake2b(key.encode(), digest_size=16)
    h.update(repr((feat.dtype.str, feat.shape)).encode())
    h.update(np.ascontiguousarray(feat).tobytes())
    return CHECK_TAG + h.hexdigest().encode()


class FeatureCache:
    """On-disk cache of audio features, one verified .npy per (file content, parameters).

    Entries are written atomically; an entry that cannot be read back or fails
    its checksum is recomputed and overwritten, never fatal. The counters
    (``hits``, ``misses``, ``repaired``: damaged entries among the misses,
    ``unwritten``: computed features the cache did not accept, with
    ``write_error``) cover lookups made through this object (load_dataset adds
    its worker processes' counts).
    """

    def __init__(self, root=None):
        if root is None:
            root = os.environ.get("GENRECNN_CACHE") or Path.home() / ".cache" / "genrecnn"
        self.root = Path(root).expanduser()
        self.hits = self.misses = self.repaired = self.unwritten = 0
        self.write_error: str | None = None

    def __repr__(self):
        return f"FeatureCache({str(self.root)!r})"

    @staticmethod
    def key(content_digest: str, params) -> str:
        return f"{content_digest}-{params.digest()}"

    def entry(self, content_digest: str, params) -> Path:
        key = self.key(content_digest, params)
        return self.root / "features" / key[:2] / f"{key}.npy"

    def check_writable(self) -> None:
        """Refuse a cache folder that cannot be written (a run would cache nothing)."""
        writable_folder(self.root / "features", "the feature cache",
                        "pass a writable --cache-dir (or set GENRECNN_CACHE)")

    def read(self, content_digest: str, params, max_frames: int) -> tuple[np.ndarray | None,
                                                                          bool]:
        """(features or None, whether an entry was there but damaged). Counts nothing."""
        path = self.entry(content_digest, params)
        try:
            mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return None, False
        except NPY_READ_ERRORS:                    # truncated, a damaged header, unreadable
            return None, True
        if (not isinstance(mapped, np.memmap) or mapped.ndim != 2
                or mapped.shape[0] != params.n_mels or not 0 < mapped.shape[1] <= max_frames
                or mapped.dtype != np.float32):
            return None, True
        feat, end = np.array(mapped), mapped.offset + mapped.nbytes
        del mapped
        try:
            with open(path, "rb") as fh:
                fh.seek(end)
                trailer = fh.read(len(CHECK_TAG) + 64)
        except OSError:
            return None, True
        if (trailer != entry_check(self.key(content_digest, params), feat)
                or not np.isfinite(feat).all()):
            return None, True
        return feat, False

    def write(self, content_digest: str, params, feat: np.ndarray) -> str | None:
        """Store an entry; None, or why the cache did not accept it (e.g. a full disk)."""
        feat = np.ascontiguousarray(feat, dtype=np.float32)
        try:
            with atomic_path(self.entry(content_digest, params), suffix=".npy") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, feat)
                    fh.write(entry_check(self.key(content_digest, params), feat))
        except (OSError, GenrecnnError) as exc:
            cause = exc.__context__ if isinstance(exc.__context__, OSError) else exc
            return getattr(cause, "strerror", None) or str(cause)
        return None

    @property
    def repair_note(self) -> str | None:
        """Damaged entries recomputed (None: none)."""
        return (f"{self.repaired} cache entr{'ies' if self.repaired != 1 else 'y'} failed the "
                f"checksum (damaged or replaced); recomputed" if self.repaired else None)

    @property
    def unwritten_note(self) -> str | None:
        """Computed features the cache did not keep (None: it kept them all)."""
        return (f"{self.unwritten} of {self.misses} computed clip(s) were not cached in "
                f"{self.root} ({self.write_error}); free space there or pass another "
                f"--cache-dir" if self.unwritten else None)

    def notes(self) -> list[str]:
        """What a command tells of this object's lookups, one line each."""
        return [n for n in (self.repair_note, self.unwritten_note) if n]

    def count(self, lookup: Lookup | None) -> None:
        """Add one file's lookup (None: the file was not cached, e.g. an image)."""
        if lookup is None:
            return
        self.hits += lookup.hit
        self.misses += not lookup.hit
        self.repaired += lookup.repaired
        if lookup.unwritten is not None:
            self.unwritten += 1
            self.write_error = lookup.unwritten
