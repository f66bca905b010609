"""Ensembles (`--ensemble K`): K networks of one architecture trained one after another
on the same data and settings, from the run's seed and K-1 seeds derived from it,
answering as one with the mean of their class probabilities.

Members differ only in their seed (initial weights, and each epoch's order of
examples, crops and masks), so K networks average away part of the variance one
network has. They share the data, its split and band normalisation, and the
placement (resolved once, on the first).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from genrecnn.engine.architectures import build_network
from genrecnn.run.checkpoint import Checkpoint
from genrecnn.run.ensemble_file import EnsembleCheckpoint, SavedMember
from genrecnn.run.fit import scores
from genrecnn.run.options import RunOptions
from genrecnn.run.parts import Parts
from genrecnn.run.scoring import clip_decisions
from genrecnn.run.session import Trained, train_once
from genrecnn.run.settings import TrainSettings


def member_seed(seed: int, index: int) -> int:
    """Member ``index``'s seed: the run's own for the first (so member 1 is the network
    `--ensemble 1` trains), then one drawn from ``SeedSequence([seed, index])``, the same
    for any ensemble size."""
    if index == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0])


def member_settings(settings: TrainSettings, index: int) -> TrainSettings:
    """The settings member ``index`` trains with: the ensemble's, with its own seed."""
    return replace(settings, seed=member_seed(settings.seed, index))


class Ensemble:
    """An ensemble's networks answering as one. It has what prediction reads of a
    Network (shapes, dtype, placement, ``predict_proba``);
    :func:`genrecnn.run.fit.predict_proba` averages each member over crops first."""

    def __init__(self, members):
        self.members = list(members)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def first(self):
        return self.members[0]

    @property
    def input_shape(self):
        return self.first.input_shape

    @property
    def n_classes(self) -> int:
        return self.first.n_classes

    @property
    def dtype(self):
        return self.first.dtype

    @property
    def backend_names(self) -> list[str]:
        return self.first.backend_names

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The mean of the members' class probabilities for the batch ``x``."""
        return np.mean([m.predict_proba(x) for m in self.members], axis=0)


def members_of(network) -> list:
    """The networks of an :class:`Ensemble`, or ``[network]``."""
    return network.members if isinstance(network, Ensemble) else [network]


def as_predictor(networks: list):
    """One network as itself, several as their :class:`Ensemble`."""
    return networks[0] if len(networks) == 1 else Ensemble(networks)


def sibling(network, seed: int):
    """A fresh network of ``network``'s architecture and input, initialised from ``seed``,
    placed as ``network`` is."""
    net = build_network(network.config(), network.input_shape, network.n_classes,
                        dtype=network.dtype, seed=seed, precision=network.precision)
    net.place(network.backend_names)
    return net


def train_members(network, parts: Parts, settings: TrainSettings, options: RunOptions, *,
                  saved: list[SavedMember] = (), checkpoint: Checkpoint | None = None,
                  echo=None, say=None, progress: bool | None = False, score_test: bool = True,
                  world=None) -> Trained:
    """Train ``settings.ensemble`` networks on ``parts`` one after another, the first
    being the placed ``network``; the others are placed as it is. ``saved``: the networks
    a resumed run goes on from (the first is ``network``), a finished one kept as it is.

    ``echo`` hears each member's training as :func:`train_once` tells it; ``say`` (or
    ``echo``) a line as each member begins. ``checkpoint`` writes the whole ensemble
    after every epoch. One network (``ensemble`` 1) trains exactly as
    :func:`train_once` trains it.
    """
    if settings.ensemble == 1:
        return train_once(network, parts, settings, options,
                          resumed=saved[0].resumed if saved else None, checkpoint=checkpoint,
                          echo=echo, progress=progress, score_test=score_test, world=world)
    say = say or echo or (lambda line: None)
    runs, done = [], []
    for i in range(settings.ensemble):
        member = member_settings(settings, i)
        prior = saved[i] if i < len(saved) else None
        if prior is None:
            net = network if i == 0 else sibling(network, member.seed)
        else:
            net = prior.network
            if net is not network:
                net.place(network.backend_names)
        finished = prior is not None and prior.resumed.epoch >= member.epochs
        say(f"member {i + 1} of {settings.ensemble} (seed {member.seed})"
            + (f": trained {prior.resumed.epoch} epoch(s) before, kept" if finished else ""))
        ck = None if checkpoint is None else EnsembleCheckpoint(
            checkpoint.path, checkpoint.meta, checkpoint.extra_arrays, settings=settings,
            done=list(done))
        runs.append(train_once(net, parts, member, options, resumed=prior and prior.resumed,
                               checkpoint=ck, echo=None if finished else echo,
                               progress=progress, score_test=score_test, world=world))
        done.append(prior.state if finished else ck and ck.current)
    return Trained(Ensemble([r.network for r in runs]), runs[0].history,
                   np.mean([r.test_probs for r in runs], axis=0), members=runs)


def _mean_of(values) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def ensemble_metrics(trained: Trained, parts: Parts, clip_labels, vote: str) -> dict:
    """What metrics.json says of an ensemble over a single network's fields (nothing for
    one network): the ensemble's test scores, the members' mean train and valid
    accuracy, and each member's seed, scores and history."""
    if not trained.members:
        return {}
    rows = []
    for run in trained.members:
        clips, pred = clip_decisions(run.test_probs, parts.clip_test, vote)
        last = run.history[-1] if run.history else {}
        rows.append({"seed": run.network.seed, "epochs_done": len(run.history),
                     "train_acc": last.get("train_acc"), "valid_acc": last.get("valid_acc"),
                     "test_acc": scores(run.test_probs, parts.y_test).accuracy,
                     "test_clip_acc": float((pred == clip_labels[clips]).mean()),
                     "history": run.history})
    ensemble = scores(trained.test_probs, parts.y_test)
    return {"test_acc": ensemble.accuracy, "test_loss": ensemble.loss,
            "train_acc": _mean_of(r["train_acc"] for r in rows),
            "valid_acc": _mean_of(r["valid_acc"] for r in rows), "members": rows}


def ensemble_summary(metrics: dict) -> str:
    """What the summary line adds for an ensemble: its size and its members' accuracies."""
    if metrics.get("ensemble", 1) == 1:
        return ""
    alone = ", ".join(f"{m['test_clip_acc']:.1%}" for m in metrics["members"])
    return f" (an ensemble of {metrics['ensemble']}; its members alone: {alone})"
