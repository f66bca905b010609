"""The hyper-parameters of one training run, and named recipes of them.

A recipe is a complete set of settings chosen together (architecture and
training); options given explicitly override it. The settings are saved in the
model and checked on resume.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.ops import DEFAULT_PRECISION, PRECISIONS
from genrecnn.engine.optim import OPTIMIZERS, make_optimizer
from genrecnn.engine.schedules import SCHEDULES
from genrecnn.errors import GenrecnnError

NORMS = ("band", "none")
SELECTIONS = ("last", "valid")
MAX_ENSEMBLE = 64               # networks one model file may hold


# settings a model file leaves out where they are off (a file that lacks one was trained
# with it off: a resume reads it so)
UNSAID_WHEN_OFF = {"label_smoothing": 0.0, "swa": 0, "precise_bn": False,
                   "precision": DEFAULT_PRECISION}


class TrainingError(GenrecnnError):
    """A run that cannot go on (diverged, nothing to train on, bad resume)."""


@dataclass
class TrainSettings:
    """The hyper-parameters of one run (saved in the model, checked on resume)."""

    arch: str = "small"
    epochs: int = 12
    batch_size: int = 16
    optimizer: str = "adam"          # adam, adamw (decoupled weight decay) or sgd
    lr: float = 1e-3                 # the peak rate of the schedule
    momentum: float = 0.9            # sgd only
    weight_decay: float = 0.0
    schedule: str = "constant"       # constant, linear (per epoch), cosine, onecycle
    norm: str = "band"               # per-band standardisation, or raw [0, 1] input
    crop: int | None = None          # train on random crops of this many frames
    mixup: float = 0.0               # Beta(a, a) mixing of example pairs; 0: off
    freq_mask: int = 0               # widest masked band span per example; 0: off
    time_mask: int = 0               # widest masked frame span per example; 0: off
    select: str = "last"             # valid: keep the epoch with the best validation score
    label_smoothing: float = 0.0     # targets (1 - eps) onehot + eps / K; 0: off
    swa: int = 0                     # the model is the mean of the last N epochs' weights
    precise_bn: bool = False         # batch-norm statistics recomputed for the final weights
    seed: int = 0
    ensemble: int = 1                # networks trained from seeds derived from ``seed``
    with_baseline: bool = False      # the baseline fitted too, the answer the two models' mean
    precision: str = DEFAULT_PRECISION   # of the conv and dense products (weights stay float32)
    recipe: str = ""                 # the recipe these settings came from, if any

    def __post_init__(self):
        for name, value, allowed in (("optimiser", self.optimizer, OPTIMIZERS),
                                     ("input normalisation", self.norm, NORMS),
                                     ("learning-rate schedule", self.schedule, SCHEDULES),
                                     ("epoch selection", self.select, SELECTIONS),
                                     ("precision", self.precision, PRECISIONS)):
            if value not in allowed:
                raise TrainingError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainingError("epochs and batch size must be at least 1")
        if not 0 < self.lr < float("inf"):
            raise TrainingError(f"learning rate must be a positive finite number, got {self.lr}")
        if self.crop is not None and self.crop < 1:
            raise TrainingError(f"crop must be at least 1 frame, got {self.crop}")
        if self.mixup < 0 or self.freq_mask < 0 or self.time_mask < 0 or self.weight_decay < 0:
            raise TrainingError("mixup, masks and weight decay cannot be negative")
        if not 0 <= self.label_smoothing < 1:        # NaN fails too
            raise TrainingError(f"label smoothing must be at least 0 and below 1, got "
                                f"{self.label_smoothing}; try --label-smoothing 0.1")
        if not 0 <= self.swa <= self.epochs:
            raise TrainingError(f"--swa N averages the weights of the last N epochs: N must be "
                                f"0 (off) to the run's {self.epochs} epochs, got {self.swa}")
        if not 1 <= self.ensemble <= MAX_ENSEMBLE:
            raise TrainingError(f"an ensemble has 1 to {MAX_ENSEMBLE} networks, got "
                                f"{self.ensemble}")

    def as_dict(self) -> dict:
        """The settings by name; ``ensemble`` only where it is over 1, ``with_baseline``
        only where it is on, and those of :data:`UNSAID_WHEN_OFF` only where they are not
        off, so that a single network's settings (and its model file) read as they did
        before ensembles, baselines, label smoothing, weight averaging and precisions."""
        values = asdict(self)
        if self.ensemble == 1:
            del values["ensemble"]
        if not self.with_baseline:
            del values["with_baseline"]
        for key, off in UNSAID_WHEN_OFF.items():
            if values[key] == off:
                del values[key]
        return values

    @classmethod
    def from_dict(cls, d: dict) -> "TrainSettings":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_recipe(cls, recipe: str | None = None, **overrides) -> "TrainSettings":
        """The settings of ``recipe`` (default: DEFAULT_RECIPE) with the ``overrides``
        that are not None."""
        name = recipe or DEFAULT_RECIPE
        if name not in RECIPES:
            raise TrainingError(f"unknown recipe {name!r}; use one of {', '.join(RECIPES)}")
        values = dict(RECIPES[name], recipe=name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values)

    def make_optimizer(self):
        kwargs = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.optimizer == "sgd":
            kwargs["momentum"] = self.momentum
        return make_optimizer(self.optimizer, **kwargs)

    def input_frames(self, frames: int) -> int:
        """The network's input width for items of ``frames`` frames (the crop, if smaller)."""
        return min(self.crop, frames) if self.crop else frames


# Named recipes. ``cangea2016`` is the dissertation's training as far as it is
# known here: its network (Listing 3.1) on raw [0, 1] log-mel input, mini-batch
# SGD with momentum and its linear learning-rate decay; the epoch count, batch
# size and peak rate are this project's choice where the text gives none.
RECIPES: dict[str, dict] = {
    "cangea2016": dict(arch="cangea2016", norm="none", optimizer="sgd", lr=0.01, momentum=0.9,
                       schedule="linear", epochs=100, batch_size=32),
    "small": dict(arch="small", norm="band", optimizer="adam", lr=1e-3, schedule="constant",
                  epochs=12, batch_size=16),
    "cnn2d": dict(arch="cnn2d", norm="band", optimizer="adamw", lr=3e-3, weight_decay=1e-2,
                  schedule="onecycle", epochs=80, batch_size=32, crop=256, select="valid"),
}
# The default: cnn2d's training with 32-64-128-256 channels pooled over all positions.
# On whole 30-s clips by artists not seen in training (the dev split of
# gtzan-mel30-dev, 3 seeds) it reached 62.6% against cnn2d's 56.8%, level with it on
# random partitions (18.8% against 19.1% error at 10 genres); README, Accuracy.
RECIPES["cnn2d-global"] = dict(RECIPES["cnn2d"], arch="cnn2d-global")
DEFAULT_RECIPE = "cnn2d-global"
# The built-in synthetic dataset is a quick demonstration: it trains with this recipe
# unless one is named.
SYNTHETIC_RECIPE = "small"


# options that override a recipe's settings (None: the recipe's value)
SETTING_KEYS = tuple(f.name for f in fields(TrainSettings) if f.name != "recipe")


def settings_from(opts: dict) -> TrainSettings:
    """A run's settings from command options: the named recipe (the default one for a
    DATA folder, the quick one for the synthetic default) with every option given
    overriding it."""
    recipe = opts.get("recipe") or (SYNTHETIC_RECIPE if opts.get("data") is None
                                    else DEFAULT_RECIPE)
    return TrainSettings.from_recipe(recipe, **{k: opts.get(k) for k in SETTING_KEYS})


def describe_settings(s: TrainSettings) -> str:
    """One line naming what a run does, for people."""
    parts = [s.arch, f"{s.epochs} epochs", f"batch {s.batch_size}",
             f"{s.optimizer} lr {s.lr:g} {s.schedule}"]
    if s.weight_decay:
        parts.append(f"weight decay {s.weight_decay:g}")
    parts.append("band-normalised" if s.norm == "band" else "raw input")
    if s.crop:
        parts.append(f"random {s.crop}-frame crops")
    if s.freq_mask or s.time_mask:
        parts.append(f"masks {s.freq_mask} bands / {s.time_mask} frames")
    if s.mixup:
        parts.append(f"mixup {s.mixup:g}")
    if s.label_smoothing:
        parts.append(f"label smoothing {s.label_smoothing:g}")
    if s.swa:
        parts.append(f"weights averaged over the last {s.swa} epochs")
    elif s.select == "valid":
        parts.append("best validation epoch")
    if s.swa or s.precise_bn:
        parts.append("batch-norm statistics recomputed")
    if s.ensemble > 1:
        parts.append(f"an ensemble of {s.ensemble} networks")
    if s.precision != DEFAULT_PRECISION:
        parts.append(f"{s.precision} products")
    return ", ".join(parts)


def new_network(settings: TrainSettings, n_mels: int, frames: int, n_classes: int):
    """A fresh network of the settings' architecture for items of ``frames`` frames."""
    return build_network(load_architecture(settings.arch),
                         (n_mels, settings.input_frames(frames)), n_classes, seed=settings.seed,
                         precision=settings.precision)
