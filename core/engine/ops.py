"""The tensor-op contract: the only way layers and the network touch arrays.

Every backend subclasses :class:`Backend` and implements these methods. This
module is the single place where their shapes and semantics are written down;
the conformance suite (:mod:`genrecnn.conformance`) checks them.

Conventions, for every op:

* Arrays are the backend's own type ("device arrays") exposing ``.shape``
  (a tuple) and ``.dtype`` (``str(dtype)`` is the NumPy name) like NumPy's;
  ``from_host`` and ``to_host`` cross to and from NumPy.
* Data arrays are batch-first. Sequences are ``[N, C, W]``: N examples,
  C channels (mel bands for the input), W time steps.
* Floating arrays are float32 or float64; every output has the dtype of the
  floating inputs (no silent up- or down-casting). Index arrays
  (``labels``, ``argmax``) are int32.
* Ops never modify their inputs, except the ``*_update`` ops, which update
  their parameter and state arguments in place and return None.
* Scalars (``lr``, ``slope``, ...) are Python floats; ``loss`` comes back as a
  Python float.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrecnn.errors import BackendError, UnsupportedOp

DTYPES = ("float32", "float64")
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")


@dataclass(frozen=True)
class OpGroup:
    """A forward op and the backward ops that belong to it (one row in tables)."""

    name: str
    methods: tuple[str, ...]
    summary: str


OP_GROUPS: tuple[OpGroup, ...] = (
    OpGroup("transfer", ("from_host", "to_host", "zeros"),
            "host <-> device copies, zero-filled allocation"),
    OpGroup("conv1d", ("conv1d", "conv1d_backward"),
            "time-axis convolution, filters span all channels"),
    OpGroup("maxpool1d", ("maxpool1d", "maxpool1d_backward"),
            "max pooling along time with size and stride"),
    OpGroup("global_pool", ("global_pool", "global_pool_backward"),
            "mean, max and L2 norm over time"),
    OpGroup("dense", ("dense", "dense_backward"), "fully connected x @ w + b"),
    OpGroup("activation", ("activation", "activation_backward"),
            "relu, leaky_relu, sigmoid, tanh"),
    OpGroup("softmax", ("softmax", "softmax_cross_entropy", "softmax_cross_entropy_backward"),
            "class probabilities and mean cross-entropy"),
    OpGroup("sgd_update", ("sgd_update",), "SGD with momentum and weight decay, in place"),
    OpGroup("adam_update", ("adam_update",), "Adam with weight decay, in place"),
)

OP_NAMES: frozenset[str] = frozenset(g.name for g in OP_GROUPS)
_GROUP_OF_METHOD = {m: g.name for g in OP_GROUPS for m in g.methods}


def conv1d_out_width(width: int, kernel: int) -> int:
    """Output width of a valid (unpadded, stride 1) convolution."""
    return width - kernel + 1


def maxpool1d_out_width(width: int, size: int, stride: int) -> int:
    """Output width of max pooling: windows that do not fit are dropped."""
    return (width - size) // stride + 1


class Backend:
    """Base class of every backend: declare who you are, implement the ops.

    Class attributes a backend sets:

    ``name``     short identifier used in placement specs (``conv=name``).
    ``device``   ``"cpu"`` or ``"cuda"``; arrays move between backends of
                 different devices through the host.
    ``dtypes``   the floating dtypes supported, a subset of :data:`DTYPES`.
    ``ops``      optional explicit set of op-group names from :data:`OP_NAMES`;
                 when left as None it is inferred from the methods overridden.
    """

    name: str = ""
    device: str = "cpu"
    dtypes: tuple[str, ...] = DTYPES
    ops: frozenset[str] | None = None

    # -- identity and availability ------------------------------------------------

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Whether the backend can run here, and the reason when it cannot.

        Must not raise: a missing library or driver is a reason, not a crash
        (e.g. ``(False, "pycuda not installed")``).
        """
        return True, ""

    @classmethod
    def declared_ops(cls) -> frozenset[str]:
        """The op groups this backend implements (explicit ``ops`` or inferred)."""
        if cls.ops is not None:
            unknown = sorted(set(cls.ops) - OP_NAMES)
            if unknown:
                raise BackendError(
                    f"backend {cls.name!r} declares unknown op(s) {', '.join(unknown)}; "
                    f"the contract's ops are: {', '.join(sorted(OP_NAMES))}")
            return frozenset(cls.ops)
        return frozenset(
            g.name for g in OP_GROUPS
            if all(getattr(cls, m) is not getattr(Backend, m) for m in g.methods))

    def supports(self, op_group: str) -> bool:
        return op_group in self.declared_ops()

    def synchronize(self) -> None:
        """Wait until queued device work is done (for timing). CPU: nothing to do."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} on {self.device}>"

    # -- moving arrays ---------------------------------------------------------------

    def from_host(self, a: np.ndarray):
        """Copy a NumPy array (any shape; float32, float64 or int32) to this backend.

        The result holds the same values, shape and dtype; later changes to
        ``a`` do not show through.
        """
        raise self._unsupported("from_host")

    def to_host(self, x) -> np.ndarray:
        """Return a NumPy array equal to ``x`` (same shape and dtype)."""
        raise self._unsupported("to_host")

    def zeros(self, shape: tuple[int, ...], dtype: str):
        """A zero-filled array of ``shape`` and ``dtype`` on this backend."""
        raise self._unsupported("zeros")

    def adopt(self, x, source: "Backend"):
        """Take an array produced by backend ``source`` for use here.

        The default goes through the host. Backends that can read another
        backend's memory directly (two CUDA backends sharing a context through
        ``__cuda_array_interface__``, or two NumPy-based CPU backends)
        override this to avoid the copy.
        """
        if source is self:
            return x
        return self.from_host(source.to_host(x))

    # -- convolution along time --------------------------------------------------------

    def conv1d(self, x, w, b):
        """Valid 1-D convolution over time with full-height filters.

        x[N, C, W], w[F, C, K], b[F] -> y[N, F, W-K+1] where
        ``y[n, f, t] = b[f] + sum_{c, k} w[f, c, k] * x[n, c, t + k]``
        (cross-correlation, as in every deep-learning library). Needs W >= K.
        """
        raise self._unsupported("conv1d")

    def conv1d_backward(self, x, w, dy):
        """Gradients of :meth:`conv1d`: (x, w, dy[N, F, W-K+1]) -> (dx, dw, db)

        dx[N, C, W] = sum over f, k of w[f, c, k] * dy[n, f, t - k];
        dw[F, C, K] = sum over n, t of dy[n, f, t] * x[n, c, t + k];
        db[F] = sum over n, t of dy[n, f, t].
        """
        raise self._unsupported("conv1d_backward")

    def conv1d_backward_params(self, x, w, dy):
        """Only the parameter gradients of :meth:`conv1d`: (x, w, dy) -> (dw, db).

        Same dw and db as :meth:`conv1d_backward`. The network calls it for a
        first layer, whose input gradient nobody needs (for the dissertation's
        network that input gradient is a third of the whole backward pass).
        Optional: this default calls :meth:`conv1d_backward` and drops dx;
        override it to skip computing dx.
        """
        _, dw, db = self.conv1d_backward(x, w, dy)
        return dw, db

    # -- max pooling along time --------------------------------------------------------

    def maxpool1d(self, x, size: int, stride: int):
        """Max over windows of ``size`` steps taken every ``stride`` steps.

        x[N, C, W] -> (y[N, C, Wo], argmax[N, C, Wo] int32) with
        ``Wo = (W - size) // stride + 1`` (steps past the last whole window are
        dropped) and ``y[n, c, j] = x[n, c, argmax[n, c, j]]``; ``argmax`` is the
        absolute time index of the first maximum in window ``j``. ``stride <
        size`` gives overlapping windows. Needs W >= size >= 1, stride >= 1.
        """
        raise self._unsupported("maxpool1d")

    def maxpool1d_backward(self, dy, argmax, width: int):
        """Gradient of :meth:`maxpool1d`: dx[N, C, width], zero except
        ``dx[n, c, argmax[n, c, j]] += dy[n, c, j]`` (summed where overlapping
        windows share a maximum)."""
        raise self._unsupported("maxpool1d_backward")

    # -- global pooling over time --------------------------------------------------------

    def global_pool(self, x):
        """Mean, max and L2 norm of every row over time.

        x[N, C, W] -> (y[N, 3C], argmax[N, C] int32) with
        ``y[:, 0:C] = mean_t x``, ``y[:, C:2C] = max_t x`` (first maximum at
        ``argmax``), ``y[:, 2C:3C] = sqrt(sum_t x**2)``.
        """
        raise self._unsupported("global_pool")

    def global_pool_backward(self, x, y, argmax, dy):
        """Gradient of :meth:`global_pool`: (x, y, argmax, dy[N, 3C]) -> dx[N, C, W]

        ``dx = dy_mean / W + onehot(argmax) * dy_max + x / l2 * dy_l2`` where the
        last term is 0 for rows whose L2 norm is 0.
        """
        raise self._unsupported("global_pool_backward")

    # -- fully connected -------------------------------------------------------------------

    def dense(self, x, w, b):
        """x[N, I], w[I, O], b[O] -> y[N, O] = x @ w + b."""
        raise self._unsupported("dense")

    def dense_backward(self, x, w, dy):
        """(x, w, dy[N, O]) -> (dx = dy @ w.T, dw = x.T @ dy, db = sum_n dy)."""
        raise self._unsupported("dense_backward")

    # -- elementwise activations -------------------------------------------------------

    def activation(self, kind: str, x, slope: float = 0.01):
        """Elementwise, any shape. ``kind`` is one of :data:`ACTIVATIONS`:
        relu max(x, 0); leaky_relu x if x > 0 else slope * x;
        sigmoid 1 / (1 + exp(-x)) (no overflow for large |x|); tanh."""
        raise self._unsupported("activation")

    def activation_backward(self, kind: str, x, y, dy, slope: float = 0.01):
        """dx from input x, output y and dy: relu dy * (x > 0);
        leaky_relu dy * (1 if x > 0 else slope); sigmoid dy * y * (1 - y);
        tanh dy * (1 - y**2)."""
        raise self._unsupported("activation_backward")

    # -- output --------------------------------------------------------------------------

    def softmax(self, logits):
        """logits[N, K] -> probs[N, K], rows summing to 1, computed after
        subtracting each row's max so that huge logits do not overflow."""
        raise self._unsupported("softmax")

    def softmax_cross_entropy(self, logits, labels):
        """(logits[N, K], labels[N] int32 in [0, K)) -> (loss, probs[N, K]).

        ``loss = -mean_n log softmax(logits)[n, labels[n]]`` as a Python float,
        from the log-sum-exp of max-shifted rows (finite for huge logits).
        """
        raise self._unsupported("softmax_cross_entropy")

    def softmax_cross_entropy_backward(self, probs, labels):
        """d loss / d logits = (probs - onehot(labels)) / N, shape [N, K]."""
        raise self._unsupported("softmax_cross_entropy_backward")

    # -- parameter updates (in place) --------------------------------------------------

    def sgd_update(self, param, grad, velocity, lr: float, momentum: float,
                   weight_decay: float) -> None:
        """SGD with momentum, in place on ``param`` and ``velocity``:

        ``velocity = momentum * velocity - lr * (grad + weight_decay * param)``;
        ``param += velocity``.
        """
        raise self._unsupported("sgd_update")

    def adam_update(self, param, grad, m, v, step: int, lr: float, beta1: float,
                    beta2: float, eps: float, weight_decay: float) -> None:
        """Adam (Kingma and Ba), in place on ``param``, ``m`` and ``v``;
        ``step`` counts from 1:

        ``g = grad + weight_decay * param``; ``m = beta1 m + (1 - beta1) g``;
        ``v = beta2 v + (1 - beta2) g**2``;
        ``param -= lr * (m / (1 - beta1**step)) / (sqrt(v / (1 - beta2**step)) + eps)``.
        """
        raise self._unsupported("adam_update")

    # ----------------------------------------------------------------------------------

    def _unsupported(self, method: str) -> UnsupportedOp:
        return UnsupportedOp(
            f"backend {self.name!r} does not implement op {_GROUP_OF_METHOD[method]!r} "
            f"({method}); place that layer on another backend")
