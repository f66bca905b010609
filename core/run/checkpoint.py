"""Checkpoints: the model file a run writes after every epoch, holding what an exact
resume needs (weights, optimiser scalars and state arrays, epoch, history)."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from genrecnn.errors import GenrecnnError, ModelFileError
from genrecnn.run.model_io import load_model, save_model
from genrecnn.run.selection import Selection
from genrecnn.run.settings import TrainSettings

@dataclass
class Checkpoint:
    """What :func:`fit` needs to save a model file each epoch (None: no file)."""

    path: Path | None
    meta: dict = field(default_factory=dict)           # class names, feature params, ...
    extra_arrays: dict = field(default_factory=dict)   # normaliser arrays, ...

    def save(self, network, optimizer, settings, epoch, history,
             selection: Selection | None = None) -> None:
        """The model as of ``epoch``. With a ``selection``, the file's weights are the
        selected epoch's (what predict and evaluate use) and the current ones ride
        along as ``resume/`` arrays, so a resumed run goes on exactly."""
        if self.path is None:
            return
        meta = dict(self.meta, epoch=epoch, history=history, settings=settings.as_dict(),
                    steps=network.steps,
                    optimizer={"name": settings.optimizer, "state": optimizer.state_dict()})
        extra = dict(self.extra_arrays)
        extra.update({f"optim/{k}": v for k, v in optimizer.state_arrays().items()})
        params = None
        if selection is not None and selection.params is not None:
            meta["selected"] = selection.as_meta()
            if selection.epoch != epoch:
                params = selection.params
                extra.update({f"resume/{k}": v for k, v in network.host_params().items()})
        save_model(self.path, network, meta=meta, extra_arrays=extra, params=params)


def load_checkpoint(path, placement=None, epochs: int | None = None):
    """(network, meta, extra, optimizer with its state restored, selection) from a model
    file, the network holding the weights training goes on from.

    ``epochs`` replaces the saved run length (resume to a new total); the
    learning-rate schedule then runs over the new total.
    """
    net, meta, extra = load_model(path, placement=placement)
    selection = None
    if isinstance(meta.get("selected"), dict):
        chosen = meta["selected"]
        selection = Selection(int(chosen.get("epoch", 0)), float(chosen.get("valid_acc", -1)),
                              float(chosen.get("valid_loss", float("inf"))), net.host_params())
        current = {k[len("resume/"):]: v for k, v in extra.items() if k.startswith("resume/")}
        if current:
            net.load_host_params(current)
    net.steps = int(meta.get("steps", 0))
    if "settings" not in meta or "epoch" not in meta:
        raise ModelFileError(f"{path} holds no training state (settings, epoch); "
                             f"train afresh without --resume")
    saved = dict(meta["settings"], **({"epochs": epochs} if epochs else {}))
    settings = TrainSettings.from_dict(saved)
    opt = settings.make_optimizer()
    opt.load_state_dict(meta.get("optimizer", {}).get("state", {}))
    opt.load_state_arrays(net, {k[len("optim/"):]: v for k, v in extra.items()
                                if k.startswith("optim/")})
    return net, meta, extra, opt, selection


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
