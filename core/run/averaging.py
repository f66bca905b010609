"""The weights a run ends with: stochastic weight averaging (``--swa N``) and batch-norm
statistics recomputed for the final weights (``--precise-bn``).

SWA keeps, on the host and in float64, the running mean of the network's parameters at
the end of each of the last N epochs (equal weights); the run ends with that mean. It is
kept between epochs, outside any step, so a captured CUDA graph never sees it. Batch-norm
running statistics belong to the weights they were gathered with, and those of the last
steps of a short run on a small set are poor anyway, so both options end by recomputing
them ("precise BN"): one pass over the training set in training mode, the k-th batch's
statistics folded in with momentum 1/k by the contract's ``batchnorm_running_update``,
which makes the running statistics the plain mean over the pass's batches (the first
batch, momentum 1, replaces whatever they held). The pass draws one random crop per
training item from its own seeded plan (no masks, no mixup) in batches of the run's
batch size; a short last batch is left out unless it is the only one. Under MPI every
rank makes the same pass and the statistics are then averaged over the ranks, as after
every epoch.

The average is saved with each checkpoint (``swa/`` arrays, ``averaged`` in the meta), so
a resumed run goes on with it; a resume whose ``--epochs`` moves the window over epochs
already averaged is refused (:func:`continue_average`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrecnn.engine.batches import StepOptions, assemble_on_host, epoch_rng, plan_epoch
from genrecnn.engine.layers import BatchNorm
from genrecnn.engine.steps import average_state
from genrecnn.errors import ModelFileError
from genrecnn.run.settings import TrainingError

PREFIX = "swa/"               # the average's arrays in a model file
META = "averaged"             # its epochs in the model file's meta
PASS_EPOCH = 0                # the precise-BN pass's draws: epoch_rng(seed, 0), no epoch's


def parameter_keys(network) -> list[str]:
    """The file keys of the network's parameters (not its batch-norm state)."""
    return [f"{layer.name}/{key}" for layer, key, _ in network.parameters()]


@dataclass
class WeightAverage:
    """The mean of a network's parameters over epochs ``first`` .. ``first + count - 1``."""

    first: int
    count: int = 0
    mean: dict | None = None          # parameter key -> float64 host array

    @classmethod
    def for_run(cls, settings) -> "WeightAverage":
        """An empty average over the last ``settings.swa`` epochs."""
        return cls(settings.epochs - settings.swa + 1)

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def add(self, network) -> None:
        """Fold the network's parameters as they stand into the mean."""
        params = network.host_params()
        self.count += 1
        if self.mean is None:
            self.mean = {k: params[k].astype(np.float64) for k in parameter_keys(network)}
            return
        for k, m in self.mean.items():
            m += (params[k] - m) / self.count

    def apply(self, network) -> None:
        """Give the network the mean as its parameters (its other state stays)."""
        network.load_host_params(dict(network.host_params(), **self.mean))

    def as_meta(self) -> dict:
        return {"first": self.first, "count": self.count}

    def arrays(self) -> dict:
        return {PREFIX + k: v for k, v in (self.mean or {}).items()}

    @classmethod
    def from_saved(cls, path, meta: dict, extra: dict) -> "WeightAverage | None":
        """The average a model file keeps (None: none), or ModelFileError."""
        saved = meta.get(META)
        if saved is None:
            return None
        mean = {k[len(PREFIX):]: np.asarray(v, dtype=np.float64)
                for k, v in extra.items() if k.startswith(PREFIX)}
        try:
            first, count = int(saved["first"]), int(saved["count"])
        except (KeyError, TypeError, ValueError):
            first = count = 0
        if first < 1 or count < 1 or not mean:
            raise ModelFileError(f"{path} has a damaged weight average ({META}); train afresh "
                                 f"without --resume")
        return cls(first, count, mean)


def continue_average(saved: WeightAverage | None, settings, start_epoch: int
                     ) -> WeightAverage | None:
    """The average a run going on after ``start_epoch`` adds to (None with ``swa`` 0):
    ``saved`` when it holds exactly the epochs of the window done so far, a fresh one when
    none of them is done yet; anything else (``--epochs`` changed on resume so that the
    window moved over epochs already averaged, or a checkpoint without its average) is a
    TrainingError."""
    if not settings.swa:
        return None
    fresh = WeightAverage.for_run(settings)
    done = max(0, start_epoch - fresh.first + 1)
    if done == 0:
        return fresh
    held = "none" if saved is None else f"epochs {saved.first}-{saved.last}"
    if saved is None or (saved.first, saved.count) != (fresh.first, done):
        raise TrainingError(f"--swa {settings.swa} over {settings.epochs} epochs averages "
                            f"epochs {fresh.first}-{settings.epochs}, and the checkpoint has "
                            f"trained {start_epoch} but its average holds {held}; resume "
                            f"with the --epochs it was trained for, or train afresh without "
                            f"--resume")
    return saved


def precise_batchnorm(network, items, batch_size: int, seed: int, world=None) -> int:
    """Recompute every batch-norm layer's running statistics as the mean over one pass of
    ``items`` in training mode (see the module notes); the number of batches (0: the
    network has no batch norm, and nothing ran)."""
    norms = [layer for layer in network.layers if isinstance(layer, BatchNorm)]
    if not norms or len(items) == 0:
        return 0
    width = network.input_shape[1]
    plans = plan_epoch(len(items), items.n_mels, items.frames, width, StepOptions(batch_size),
                       epoch_rng(seed, PASS_EPOCH))
    if len(plans) > 1 and len(plans[-1].index) < batch_size:
        plans = plans[:-1]
    momenta, steps = [layer.momentum for layer in norms], network.steps
    try:
        for k, plan in enumerate(plans, 1):
            for layer in norms:
                layer.momentum = 1.0 / k
            network.begin_step()
            network.forward_train(assemble_on_host(items, plan, width)[0])
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
        network.steps = steps              # the pass is no training step
    if world is not None and world.comm is not None and world.size > 1:
        average_state(network, world)
    return len(plans)


def finish(network, settings, items, average: WeightAverage | None, world=None) -> dict:
    """Turn the trained ``network`` into the model the run ends with: the SWA mean (with
    ``average``), then batch-norm statistics recomputed. Returns what the history's last
    row records of it."""
    done = {}
    if average is not None and average.count:
        average.apply(network)
        done["swa_epochs"] = [average.first, average.last]
    done["bn_batches"] = precise_batchnorm(network, items, settings.batch_size, settings.seed,
                                           world)
    return done


def describe_finish(row: dict) -> str | None:
    """One line on how the model was finished (None: it was not)."""
    if "bn_batches" not in row:
        return None
    first, last = row.get("swa_epochs", (None, None))
    what = (f"the mean of the weights of epochs {first}-{last}" if first is not None
            else "the trained weights")
    stats = (f"batch-norm statistics recomputed over {row['bn_batches']} training batch(es)"
             if row["bn_batches"] else "no batch norm to recompute")
    scores = "".join(f"; {part} accuracy {row[f'final_{part}_acc']:.1%}"
                     for part in ("valid", "test") if row.get(f"final_{part}_acc") is not None)
    return f"final model: {what}, {stats}{scores}"
