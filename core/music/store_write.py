"""Writing a feature store in bounded memory: shards streamed to disk, the index last.

A shard is written as ``<name>.part``: a 128-byte space for the ``.npy`` header,
then each clip's frames as they come; when the shard reaches its size limit the
header (now knowing the total length) is written into that space and the file is
renamed to ``<name>``. The index, written atomically after every shard is
complete, is the only thing that makes shards part of the store, so a run killed
at any point leaves the previous store intact; :func:`clean_store` removes what
it left behind (``.part`` files and complete shards the index does not name).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from genrecnn.errors import DataError
from genrecnn.fsutil import atomic_write_text, json_text, remove_stale_temps
from genrecnn.music.features import FeatureParams
from genrecnn.music.store import (HEADER_BYTES, INDEX_NAME, STORE_FORMAT, STORE_VERSION,
                                  is_store, read_index, shard_bytes)

SHARD_PREFIX = "shard-"
DEFAULT_SHARD_BYTES = 1 << 30
PART = ".part"


def npy_header(frames: int, n_mels: int) -> bytes:
    """numpy's v1.0 header of a C-order float32 [frames, n_mels] array (HEADER_BYTES long)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": (frames, n_mels)})
    header = buf.getvalue()
    assert len(header) == HEADER_BYTES, f"a .npy header of {len(header)} bytes"
    return header


class ShardWriter:
    """One shard being written: clips appended time-major behind a reserved header."""

    def __init__(self, folder: Path, name: str, n_mels: int):
        self.folder, self.name, self.n_mels = Path(folder), name, n_mels
        self.frames = 0
        self._part = self.folder / (name + PART)
        self._fh = open(self._part, "wb")
        self._fh.write(b"\0" * HEADER_BYTES)

    @property
    def nbytes(self) -> int:
        return shard_bytes(self.frames, self.n_mels)

    def add(self, feat: np.ndarray) -> int:
        """Append one clip's [n_mels, frames] features; its offset (in frames) in the shard."""
        offset = self.frames
        np.ascontiguousarray(feat.T, dtype="<f4").tofile(self._fh)
        self.frames += feat.shape[1]
        return offset

    def close(self) -> dict:
        """Write the header, make the file durable and give it its name; its index entry."""
        self._fh.seek(0)
        self._fh.write(npy_header(self.frames, self.n_mels))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._part, self.folder / self.name)
        return {"name": self.name, "frames": self.frames, "bytes": self.nbytes}

    def abort(self) -> None:
        self._fh.close()
        self._part.unlink(missing_ok=True)


class ShardSeries:
    """Clips streamed into shards ``<prefix>-0000.npy``, ``-0001`` ..., each closed
    once it holds ``max_bytes``; ``rows`` and ``shards`` describe what was written."""

    def __init__(self, folder, prefix: str, n_mels: int, max_bytes: int = DEFAULT_SHARD_BYTES):
        if max_bytes < shard_bytes(1, n_mels):
            raise DataError(f"shard size {max_bytes} bytes is too small; use at least 1 MiB")
        self.folder, self.prefix, self.n_mels, self.max_bytes = Path(folder), prefix, n_mels, \
            max_bytes
        self.shards: list[dict] = []
        self._open: ShardWriter | None = None

    def add(self, feat: np.ndarray) -> tuple[str, int]:
        """Write one clip; (shard name, offset in frames) for its index row."""
        if self._open is None:
            name = f"{self.prefix}-{len(self.shards):04d}.npy"
            self._open = ShardWriter(self.folder, name, self.n_mels)
        shard = self._open
        offset = shard.add(feat)
        if shard.nbytes >= self.max_bytes:
            self.shards.append(shard.close())
            self._open = None
        return shard.name, offset

    def close(self) -> list[dict]:
        if self._open is not None:
            self.shards.append(self._open.close())
            self._open = None
        return self.shards

    def abort(self) -> None:
        if self._open is not None:
            self._open.abort()
            self._open = None


def shard_prefix(generation: int, rank: int, worker: int | None = None) -> str:
    """A shard name prefix no other writer of this or an earlier run uses."""
    tail = "" if worker is None else f"-w{worker:02d}"
    return f"{SHARD_PREFIX}g{generation:04d}-r{rank:03d}{tail}"


def existing_index(folder, params: FeatureParams) -> dict | None:
    """The index of the store being updated (None for a new store), or DataError when
    it was made with other feature parameters."""
    folder = Path(folder)
    if not folder.exists() or not (folder / INDEX_NAME).exists():
        if folder.is_dir() and any(p.name != ".genrecnn.lock" and not _ours(p.name)
                                   for p in folder.iterdir()):
            raise DataError(f"{folder} holds other files and is not a feature store; choose a "
                            f"new or empty folder for --store")
        return None
    if not is_store(folder):
        raise DataError(f"{folder}/{INDEX_NAME} is not a genrecnn store index; choose another "
                        f"--store folder")
    doc = read_index(folder)
    old = FeatureParams.from_dict(doc["params"])
    if old != params:
        differ = [f"{k} {v} (store) vs {params.as_dict()[k]}"
                  for k, v in old.as_dict().items() if params.as_dict()[k] != v]
        raise DataError(f"store {folder} was made with other feature parameters "
                        f"({'; '.join(differ)}); use a new --store folder for these")
    return doc


def _ours(name: str) -> bool:
    return name.startswith(SHARD_PREFIX) or name.startswith(f".{INDEX_NAME}.")


def clean_store(folder, keep: set[str]) -> list[str]:
    """Remove shards not in ``keep``, ``.part`` files and index temporaries left by
    killed runs (hold the store's lock). The names removed."""
    folder = Path(folder)
    removed = [p.name for p in remove_stale_temps(folder, [INDEX_NAME])]
    for p in folder.glob(SHARD_PREFIX + "*"):
        if p.name not in keep:
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def write_index(folder, params: FeatureParams, class_names: list[str], clips: list[dict],
                shards: list[dict], generation: int, origin: str) -> dict:
    """Write the index atomically (the moment the new shards become the store's)."""
    used = {c["shard"] for c in clips}
    doc = {"format": STORE_FORMAT, "version": STORE_VERSION, "generation": generation,
           "origin": origin, "params": params.as_dict(), "class_names": list(class_names),
           "shards": [s for s in shards if s["name"] in used],
           "clips": sorted(clips, key=lambda c: c["id"])}
    atomic_write_text(Path(folder) / INDEX_NAME, json_text(doc, indent=1))
    return doc
