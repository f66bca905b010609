"""What one `genrecnn train` or `genrecnn evaluate` run is asked for, typed: the data,
how it is split, where the layers run, and the settings that override the recipe.
The CLI builds it; a resumed run takes the checkpoint's values into it."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from genrecnn.engine.steps import RESIDENT_BUDGET
from genrecnn.run.settings import SETTING_KEYS, TrainSettings, settings_from


@dataclass
class RunOptions:
    """One run's options (None for a setting: the recipe's value)."""

    data: Path | None = None           # a folder of genre folders; None: synthetic genres
    genres: str | None = None          # "a,b": a subset of the genre folders
    frames: int | None = None          # crop/pad every clip to this many frames
    windows: int | None = None         # cut clips into windows of this many frames
    strict: bool = False               # stop at the first unreadable file
    test_fraction: float = 0.2
    valid_fraction: float = 0.0
    split_dir: Path | None = None      # train.txt/valid.txt/test.txt clip ids
    backend_spec: str = "numpy"        # placement: a backend, kind=backend,... or auto
    precision: str | None = None       # of the products: fp32, tf32, bf16 (None: fp32)
    graphs: bool = True                # CUDA graphs where the placement can
    resident_mb: int = RESIDENT_BUDGET >> 20   # training sets up to this are uploaded once
    vote: str = "mean"                 # how windows decide their clip
    recipe: str | None = None
    arch: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    momentum: float | None = None      # sgd only (no option: a recipe's or a checkpoint's)
    weight_decay: float | None = None
    schedule: str | None = None
    norm: str | None = None
    crop: int | None = None
    mixup: float | None = None
    freq_mask: int | None = None
    time_mask: int | None = None
    select: str | None = None
    label_smoothing: float | None = None
    swa: int | None = None             # average the weights of the last N epochs (None: 0)
    precise_bn: bool | None = None     # recompute batch-norm statistics at the end (None: no)
    seed: int | None = None
    ensemble: int | None = None        # networks trained and averaged (None: 1)
    with_baseline: bool | None = None  # fit the baseline too and answer with both (None: no)

    def __post_init__(self):
        for name in ("data", "split_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value))

    @property
    def resident_budget(self) -> int:
        """Bytes of training set uploaded once (``resident_mb`` MiB)."""
        return int(self.resident_mb) << 20

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def settings(self) -> TrainSettings:
        """The run's settings: the recipe with every setting given here overriding it."""
        return settings_from(self.as_dict())


# the options a resumed run takes from its checkpoint (and saves as its run settings);
# the ensemble's size and the baseline are in the saved settings, and a resume may raise
# the one and add the other
RUN_KEYS = ("recipe", *(k for k in SETTING_KEYS if k not in ("ensemble", "with_baseline")),
            "genres", "frames", "windows", "test_fraction", "valid_fraction", "split_dir",
            "data", "vote")
