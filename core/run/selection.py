"""Choosing the epoch a run keeps: the best validation score so far (accuracy, then the
lower loss), with host copies of that epoch's weights."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Selection:
    """The best epoch so far by validation score."""

    epoch: int = 0
    accuracy: float = -1.0
    loss: float = math.inf
    params: dict | None = None        # host copies of its parameters and state

    def offer(self, epoch: int, accuracy: float, loss: float, network) -> bool:
        """Keep ``network``'s weights if this epoch scores better; whether it did."""
        if (accuracy, -loss) <= (self.accuracy, -self.loss):
            return False
        self.epoch, self.accuracy, self.loss = epoch, accuracy, loss
        self.params = network.host_params()
        return True

    def as_meta(self) -> dict:
        return {"epoch": self.epoch, "valid_acc": self.accuracy, "valid_loss": self.loss}
