"""Options shared by several commands (one definition each)."""
from __future__ import annotations

import math

import click

from genrecnn.run.scoring import VOTES
from genrecnn.run.settings import NORMS, OPTIMIZERS, TrainSettings

DEFAULTS = TrainSettings()
FRACTION = click.FloatRange(0, 1, min_open=True, max_open=True)
FRACTION0 = click.FloatRange(0, 1, max_open=True)


def _finite(ctx, param, value):
    """FloatRange lets inf (and NaN) through; a rate of inf trains a NaN model."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number; try 1e-3")
    return value


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
    click.option("--arch", default=DEFAULTS.arch, show_default=True,
                 help="Architecture name (see genrecnn.engine.architectures: small, cangea2016, wide) or a .toml/.json file."),
    click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS.epochs,
                 show_default=True),
    click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size,
                 show_default=True),
    click.option("--lr", type=click.FloatRange(0, min_open=True), callback=_finite,
                 help="Learning rate (default: 1e-3 for adam, 0.01 for sgd)."),
    click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=DEFAULTS.optimizer,
                 show_default=True, help="adam, or sgd with momentum 0.9 and linear decay to 0."),
    click.option("--norm", type=click.Choice(NORMS), default=DEFAULTS.norm, show_default=True,
                 help="band: standardise each mel band (fitted on the training part); "
                      "none: raw [0, 1] log-mel."),
    click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True),
    click.option("--vote", type=click.Choice(VOTES), default="mean", show_default=True,
                 help="How windows decide their clip."),
])


def explicit_options(ctx: click.Context) -> set[str]:
    """Names of the options the user gave on the command line (not defaults)."""
    return {name for name in ctx.params
            if (src := ctx.get_parameter_source(name)) is not None
            and src.name not in ("DEFAULT", "DEFAULT_MAP")}


def report_skipped(skipped, echo) -> None:
    """List the (path, reason) pairs of files a command left out."""
    if skipped:
        echo(f"skipped {len(skipped)} unreadable file(s):")
        for path, reason in skipped:
            echo(f"  {path}: {reason}")
