"""Figures a person would rather look at than read, written atomically as PNG.

Learning curves (train/test loss and accuracy per epoch, like the
dissertation's Figures 4.8 and 4.9), the confusion matrix, a spectrogram
beside first-layer filter outputs over time (its section 4.5), and the
benchmark's per-layer and transfer timings (its Figures 4.10-4.19).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from genrecnn.fsutil import atomic_path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path) -> None:
    plt = _pyplot()
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def learning_curves(history: list[dict], path, title: str = "") -> None:
    """Loss and accuracy per epoch for train, test (and valid where recorded)."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [r["epoch"] for r in history]
    for part, style in (("train", "-o"), ("valid", "-s"), ("test", "-^")):
        if f"{part}_loss" not in (history[0] if history else {}):
            continue
        ax_loss.plot(epochs, [r[f"{part}_loss"] for r in history], style, label=part, ms=3)
        ax_acc.plot(epochs, [r[f"{part}_acc"] for r in history], style, label=part, ms=3)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def confusion_matrix(cm: np.ndarray, class_names: list[str], path, title: str = "") -> None:
    """Row-normalised confusion matrix (true class per row), with the counts printed."""
    plt = _pyplot()
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(class_names)
    size = max(4.0, 0.6 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, f"{cm[i, j]:g}", ha="center", va="center",
                        color="white" if frac[i, j] > 0.5 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    _save(fig, path)


def filter_outputs(spec: np.ndarray, outputs: np.ndarray, filters: list[int], path,
                   seconds_per_frame: float, title: str = "",
                   time_label: str = "time (s)") -> None:
    """The spectrogram [n_mels, F] above the chosen filters' outputs over time: a curve
    per filter for a time-axis convolution ([len(filters), F']), a map per filter for
    a 2-D one ([len(filters), bands, F']).

    A convolution of width K yields F - K + 1 steps; they are drawn from the
    frame each window starts at, on the same time axis as the spectrogram.
    """
    plt = _pyplot()
    n = len(filters)
    fig, axes = plt.subplots(n + 1, 1, figsize=(10, 2.2 + 1.4 * n), sharex=True,
                             gridspec_kw={"height_ratios": [2.5] + [1] * n})
    axes = np.atleast_1d(axes)
    t_end = spec.shape[1] * seconds_per_frame
    axes[0].imshow(spec, origin="lower", aspect="auto", cmap="magma",
                   extent=(0, t_end, 0, spec.shape[0]))
    axes[0].set(ylabel="mel band", title=title or "log-mel spectrogram and first-layer filters")
    t = np.arange(outputs.shape[-1]) * seconds_per_frame
    for ax, f, out in zip(axes[1:], filters, outputs):
        if out.ndim == 2:
            ax.imshow(out, origin="lower", aspect="auto", cmap="viridis",
                      extent=(0, t[-1] + seconds_per_frame, 0, out.shape[0]))
        else:
            ax.plot(t, out, lw=0.8)
            ax.grid(alpha=0.3)
        ax.set_ylabel(f"filter {f}")
    axes[-1].set_xlabel(time_label)
    axes[-1].set_xlim(0, t_end)
    fig.tight_layout()
    _save(fig, path)


# -- benchmark timings --------------------------------------------------------------------

def bench_sweep(rows: list[dict], out: Path) -> list[Path]:
    """One figure per layer kind: time against size, log-log, forward and backward."""
    paths = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        fig = _pyplot().figure(figsize=(10, 4))
        for ax, phase in zip(fig.subplots(1, 2), ("forward", "backward")):
            lines = defaultdict(list)
            for r in rows:
                if r["kind"] == kind and r["phase"] == phase:
                    lines[r["backend"]].append((r["elements"], r["median_s"]))
            for be, pts in lines.items():
                xs, ys = zip(*sorted(pts))
                ax.loglog(xs, ys, marker="o", label=be)
            ax.set(title=f"{kind} {phase}", xlabel="input elements", ylabel="median time (s)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.tight_layout()
        paths.append(out / f"layers_{kind}.png")
        _save(fig, paths[-1])
    return paths


def bench_arch(rows: list[dict], out: Path) -> Path:
    """Per-layer bars (log scale), one bar per backend, forward and backward."""
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    fig = _pyplot().figure(figsize=(max(8, len(layers) * 0.9), 7))
    width = 0.8 / max(1, len(backends))
    for ax, phase in zip(fig.subplots(2, 1), ("forward", "backward")):
        t = {(r["layer"], r["backend"]): r["median_s"] for r in rows if r["phase"] == phase}
        for j, be in enumerate(backends):
            xs = [i + j * width for i, name in enumerate(layers) if (name, be) in t]
            ys = [t[(name, be)] for name in layers if (name, be) in t]
            ax.bar(xs, ys, width=width, label=be)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(layers))], layers)
        ax.set(yscale="log", title=phase, ylabel="median time (s)")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = out / "arch_layers.png"
    _save(fig, path)
    return path


def bench_transfers(rows: list[dict], out: Path) -> Path:
    fig = _pyplot().figure(figsize=(6, 4))
    ax = fig.subplots()
    lines = defaultdict(list)
    for r in rows:
        lines[r["pair"]].append((r["elements"], r["median_s"]))
    for pair, pts in lines.items():
        xs, ys = zip(*sorted(pts))
        ax.loglog(xs, ys, marker="o", label=pair.replace(">", " -> "))
    ax.set(title="transfer cost", xlabel="array elements", ylabel="median time (s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = out / "transfers.png"
    _save(fig, path)
    return path
