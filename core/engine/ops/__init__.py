"""The tensor-op contract: the only way layers and the network touch arrays.

Every backend subclasses :class:`Backend` and implements these ops. This
package is the single place where their shapes and semantics are written down; the
conformance suite (:mod:`genrecnn.conformance`) checks them on every backend.

Op groups and their files. Each group lives in the module named here, and every backend
folder implements it in a module of the same name (Keras style: a reader knows where to
look), a mixin listed before ``Backend`` among the backend class's bases:

=======================================  ================  ==========================
op groups                                contract          each backend
=======================================  ================  ==========================
transfer (and ``adopt``, ``reshape``)    this package      ``backend.py`` (the class)
conv1d, maxpool1d, global_pool, dense,   :mod:`.sequence`  ``sequence.py``
activation, softmax
conv2d, maxpool2d, batchnorm, dropout    :mod:`.maps`      ``maps.py``
sgd_update, adam_update, update_many     :mod:`.updates`   ``updates.py``
batch, train_loss                        :mod:`.training`  ``training.py``
graph                                    :mod:`.graphs`    ``graphs.py``
staging                                  :mod:`.staging`   ``staging.py``
collective                               :mod:`.collective` ``collective.py``
fused                                    :mod:`.fused`     ``fused.py``
=======================================  ================  ==========================

A backend's other modules are helpers of those (the CUDA backends' ``kernels.py`` and
``host.py``, PyCUDA's ``gemm.py``, NumPy's ``conv.py`` and ``parallel.py``). The two CUDA
backends share a group's file in ``backends/cuda_kernels/`` where its launches are planned
once for both (``fused.py``, ``training.py``, ``updates.py``, ``collective.py``;
``maps.py`` and ``sequence.py`` all but the convolutions, dense layers and activations;
``lowp.py`` the tf32/bf16 products of three groups), through the primitives of
``cuda_kernels/device.py``.

Conventions, for every op:

* Arrays are the backend's own type ("device arrays") exposing ``.shape``
  (a tuple) and ``.dtype`` (``str(dtype)`` is the NumPy name) like NumPy's;
  ``from_host`` and ``to_host`` cross to and from NumPy.
* Data arrays are batch-first: sequences ``[N, C, W]`` (N examples, C
  channels, W time steps; the input's channels are mel bands), 2-D maps
  ``[N, C, H, W]`` (H mel bands, W time steps), vectors ``[N, I]``.
* Floating arrays are float32 or float64; every output has the dtype of the
  floating inputs (no silent up- or down-casting). Index arrays
  (``labels``, ``argmax``, ``index``, ``key``) are int32.
* Contiguity: every array an op receives is C-contiguous, and every array an
  op (or ``from_host``, ``zeros``, ``adopt``, ``reshape``) returns must be
  C-contiguous too, so the chain never sees anything else and no backend
  needs to copy defensively. The suite checks the outputs.
* Shapes: callers pass consistent shapes and dtypes (layers infer and check
  them when a network is built); an op need not check them again, and its
  behaviour for inconsistent arguments is undefined.
* NaN: in every maximum (max pooling, global max) a NaN counts as larger than
  any number, as NumPy's ``max`` and PyTorch do: a window holding NaN gives
  NaN and its arg-max points at the window's first NaN, so ``y = x[argmax]``
  always holds. Elsewhere NaN propagates as IEEE arithmetic makes it.
* Ops never modify their inputs, except the ``*_update`` ops and ``write``,
  which update the arguments they name in place and return None, and
  ``upload_async``, which fills its ``dst`` and returns a token (:mod:`.staging`).
* Scalars (``lr``, ``slope``, ``rate``, ...) are Python numbers; ``loss``
  comes back as a Python float.
* Precision: the products (conv1d, conv2d, dense and their backward ops) take a
  keyword ``precision`` ("fp32", "tf32" or "bf16"): float32 sums of operands first
  rounded to tensor-core formats. A backend offers the ones in ``precisions``; callers
  pass the argument only when it is not "fp32" (:mod:`.precision` states the rule).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrecnn.engine.ops.collective import CollectiveOps
from genrecnn.engine.ops.fused import FusedOps
from genrecnn.engine.ops.graphs import GraphOps
from genrecnn.engine.ops.maps import MapOps, conv2d_out, lowbias32, pool2d_out
from genrecnn.engine.ops.precision import (DEFAULT_PRECISION, MANTISSA_BITS, PRECISION_GROUPS,
                                           PRECISION_METHODS, PRECISIONS, TOLERANCE_PRECISION,
                                           check_precision, precision_kwargs, round_operand,
                                           round_operands)
from genrecnn.engine.ops.sequence import SequenceOps
from genrecnn.engine.ops.staging import StagingOps
from genrecnn.engine.ops.training import TrainingOps
from genrecnn.engine.ops.updates import UpdateOps
from genrecnn.errors import BackendError, UnsupportedOp

DTYPES = ("float32", "float64")
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")

__all__ = ["ACTIVATIONS", "DEFAULT_PRECISION", "DTYPES", "MANTISSA_BITS", "GROUP_OF_METHOD", "OP_GROUPS", "OP_NAMES",
           "PRECISIONS", "PRECISION_GROUPS", "PRECISION_METHODS", "TOLERANCE_PRECISION", "Backend",
           "OpGroup", "check_precision", "conv1d_out_width", "conv2d_out", "lowbias32",
           "maxpool1d_out_width", "pool2d_out", "precision_kwargs", "round_operand",
           "round_operands"]


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
    OpGroup("adam_update", ("adam_update",), "Adam / AdamW, in place"),
    OpGroup("conv2d", ("conv2d", "conv2d_backward"),
            "2-D convolution over (mel, time) with stride and zero padding"),
    OpGroup("maxpool2d", ("maxpool2d", "maxpool2d_backward"), "2-D max pooling"),
    OpGroup("batchnorm", ("batchnorm_train", "batchnorm_running_update", "batchnorm_infer",
                          "batchnorm_backward"),
            "per-channel batch normalisation, running statistics for inference"),
    OpGroup("dropout", ("dropout", "dropout_backward"), "keyed dropout, the same mask everywhere"),
    OpGroup("batch", ("gather_batch", "mask_spans", "mix", "write"),
            "crops, masks and mixup cut from a resident training set"),
    OpGroup("train_loss", ("softmax_cross_entropy_acc", "softmax_cross_entropy_acc_backward"),
            "cross-entropy (mixup pairs) accumulated on the backend"),
    OpGroup("update_many", ("sgd_update_many", "adam_update_many"),
            "every parameter updated in one call, scalars read from the device"),
    OpGroup("graph", ("new_stream", "use_stream", "capture_begin", "capture_end",
                      "graph_launch"),
            "a whole training step captured as a CUDA graph and replayed"),
    OpGroup("staging", ("pinned_empty", "upload_async", "await_upload", "upload_finished"),
            "batches uploaded from pinned host memory on a side stream, overlapping compute"),
    OpGroup("collective", ("sum_across",),
            "gradients summed over the ranks of a data-parallel run, one fused buffer"),
    OpGroup("fused", ("norm_relu_maxpool2d_train", "norm_relu_maxpool2d_infer",
                      "norm_relu_maxpool2d_backward"),
            "batch norm, ReLU and 2-D max pooling of a CNN block as one op"),
)

OP_NAMES: frozenset[str] = frozenset(g.name for g in OP_GROUPS)
# Every op method's group, the optional ``*_backward_params`` shortcuts with their layer's.
GROUP_OF_METHOD: dict[str, str] = ({m: g.name for g in OP_GROUPS for m in g.methods}
                                   | {"conv1d_backward_params": "conv1d",
                                      "conv2d_backward_params": "conv2d"})


def conv1d_out_width(width: int, kernel: int) -> int:
    """Output width of a valid (unpadded, stride 1) convolution."""
    return width - kernel + 1


def maxpool1d_out_width(width: int, size: int, stride: int) -> int:
    """Output width of max pooling: windows that do not fit are dropped."""
    return (width - size) // stride + 1


class Backend(SequenceOps, MapOps, UpdateOps, TrainingOps, GraphOps, StagingOps,
              CollectiveOps, FusedOps):
    """Base class of every backend: declare who you are, implement the ops.

    Class attributes a backend sets:

    ``name``     short identifier used in placement specs (``conv=name``).
    ``device``   ``"cpu"`` or ``"cuda"``; arrays move between backends of
                 different devices through the host.
    ``dtypes``   the floating dtypes supported, a subset of :data:`DTYPES`.
    ``ops``      optional explicit set of op-group names from :data:`OP_NAMES`;
                 when left as None it is inferred from the methods overridden.
    ``precisions`` the precisions of its products, from :data:`PRECISIONS`
                 (:mod:`.precision`); "fp32" alone unless it takes ``precision=``.
    """

    name: str = ""
    device: str = "cpu"
    dtypes: tuple[str, ...] = DTYPES
    ops: frozenset[str] | None = None
    precisions: tuple[str, ...] = (DEFAULT_PRECISION,)

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

    def offers(self, precision: str) -> bool:
        """Whether this backend's products run at ``precision`` (fp32 always)."""
        return precision == DEFAULT_PRECISION or precision in self.precisions

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
        """Take an array produced by backend ``source`` for use here; the result is
        C-contiguous even where ``x`` is a strided view (then it is copied).

        The default goes through the host. Backends that can read another
        backend's memory directly (two CUDA backends sharing a context through
        ``__cuda_array_interface__``, or two NumPy-based CPU backends)
        override this to avoid the copy.
        """
        if source is self:
            return x
        return self.from_host(source.to_host(x))

    def reshape(self, x, shape: tuple[int, ...]):
        """The same elements in a new shape of equal size (a view or a copy; C order).

        Optional: this default goes through the host; backends override it
        with a view.
        """
        return self.from_host(self.to_host(x).reshape(shape))

    # ----------------------------------------------------------------------------------

    def _unsupported(self, method: str) -> UnsupportedOp:
        return UnsupportedOp(
            f"backend {self.name!r} does not implement op {GROUP_OF_METHOD.get(method, method)!r} "
            f"({method}); place that layer on another backend")
