"""The fit loop: epochs of training with per-epoch test (and valid) scores and checkpoints.

Everything that shapes a run is in :class:`TrainSettings`, and every source of
randomness is derived from its seed (weights from ``seed``, each epoch's
shuffle from ``(seed, epoch)``), so a run is reproducible and a run resumed
from its checkpoint ends exactly where the uninterrupted one does: the
checkpoint holds the weights, the optimiser's scalars and state arrays
(velocity, or Adam's m and v), the epoch and the history.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.errors import GenrecnnError, ModelFileError
from genrecnn.run.model_io import load_model, save_model
from genrecnn.engine.optim import SGD, Adam, Optimizer
from genrecnn.run.training import evaluate, predict_proba, train_epoch

NORMS = ("band", "none")
OPTIMIZERS = ("adam", "sgd")
DEFAULT_LR = {"adam": 1e-3, "sgd": 0.01}


class TrainingError(GenrecnnError):
    """A run that cannot go on (diverged, nothing to train on, bad resume)."""


@dataclass
class TrainSettings:
    """The hyper-parameters of one run (saved in the model, checked on resume)."""

    arch: str = "small"
    epochs: int = 12
    batch_size: int = 16
    optimizer: str = "adam"
    lr: float | None = None          # None: DEFAULT_LR of the optimiser
    momentum: float = 0.9            # sgd only
    weight_decay: float = 0.0
    norm: str = "band"               # per-band standardisation, or raw [0, 1] input
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise TrainingError(f"unknown optimiser {self.optimizer!r}; use one of "
                                f"{', '.join(OPTIMIZERS)}")
        if self.norm not in NORMS:
            raise TrainingError(f"unknown input normalisation {self.norm!r}; use one of "
                                f"{', '.join(NORMS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainingError("epochs and batch size must be at least 1")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        if not self.lr > 0:
            raise TrainingError(f"learning rate must be positive, got {self.lr}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainSettings":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def make_optimizer(self) -> Optimizer:
        """Adam, or the dissertation's SGD with momentum and linear decay over ``epochs``."""
        if self.optimizer == "sgd":
            return SGD(lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                       decay_epochs=self.epochs)
        return Adam(lr=self.lr, weight_decay=self.weight_decay)


@dataclass
class Parts:
    """The arrays of one split, normalised for the network; clips kept for clip-level votes."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    clip_test: np.ndarray
    x_valid: np.ndarray | None = None
    y_valid: np.ndarray | None = None
    normalizer: object = None       # a BandNormalizer, or None for raw input


def split_digest(ds, idx_train, idx_valid, idx_test) -> str:
    """A short fingerprint of which clips are in which part (checked on resume)."""
    h = hashlib.sha256()
    for name, idx in (("train", idx_train), ("valid", idx_valid), ("test", idx_test)):
        clips = sorted({ds.clip_ids[c] for c in np.asarray(ds.clip)[np.asarray(idx, dtype=int)]})
        h.update(json.dumps([name, clips, list(ds.class_names)]).encode())
    return h.hexdigest()[:16]


def make_parts(ds, idx_train, idx_valid, idx_test, norm: str = "band") -> Parts:
    """Slice the dataset; fit the per-band normaliser on the training part only."""
    from genrecnn.music.normalize import BandNormalizer

    idx_train, idx_test = np.asarray(idx_train, dtype=int), np.asarray(idx_test, dtype=int)
    idx_valid = np.asarray(idx_valid if idx_valid is not None else [], dtype=int)
    if len(idx_train) == 0:
        raise TrainingError("the training part is empty; use a smaller --test-fraction or "
                            "more clips")
    normalizer = BandNormalizer.fit(ds.x[idx_train]) if norm == "band" else None

    def prep(idx):
        x = ds.x[idx]
        return normalizer.transform(x) if normalizer is not None else x.astype(np.float32)

    parts = Parts(prep(idx_train), ds.y[idx_train], prep(idx_test), ds.y[idx_test],
                  np.asarray(ds.clip)[idx_test], normalizer=normalizer)
    if len(idx_valid):
        parts.x_valid, parts.y_valid = prep(idx_valid), ds.y[idx_valid]
    return parts


def new_network(settings: TrainSettings, n_mels: int, frames: int, n_classes: int):
    return build_network(load_architecture(settings.arch), (n_mels, frames), n_classes,
                         seed=settings.seed)


@dataclass
class Checkpoint:
    """What :func:`fit` needs to save a model file each epoch (None: no file)."""

    path: Path | None
    meta: dict = field(default_factory=dict)           # class names, feature params, ...
    extra_arrays: dict = field(default_factory=dict)   # normaliser arrays, ...

    def save(self, network, optimizer, settings, epoch, history) -> None:
        if self.path is None:
            return
        meta = dict(self.meta, epoch=epoch, history=history, settings=settings.as_dict(),
                    optimizer={"name": settings.optimizer, "state": optimizer.state_dict()})
        extra = dict(self.extra_arrays)
        extra.update({f"optim/{k}": v for k, v in optimizer.state_arrays().items()})
        save_model(self.path, network, meta=meta, extra_arrays=extra)


def normalizer_arrays(normalizer) -> dict:
    """``norm/<key>`` extra arrays of a BandNormalizer (empty for raw input)."""
    if normalizer is None:
        return {}
    return {f"norm/{k}": v for k, v in normalizer.to_arrays().items()}


def normalizer_from_extra(extra: dict):
    """The BandNormalizer stored in a model's extra arrays, or None."""
    arrays = {k[len("norm/"):]: v for k, v in extra.items() if k.startswith("norm/")}
    if not arrays:
        return None
    from genrecnn.music.normalize import BandNormalizer
    return BandNormalizer.from_arrays(arrays)


def load_checkpoint(path, placement=None, epochs: int | None = None):
    """(network, meta, extra, optimizer with its state restored) from a model file.

    ``epochs`` replaces the saved run length (resume to a new total); SGD's
    linear decay then runs over the new total.
    """
    net, meta, extra = load_model(path, placement=placement)
    if "settings" not in meta or "epoch" not in meta:
        raise ModelFileError(f"{path} holds no training state (settings, epoch); "
                             f"train afresh without --resume")
    saved = dict(meta["settings"], **({"epochs": epochs} if epochs else {}))
    settings = TrainSettings.from_dict(saved)
    opt = settings.make_optimizer()
    opt.load_state_dict(meta.get("optimizer", {}).get("state", {}))
    opt.load_state_arrays(net, {k[len("optim/"):]: v for k, v in extra.items()
                                if k.startswith("optim/")})
    return net, meta, extra, opt


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The shuffle of epoch ``epoch``: a function of the seed alone, so resume repeats it."""
    return np.random.default_rng([int(seed), int(epoch)])


def fit(network, optimizer: Optimizer, parts: Parts, settings: TrainSettings,
        checkpoint: Checkpoint | None = None, start_epoch: int = 0,
        history: list[dict] | None = None, on_epoch=None, progress: bool | None = False
        ) -> list[dict]:
    """Train from ``start_epoch`` to ``settings.epochs``; return the per-epoch history.

    Each history row has epoch, lr, seconds, train/test (and valid) loss and
    accuracy. ``on_epoch(row)`` is called after each epoch's checkpoint is written.
    ``progress``: a tqdm bar per epoch (None: only on a terminal).
    """
    from tqdm import tqdm

    history = list(history or [])
    for epoch in range(start_epoch + 1, settings.epochs + 1):
        t0 = time.perf_counter()
        lr = optimizer.start_epoch(epoch)
        with tqdm(total=len(parts.x_train), desc=f"epoch {epoch}/{settings.epochs}",
                  unit="ex", leave=False, disable=(None if progress is None else not progress)
                  ) as bar:
            def on_batch(n, loss):
                bar.update(n)
                bar.set_postfix(loss=f"{loss:.3f}")
            tr = train_epoch(network, optimizer, parts.x_train, parts.y_train,
                             settings.batch_size, epoch_rng(settings.seed, epoch), on_batch)
        if not math.isfinite(tr.loss):
            raise TrainingError(f"training diverged at epoch {epoch} (loss {tr.loss}); "
                                f"lower --lr (now {settings.lr:g})")
        row = {"epoch": epoch, "lr": lr, "train_loss": tr.loss, "train_acc": tr.accuracy}
        if parts.x_valid is not None:
            va = evaluate(network, parts.x_valid, parts.y_valid, settings.batch_size)
            row.update(valid_loss=va.loss, valid_acc=va.accuracy)
        te = evaluate(network, parts.x_test, parts.y_test, settings.batch_size)
        row.update(test_loss=te.loss, test_acc=te.accuracy,
                   seconds=round(time.perf_counter() - t0, 3))
        history.append(row)
        if checkpoint is not None:
            checkpoint.save(network, optimizer, settings, epoch, history)
        if on_epoch:
            on_epoch(row)
    return history


def format_row(row: dict) -> str:
    """One line per epoch, as the CLI prints it."""
    def score(p):
        loss, acc = row.get(f"{p}_loss"), row.get(f"{p}_acc")
        if loss is None:
            return ""
        return f"  {p} loss {loss:.4f} acc {acc:6.1%}" if math.isfinite(loss) else f"  {p} -"
    return (f"epoch {row['epoch']:>3}  lr {row['lr']:.2e}" + score("train") + score("valid")
            + score("test") + f"  ({row['seconds']:.1f}s)")


def clip_probs(network, x: np.ndarray, clip: np.ndarray, batch_size: int = 64
               ) -> tuple[np.ndarray, np.ndarray]:
    """(clip indices, mean window probabilities per clip) for items ``x`` of clips ``clip``."""
    probs = predict_proba(network, x, batch_size)
    clips, inverse = np.unique(clip, return_inverse=True)
    sums = np.zeros((len(clips), probs.shape[1]))
    np.add.at(sums, inverse, probs)
    return clips, sums / np.bincount(inverse)[:, None]


def check_writable_dir(path) -> Path:
    """Create ``path`` if needed and prove a file can be written there (fail before training)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GenrecnnError(f"cannot write to output folder {path}: {exc.strerror or exc}; "
                            f"choose another --out") from None
    return path
