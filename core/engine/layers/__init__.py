"""The layers, written once against the op contract, and building them from configs.

Every layer has a placement kind (``KINDS``: what ``--backend conv=cupy`` names)
and a config type (``LAYER_TYPES``: what architecture files write); the two
differ only where one kind has several layers (``conv`` and ``conv2d`` are
both of kind ``conv``).
"""
from __future__ import annotations

from genrecnn.errors import ShapeError
from genrecnn.engine.layers.base import INITS, Layer, init_weights, layer_seed
from genrecnn.engine.layers.maps import Conv2D, MaxPool2D
from genrecnn.engine.layers.norm import BatchNorm, Dropout
from genrecnn.engine.layers.sequence import (Activation, Conv1D, Dense, GlobalPool, MaxPool1D,
                                             Softmax)

KINDS = ("conv", "pool", "gpool", "fc", "act", "softmax", "norm", "drop")

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type: cls for cls in (Conv1D, Conv2D, MaxPool1D, MaxPool2D, GlobalPool, Dense,
                              Activation, Softmax, BatchNorm, Dropout)}
assert {cls.kind for cls in LAYER_TYPES.values()} == set(KINDS), "every layer has a known kind"

__all__ = ["INITS", "KINDS", "LAYER_TYPES", "Activation", "BatchNorm", "Conv1D", "Conv2D", "Dense",
           "Dropout", "GlobalPool", "Layer", "MaxPool1D", "MaxPool2D", "Softmax", "init_weights",
           "layer_from_config", "layer_seed"]


def layer_from_config(cfg: dict) -> Layer:
    """Build a layer from ``{"type": type, ...arguments}`` (as in architecture files)."""
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    if kind not in LAYER_TYPES:
        raise ShapeError(f"unknown layer type {kind!r}; use one of {', '.join(LAYER_TYPES)}")
    try:
        return LAYER_TYPES[kind](**cfg)
    except TypeError as exc:
        raise ShapeError(f"bad arguments for a {kind!r} layer {cfg}: {exc}") from None
