"""What every layer shares: shape inference, parameters and state, placement, weights.

A layer knows its shapes and parameters; every computation is a call to an op
of the backend it is placed on (``be``). Shapes are per example (no batch
axis): flat vectors ``(I,)``, sequences ``(C, W)``, 2-D maps ``(C, H, W)``.
"""
from __future__ import annotations

import numpy as np

from genrecnn.engine.ops.precision import DEFAULT_PRECISION, PRECISION_GROUPS, precision_kwargs
from genrecnn.errors import ShapeError

INITS = ("variance", "he", "uniform")
# what an input of each per-example rank is, for shape errors
RANKS = {1: "a flat vector", 2: "a (channels, time) sequence", 3: "2-D maps (channels, mel, time)"}


def init_weights(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int,
                 scheme: str, dtype: str, scale: float | None = None) -> np.ndarray:
    """Initial weights.

    ``variance``: uniform in +-1/sqrt(fan_in), so each unit's input variance
    does not grow with its fan-in. ``he``: normal with variance 2 / fan_in,
    suited to ReLU layers. ``uniform``: uniform in +-``scale``, as the
    dissertation's listing gives a scale per layer.
    """
    if scheme == "variance":
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=shape)
    elif scheme == "he":
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    elif scheme == "uniform":
        if scale is None or not scale > 0:
            raise ShapeError(f"init 'uniform' needs a positive scale, got {scale!r}; "
                             f"add scale = 0.05 (say) to the layer")
        w = rng.uniform(-scale, scale, size=shape)
    else:
        raise ShapeError(f"unknown weight initialisation {scheme!r}; use one of {', '.join(INITS)}")
    return w.astype(dtype)


def pair(value, what: str, layer_type: str) -> tuple[int, int]:
    """An (rows, columns) pair from an int or a two-item list, as configs write them."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) for v in value):
        return int(value[0]), int(value[1])
    raise ShapeError(f"{layer_type} {what} {value!r} is neither an integer nor a pair of "
                     f"integers; write e.g. {what} = [3, 3]")


def layer_seed(seed: int, index: int) -> int:
    """The 32-bit seed of the layer at ``index`` in a network seeded ``seed``."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, index]).generate_state(1)[0])


class Layer:
    """Base layer: shape inference, parameters, state and forward/backward through ops."""

    kind = ""            # placement kind (conv, pool, ...): what ``conv=cupy`` names
    type = ""            # config type: tells apart layers of one kind (conv, conv2d)
    op = ""              # the op group of the contract this layer calls
    has_params = False   # whether it has trainable parameters (and so an update op)
    input_ranks: tuple[int, ...] | None = None   # per-example input ranks taken; None: any
    rank_hint = ""       # said after what the layer expects, when the rank is wrong
    # the operand precision of the layer's products (conv, dense: PRECISION_GROUPS);
    # the network sets it, and the layer passes it on only where it is not "fp32"
    precision = DEFAULT_PRECISION

    def __init__(self, name: str | None = None):
        self.name = name or ""
        self.input_shape: tuple[int, ...] = ()
        self.output_shape: tuple[int, ...] = ()
        self.params: dict[str, object] = {}   # backend arrays once placed
        self.grads: dict[str, object] = {}
        # arrays the layer keeps but the optimiser never touches (batch norm's running
        # statistics): placed, saved and loaded like params
        self.state: dict[str, object] = {}
        self.seed = 0        # for random numbers drawn in training; the network sets it
        self._cache: tuple = ()
        # False for the first layer: its backward need not compute an input gradient.
        self.needs_input_grad = True

    def config(self) -> dict:
        """The constructor arguments, for saving the architecture."""
        return {"type": self.type}

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype: str
              ) -> tuple[int, ...]:
        """Check ``input_shape``, create parameters and state on the host, return the
        output shape."""
        self.input_shape = tuple(input_shape)
        if self.input_ranks is not None and len(self.input_shape) not in self.input_ranks:
            what = " or ".join(RANKS[r] for r in self.input_ranks)
            raise ShapeError(
                f"layer {self.name!r} ({self.type}) expects {what}{self.rank_hint} but gets "
                f"input of shape {self.input_shape}; check the layer before it")
        self.output_shape = self._infer(self.input_shape)
        self.params = self._init_params(rng, dtype)
        self.state = self._init_state(dtype)
        return self.output_shape

    def _infer(self, shape):
        return shape

    def _init_params(self, rng, dtype) -> dict:
        return {}

    def _init_state(self, dtype) -> dict:
        return {}

    def place(self, src, dst) -> None:
        """Move parameters and state from backend ``src`` (None: host arrays) to ``dst``."""
        for arrays in (self.params, self.state):
            for key, value in arrays.items():
                if src is None:
                    arrays[key] = dst.from_host(np.asarray(value))
                elif src is not dst:
                    arrays[key] = dst.adopt(value, src)
        self.grads = {}

    def use_precision(self, precision: str) -> None:
        """Run this layer's products at ``precision`` (layers without products ignore it)."""
        if self.op in PRECISION_GROUPS:
            self.precision = precision

    def products(self) -> dict:
        """The keyword arguments of this layer's product ops (none at fp32)."""
        return precision_kwargs(self.precision)

    def begin_step(self, be, step: int) -> None:
        """Create the values this training step needs on ``be`` (none by default)."""

    def forward(self, be, x, train: bool):
        raise NotImplementedError

    def backward(self, be, dy):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name}: {self.type} {self.input_shape} -> {self.output_shape}"
