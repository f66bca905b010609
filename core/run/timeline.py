"""Predictions over a whole song: each genre's probability window by window (windows
of the model's input length, half a window apart), as rows for ``--json`` and as a
figure above the song's spectrogram. The song's answer is their mean."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genrecnn.run.plots import _pyplot, _save


def window_rows(pred, model) -> list[dict]:
    """One row per window: its start and end (seconds) and each genre's probability."""
    seconds = model.params.hop_length / model.params.sr
    n_frames = pred.features.shape[1]
    return [{"start": round(s * seconds, 3),
             "end": round(min(s + model.frames, n_frames) * seconds, 3),
             "probabilities": {name: float(p) for name, p in zip(model.names, row)}}
            for s, row in zip(pred.window_starts, pred.window_probs)]


def plot_timeline(pred, model, path: Path, title: str = "") -> None:
    """Each genre's probability at the middle of every window, above the spectrogram on
    the same time axis; the legend gives each genre's mean over the song."""
    plt = _pyplot()
    seconds = model.params.hop_length / model.params.sr
    feat = pred.features
    centres = [(s + min(model.frames, feat.shape[1]) / 2) * seconds for s in pred.window_starts]
    fig, (ax_p, ax_s) = plt.subplots(2, 1, figsize=(11, 6), sharex=True,
                                     gridspec_kw={"height_ratios": [1, 1.2]})
    song = pred.probs if pred.network_probs is None else pred.network_probs   # the windows'
    order = np.argsort(-song)
    for i in order:
        ax_p.plot(centres, pred.window_probs[:, i], "-o", markersize=3,
                  label=f"{model.names[i]} ({song[i]:.2f})")
    ax_p.set_ylim(0, 1)
    ax_p.set_ylabel("probability")
    ax_p.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8,
                title="genre (song mean)")
    ax_p.set_title(title or f"genre over time: {model.names[order[0]]} overall")
    ax_s.imshow(feat, origin="lower", aspect="auto", cmap="magma",
                extent=(0, feat.shape[1] * seconds, 0, feat.shape[0]))
    ax_s.set_ylabel("mel band")
    ax_s.set_xlabel("time (s)")
    fig.tight_layout()
    _save(fig, path)
