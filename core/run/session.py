"""One training run on the parts of one split: the placement, the step runner, the
epochs and the test part's probabilities. `genrecnn train` runs it once (resumed
from a checkpoint or not, saving one every epoch); `genrecnn evaluate` runs it on
each partition."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genrecnn.engine.autoplace import place_by_option
from genrecnn.engine.steps import StepRunner, fits_resident
from genrecnn.run.averaging import WeightAverage, describe_finish
from genrecnn.run.checkpoint import Checkpoint
from genrecnn.run.fit import fit, format_row, predict_proba, training_items
from genrecnn.run.options import RunOptions
from genrecnn.run.parts import Parts
from genrecnn.run.selection import Selection
from genrecnn.run.settings import TrainSettings

RUNNER_PATHS = {"graph": "training set on the device, each step one CUDA graph replay",
                "device": "training set on the device, batches cut there",
                "stream": "training set over --resident-mb: each batch uploaded from pinned "
                          "host memory while the previous step runs, then cut on the device",
                "host": "batches assembled on the host"}


@dataclass
class Resumed:
    """Where a checkpoint left a run (read from the model file once)."""

    optimizer: object
    epoch: int
    history: list[dict] = field(default_factory=list)
    selection: Selection | None = None
    average: WeightAverage | None = None   # --swa: the weight average so far
    stored: dict | None = None             # the file's weights where training goes on from
                                           # others (a selected or finished model's)


@dataclass
class Trained:
    """What one run gives: the trained network, its history, the test part's probabilities
    (an ensemble's: the first member's history, the members' mean probabilities, and each
    member's own run in ``members``)."""

    network: object
    history: list[dict]
    test_probs: np.ndarray
    members: list["Trained"] = field(default_factory=list)


def place_for_parts(network, parts: Parts, settings: TrainSettings, options: RunOptions,
                    echo):
    """Place ``network`` as ``options.backend_spec`` says (``auto`` measures, as for a
    training set of ``parts.x_train``'s size: resident or streamed); (plan, auto report
    or None)."""
    items = training_items(parts)
    streamed = not (items.uploadable
                    and fits_resident(items.values, network.dtype, options.resident_budget))
    return place_by_option(network, options.backend_spec, settings.batch_size, echo=echo,
                           streamed=streamed)


def train_once(network, parts: Parts, settings: TrainSettings, options: RunOptions, *,
               resumed: Resumed | None = None, checkpoint: Checkpoint | None = None,
               echo=None, progress: bool | None = False, score_test: bool = True,
               world=None) -> Trained:
    """Train the placed ``network`` on ``parts`` to ``settings.epochs`` (from where
    ``resumed`` left it), then predict the test part.

    ``echo`` (optional) hears the step path and one line per epoch; ``checkpoint``
    saves the model every epoch; ``score_test``: score the test part every epoch
    (the evaluation protocol scores it once, at the end). ``world``: the ranks to
    train data-parallel over (each runs this with the same arguments; see
    :mod:`genrecnn.engine.steps`), None for one process.
    """
    resumed = resumed or Resumed(settings.make_optimizer(), 0)
    history = list(resumed.history)
    if resumed.epoch >= settings.epochs:
        if echo:
            echo(f"{checkpoint.path if checkpoint else 'the model'} has already trained "
                 f"{resumed.epoch} epoch(s); nothing more to do (raise --epochs to go on)")
        if resumed.stored is not None:               # as fit ends: the chosen or finished
            network.load_host_params(resumed.stored)  # model
        elif resumed.selection is not None and resumed.selection.params is not None:
            network.load_host_params(resumed.selection.params)
    else:
        if echo and resumed.epoch:
            echo(f"resuming at epoch {resumed.epoch + 1} of {settings.epochs}")
        runner = StepRunner(network, resumed.optimizer, training_items(parts), settings,
                            graphs=options.graphs, resident_budget=options.resident_budget,
                            world=world)
        if echo:
            graphed = ("; each step one CUDA graph replay"
                       if runner.path == "stream" and runner.graphs else "")
            echo(f"steps: {runner.path} ({RUNNER_PATHS[runner.path]}{graphed})")
        history = fit(network, resumed.optimizer, parts, settings, checkpoint=checkpoint,
                      start_epoch=resumed.epoch, history=history,
                      on_epoch=(lambda row: echo(format_row(row))) if echo else None,
                      progress=progress, selection=resumed.selection, runner=runner,
                      score_test=score_test, average=resumed.average)
        finished = describe_finish(history[-1]) if history else None
        if echo and finished:
            echo(finished)
    probs = predict_proba(network, parts.x_test, settings.batch_size, world)
    return Trained(network, history, probs)
