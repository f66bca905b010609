"""What `genrecnn predict` reports per file: the files a folder holds, a JSON result
(top genres, every genre's probability, the windows along the song) and a CSV
table of one row per file."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from genrecnn.errors import DataError
from genrecnn.fsutil import atomic_path
from genrecnn.music.features import SUPPORTED_EXTENSIONS
from genrecnn.music.store import is_store
from genrecnn.run.store_items import store_clips
from genrecnn.run.timeline import window_rows


def input_files(paths) -> list[Path]:
    """``paths`` with every folder replaced by the clips it holds (at any depth, sorted),
    and every feature store by its clips (:class:`~genrecnn.run.store_items.StoreClip`)."""
    files = []
    for path in map(Path, paths):
        if is_store(path):
            files.extend(store_clips(path))
            continue
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.rglob("*")
                       if p.suffix.lower() in SUPPORTED_EXTENSIONS and not p.is_dir())
        if not found:
            raise DataError(f"folder {path} holds no clips ({', '.join(SUPPORTED_EXTENSIONS)}); "
                            f"pass audio files or a folder of them")
        files.extend(found)
    return files


def result(path, pred, model, top: int) -> dict:
    """One file's JSON result; ``timeline`` holds each window's probabilities, ``ensemble``
    how many networks' mean they are."""
    order = np.argsort(-pred.probs)[:top]
    return {"file": str(path), "ensemble": model.ensemble, "windows": pred.windows,
            "padded_frames": pred.padded_frames,
            "notes": pred.notes,
            "top": [{"genre": model.names[i], "probability": float(pred.probs[i])}
                    for i in order],
            "probabilities": {n: float(p) for n, p in zip(model.names, pred.probs)},
            "timeline": window_rows(pred, model)}


def csv_text(results: list[dict], names: list[str]) -> str:
    """One row per file: the file, its top genre, every genre's probability, its windows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "genre", *names, "windows"])
    for r in results:
        writer.writerow([r["file"], r["top"][0]["genre"],
                         *(f"{r['probabilities'][n]:.6f}" for n in names), r["windows"]])
    return buf.getvalue()


def write_csv(path: Path, results: list[dict], names: list[str]) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        Path(tmp).write_text(csv_text(results, names))
