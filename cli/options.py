"""Options shared by several commands (one definition each)."""
from __future__ import annotations

import math

import click

from genrecnn.engine.ops import DEFAULT_PRECISION, PRECISIONS
from genrecnn.engine.optim import OPTIMIZERS
from genrecnn.engine.schedules import SCHEDULES
from genrecnn.engine.steps import RESIDENT_BUDGET
from genrecnn.run.scoring import VOTES
from genrecnn.run.settings import (DEFAULT_RECIPE, MAX_ENSEMBLE, NORMS, RECIPES, SELECTIONS,
                                   SYNTHETIC_RECIPE)

FRACTION = click.FloatRange(0, 1, min_open=True, max_open=True)
FRACTION0 = click.FloatRange(0, 1, max_open=True)


def _finite(ctx, param, value):
    """FloatRange lets inf (and NaN) through; a rate of inf trains a NaN model."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number; try 1e-3")
    return value


SEED_MAX = 2 ** 32 - 1


def _seed(ctx, param, value):
    """A seed NumPy's generators take (a negative one ended in a 42-line traceback)."""
    if value is not None and not 0 <= value <= SEED_MAX:
        raise click.BadParameter(f"{value} is not a seed; give a whole number from 0 to "
                                 f"{SEED_MAX} (the same seed repeats a run)")
    return value


def _architectures() -> str:
    from genrecnn.engine.architectures import named_architectures
    return ", ".join(named_architectures())


def _stack(options):
    def deco(f):
        for option in reversed(options):
            f = option(f)
        return f
    return deco


def _check_placement(ctx, param, value: str) -> str:
    """A placement's syntax and backends are checked while parsing, so a typo fails at
    once instead of after the data is loaded (layer names are checked later)."""
    from genrecnn.engine.placement import AUTO, parse_placement
    from genrecnn.engine.registry import registry

    if value.strip() != AUTO:
        for backend in set(parse_placement(value).values()) - {AUTO}:
            registry().get(backend)     # unknown or unavailable: the registry's one line
    return value


def backend_option(default: str = "numpy"):
    return click.option("--backend", "backend_spec", default=default, show_default=True,
                        callback=_check_placement,
                        help="Placement: a backend name, kind=backend,... or auto.")


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")

precision_option = click.option(
    "--precision", type=click.Choice(PRECISIONS), default=DEFAULT_PRECISION, show_default=True,
    help="Operands of the conv and dense products: fp32 (exact), or rounded to tf32 or bf16 "
         "as tensor cores take them (float32 sums, float32 weights); every layer's backend "
         "must offer it (see `genrecnn backends`).")

data_options = _stack([
    click.option("--genres", help="Comma list of genre folders to use (default: all)."),
    click.option("--frames", type=click.IntRange(min=1),
                 help="Crop/pad every clip to this many frames (default: shortest clip)."),
    click.option("--windows", type=click.IntRange(min=1),
                 help="Cut clips into half-overlapping windows of this many frames; "
                      "clips are decided by the vote of their windows."),
    click.option("--strict", is_flag=True,
                 help="Stop at the first unreadable file instead of skipping it."),
])

fit_options = _stack([
    backend_option(),
    precision_option,
    click.option("--recipe", type=click.Choice(sorted(RECIPES)),
                 help=f"Settings chosen together (default: {DEFAULT_RECIPE} for a DATA folder, "
                      f"{SYNTHETIC_RECIPE} for the synthetic default); the options below "
                      f"override single settings of it."),
    click.option("--arch", help=f"Architecture name ({_architectures()}) or a .toml/.json "
                                f"file."),
    click.option("--epochs", type=click.IntRange(min=1)),
    click.option("--batch-size", type=click.IntRange(min=1)),
    click.option("--lr", type=click.FloatRange(0, min_open=True), callback=_finite,
                 help="Peak learning rate of the schedule."),
    click.option("--optimizer", type=click.Choice(sorted(OPTIMIZERS)),
                 help="adam, adamw (decoupled weight decay) or sgd with momentum 0.9."),
    click.option("--weight-decay", type=click.FloatRange(0)),
    click.option("--schedule", type=click.Choice(SCHEDULES),
                 help="Learning rate over the run: constant, linear (the dissertation's "
                      "per-epoch decay), cosine or onecycle."),
    click.option("--norm", type=click.Choice(NORMS),
                 help="band: standardise each mel band (fitted on the training part); "
                      "none: raw [0, 1] log-mel."),
    click.option("--crop", type=click.IntRange(min=1),
                 help="Train on random crops of this many frames; clips are judged by the "
                      "mean over crops covering them."),
    click.option("--mixup", type=click.FloatRange(0), help="Mixup strength (Beta(a, a)); 0: off."),
    click.option("--freq-mask", type=click.IntRange(min=0),
                 help="Widest span of mel bands masked per example; 0: off."),
    click.option("--time-mask", type=click.IntRange(min=0),
                 help="Widest span of frames masked per example; 0: off."),
    click.option("--select", type=click.Choice(SELECTIONS),
                 help="valid: keep the epoch with the best validation accuracy, where there "
                      "is a validation part; last: the last epoch."),
    click.option("--label-smoothing", type=float, metavar="EPS",
                 help="Train against the targets (1 - EPS) x one-hot + EPS / classes, "
                      "0 <= EPS < 1 (default 0: off)."),
    click.option("--swa", type=int, metavar="N",
                 help="Stochastic weight averaging: the model is the mean of the weights at "
                      "the end of each of the last N epochs, its batch-norm statistics "
                      "recomputed (as --precise-bn); replaces --select valid (default 0: off)."),
    click.option("--precise-bn/--no-precise-bn", default=None,
                 help="At the end, recompute batch-norm running statistics for the final "
                      "weights: one pass over the training set in training mode, the mean "
                      "over its batches (instead of the momentum average of the last steps)."),
    click.option("--seed", type=int, callback=_seed, help=f"0 to {SEED_MAX}."),
    click.option("--ensemble", type=click.IntRange(1, MAX_ENSEMBLE), metavar="K",
                 help="Train K networks, one after another, from the seed and K-1 seeds "
                      "derived from it, and average their class probabilities (default 1)."),
    click.option("--vote", type=click.Choice(VOTES), default="mean", show_default=True,
                 help="How windows decide their clip."),
    click.option("--graphs/--no-graphs", default=True, show_default=True,
                 help="On CUDA backends, capture each training step as one CUDA graph "
                      "(off: launch op by op, for debugging)."),
    click.option("--resident-mb", type=click.IntRange(min=0), default=RESIDENT_BUDGET >> 20,
                 show_default=True,
                 help="Upload the training set to the first layer's backend once when it "
                      "is at most this large (MiB). A larger set streams: each batch is "
                      "uploaded from pinned host memory while the previous step computes "
                      "(backends with the staging ops, e.g. cupy and pycuda; 0 forces it), "
                      "or else is sent from the host step by step."),
])


def explicit_options(ctx: click.Context) -> set[str]:
    """Names of the options the user gave on the command line (not defaults)."""
    return {name for name in ctx.params
            if (src := ctx.get_parameter_source(name)) is not None
            and src.name not in ("DEFAULT", "DEFAULT_MAP")}


def report_skipped(skipped, echo) -> None:
    """List the (path, reason) pairs of files a command left out."""
    from genrecnn.music.loading import skipped_lines
    for line in skipped_lines(skipped):
        echo(line)
