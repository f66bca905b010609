"""The one place that decides whether a backend can run a layer.

A backend can run a layer when it declares the network's dtype, the op group
the layer calls (``Layer.op``), the transfers, for a layer with parameters in
training the optimiser's update op, and for a layer of products (conv, dense)
the network's precision. Placement, the benchmark and auto placement all ask here.
"""
from __future__ import annotations

from genrecnn.engine.layers import LAYER_TYPES
from genrecnn.engine.ops import DEFAULT_PRECISION, PRECISION_GROUPS

# The op group each optimiser's step calls on a parameter's backend.
UPDATE_OPS = {"sgd": "sgd_update", "adam": "adam_update"}


def required_ops(layer, optimizer: str | None = None) -> set[str]:
    """Op groups a backend needs to run ``layer`` (an instance, or a config type such
    as ``"conv2d"``), with the ``optimizer``'s update where the layer has parameters."""
    cls = LAYER_TYPES[layer] if isinstance(layer, str) else type(layer)
    ops = {"transfer", cls.op}
    if cls.has_params and optimizer:
        ops.add(UPDATE_OPS[optimizer])
    return ops


def lacks_precision(backend, layer, precision: str) -> bool:
    """Whether ``layer`` (an instance or a config type) does products that ``backend``
    does not offer at ``precision``."""
    cls = LAYER_TYPES[layer] if isinstance(layer, str) else type(layer)
    return (precision != DEFAULT_PRECISION and cls.op in PRECISION_GROUPS
            and precision not in backend.precisions)


def missing(backend, layer, dtype: str, optimizer: str | None = None,
            precision: str = DEFAULT_PRECISION) -> str:
    """Why ``backend`` cannot run ``layer`` in ``dtype`` at ``precision`` ("" when it can)."""
    if dtype not in backend.dtypes:
        return f"backend {backend.name!r} does not support {dtype} (only {', '.join(backend.dtypes)})"
    lacking = sorted(required_ops(layer, optimizer) - set(backend.declared_ops()))
    if lacking:
        return f"backend {backend.name!r} does not implement {', '.join(lacking)}"
    if lacks_precision(backend, layer, precision):
        return (f"backend {backend.name!r} does not offer precision {precision!r} (it offers "
                f"{', '.join(backend.precisions)})")
    return ""


def can_run(backend, layer, dtype: str, optimizer: str | None = None,
            precision: str = DEFAULT_PRECISION) -> bool:
    """Whether ``backend`` declares everything ``layer`` needs in ``dtype`` at ``precision``."""
    return not missing(backend, layer, dtype, optimizer, precision)
