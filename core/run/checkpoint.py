"""Checkpoints: the model file a run writes after every epoch, holding what an exact
resume needs (weights, optimiser scalars and state arrays, epoch, history)."""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path


from genrecnn.errors import GenrecnnError, ModelFileError
from genrecnn.run.model_io import is_int, load_model, save_model
from genrecnn.run.selection import Selection
from genrecnn.run.settings import TrainingError, TrainSettings

# what a checkpoint adds for its network: meta fields and stored arrays (by prefix)
TRAINING_STATE = ("epoch", "history", "steps", "optimizer", "selected", "averaged")
TRAINING_ARRAYS = ("optim/", "resume/", "swa/")


@dataclass
class Checkpoint:
    """What :func:`fit` needs to save a model file each epoch (None: no file)."""

    path: Path | None
    meta: dict = field(default_factory=dict)           # class names, feature params, ...
    extra_arrays: dict = field(default_factory=dict)   # normaliser arrays, ...

    def save(self, network, optimizer, settings, epoch, history,
             selection: Selection | None = None, average=None, current: dict | None = None
             ) -> None:
        """The model as of ``epoch`` (:func:`fit` saves no diverged one). With a ``selection``, the
        file's weights are the selected epoch's (what predict and evaluate use) and the
        current ones ride along as ``resume/`` arrays, so a resumed run goes on exactly.
        ``current``: the weights training goes on from when the network holds the finished
        model instead (SWA, precise batch norm); ``average``: the weight average
        (:class:`~genrecnn.run.averaging.WeightAverage`) a resume goes on with."""
        if self.path is None:
            return
        meta, extra, params = self.state(network, optimizer, settings, epoch, history, selection,
                                         average, current)
        save_model(self.path, network, meta=meta, extra_arrays=extra, params=params)

    def state(self, network, optimizer, settings, epoch, history,
              selection: Selection | None = None, average=None, current: dict | None = None
              ) -> tuple[dict, dict, dict | None]:
        """(meta, extra arrays, params or None: the network's own) that :meth:`save` writes."""
        meta = dict(self.meta, epoch=epoch, history=history, settings=settings.as_dict(),
                    steps=network.steps,
                    optimizer={"name": settings.optimizer, "state": optimizer.state_dict()})
        extra = dict(self.extra_arrays)
        extra.update({f"optim/{k}": v for k, v in optimizer.state_arrays().items()})
        params = None
        if selection is not None and selection.params is not None:
            meta["selected"] = selection.as_meta()
            if current is None and selection.epoch != epoch:
                params, current = selection.params, network.host_params()
        if current is not None:
            extra.update({f"resume/{k}": v for k, v in current.items()})
        if average is not None and average.count:
            meta["averaged"] = average.as_meta()
            extra.update(average.arrays())
        return meta, extra, params


def refuse_diverged(network, row: dict, epoch: int, lr: float, weights: bool = True) -> None:
    """A model whose weights or scores are no longer finite is never saved: the training
    loss, computed before each update, cannot see the last update blow the weights up."""
    losses = [v for k, v in row.items() if k.endswith("_loss") and v is not None]
    if all(math.isfinite(v) for v in losses) and (not weights or network.finite()):
        return
    raise TrainingError(f"training diverged at epoch {epoch} (weights or scores no longer "
                        f"finite); lower --lr (now {lr:g}); no model of this epoch was saved")


def _settings_problems(settings: dict) -> list[str]:
    """Saved settings whose type differs from the default's (a float may be an int)."""
    bad = []
    for f in fields(TrainSettings):
        if f.name not in settings or f.default is MISSING:
            continue
        value, default = settings[f.name], f.default
        if default is None or isinstance(default, float):   # optional numbers, or floats
            ok = ((value is None and default is None)
                  or isinstance(value, float) or is_int(value))
        else:
            ok = type(value) is type(default)
        if not ok:
            bad.append(f"{f.name}={value!r:.30}")
    return bad


def check_training_state(path, meta: dict) -> None:
    """The fields a resume reads (settings, epoch, history, optimiser), or ModelFileError."""
    settings, epoch = meta.get("settings"), meta.get("epoch")
    if settings is None or epoch is None:
        raise ModelFileError(f"{path} holds no training state (settings, epoch); "
                             f"train afresh without --resume")
    optimizer = meta.get("optimizer", {})
    bad = [name for name, ok in (
        ("settings", isinstance(settings, dict)),
        ("epoch", is_int(epoch) and epoch >= 0),
        ("history", isinstance(meta.get("history", []), list)
         and all(isinstance(r, dict) for r in meta.get("history", []))),
        ("optimizer", isinstance(optimizer, dict)
         and isinstance(optimizer.get("state", {}), dict))) if not ok]
    if not bad:
        bad = _settings_problems(settings)
    if bad:
        raise ModelFileError(f"{path} has damaged training state ({', '.join(bad)}); train "
                             f"afresh without --resume")
    try:
        TrainSettings.from_dict(settings)
    except GenrecnnError as exc:
        raise ModelFileError(f"{path} holds unusable settings ({exc}); train afresh without "
                             f"--resume") from None


def load_checkpoint(path, placement=None, epochs: int | None = None):
    """(network, meta, extra, optimizer with its state restored, selection) from a model
    file, the network holding the weights training goes on from.

    ``epochs`` replaces the saved run length (resume to a new total); the
    learning-rate schedule then runs over the new total.
    """
    net, meta, extra = load_model(path, placement=placement)
    return (net, meta, extra, *restore_training(path, net, meta, extra, epochs))


def restore_training(path, net, meta: dict, extra: dict, epochs: int | None = None):
    """(optimizer with its state restored, selection) of a network read from the model file
    ``path``, which then holds the weights training goes on from (see
    :func:`load_checkpoint`)."""
    check_training_state(path, meta)
    selection, chosen = None, meta.get("selected")
    if isinstance(chosen, dict):
        try:
            selection = Selection(int(chosen["epoch"]), float(chosen["valid_acc"]),
                                  float(chosen["valid_loss"]), net.host_params())
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{path} has a damaged epoch selection; train afresh "
                                 f"without --resume") from None
    current = {k[len("resume/"):]: v for k, v in extra.items() if k.startswith("resume/")}
    if current:                 # the file's weights are a selected or finished model's
        net.load_host_params(current)
    steps = meta.get("steps", 0)
    if not is_int(steps) or steps < 0:
        raise ModelFileError(f"{path} has a damaged step count; train afresh without --resume")
    net.steps = int(steps)
    saved = dict(meta["settings"], **({"epochs": epochs} if epochs else {}))
    try:
        settings = TrainSettings.from_dict(saved)
        opt = settings.make_optimizer()
        opt.load_state_dict(meta.get("optimizer", {}).get("state", {}))
        opt.load_state_arrays(net, {k[len("optim/"):]: v for k, v in extra.items()
                                    if k.startswith("optim/")})
    except GenrecnnError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ModelFileError(f"{path} has damaged training state ({str(exc)[:80]}); train "
                             f"afresh without --resume") from None
    return opt, selection
