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
    how many networks' mean they are; ``combined_with_baseline``: the answer is the mean
    of the network's and the baseline's (then both are given too; the timeline is the
    network's)."""
    order = np.argsort(-pred.probs)[:top]
    out = {"file": str(path), "ensemble": model.ensemble,
           "combined_with_baseline": pred.baseline_probs is not None, "windows": pred.windows,
           "padded_frames": pred.padded_frames,
           "notes": pred.notes,
           "top": [{"genre": model.names[i], "probability": float(pred.probs[i])}
                   for i in order],
           "probabilities": _by_name(model.names, pred.probs),
           "timeline": window_rows(pred, model)}
    if pred.baseline_probs is not None:
        out.update(network_probabilities=_by_name(model.names, pred.network_probs),
                   baseline_probabilities=_by_name(model.names, pred.baseline_probs))
    return out


def _by_name(names: list[str], probs) -> dict:
    return {n: float(p) for n, p in zip(names, probs)}


def combined_notes(model, per_window: bool) -> list[str]:
    """What predict says once of a model trained --with-baseline (nothing of another):
    how it answers, and (``per_window``: --timeline or --json asked) that the windows are
    the network's alone."""
    if model.baseline is None:
        return []
    notes = ["combined with the baseline: each answer is the mean of the network's and the "
             "baseline's class probabilities (the model was trained with --with-baseline)"]
    if per_window:
        notes.append("note: the window-by-window probabilities (--timeline, --json's "
                     "\"timeline\") are the network's alone; the baseline judges whole clips")
    return notes


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
