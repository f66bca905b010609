"""The hyper-parameters of one training run: saved in the model, checked on resume."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.optim import SGD, Adam, Optimizer
from genrecnn.errors import GenrecnnError

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


def new_network(settings: TrainSettings, n_mels: int, frames: int, n_classes: int):
    return build_network(load_architecture(settings.arch), (n_mels, frames), n_classes,
                         seed=settings.seed)
