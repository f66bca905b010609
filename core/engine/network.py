"""A network: an ordered chain of layers, each placed on a backend.

The network checks shapes when built, moves parameters and state to each
layer's backend, and moves activations between backends only where the
placement changes (through :meth:`Backend.adopt`, which avoids the host where
the two backends share memory). It never touches array contents itself.

Its input is ``[N, mels, frames]``; a network whose first layers take 2-D maps
sees it as ``[N, 1, mels, frames]`` (one channel, reshaped on the host).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from genrecnn.errors import DataError, PlacementError, ShapeError
from genrecnn.engine.blocks import units
from genrecnn.engine.capability import lacks_precision, missing
from genrecnn.engine.layers import Layer, Softmax, layer_seed
from genrecnn.engine.ops import DEFAULT_PRECISION, DTYPES, check_precision
from genrecnn.engine.placement import DEFAULT_BACKEND, resolve_placement
from genrecnn.engine.registry import Registry, registry as default_registry


class Network:
    """Layers with inferred shapes, placement, forward, loss and backward."""

    # Run batchnorm -> relu -> pool2d as one fused op where their backend can
    # (:mod:`genrecnn.engine.blocks`); False runs every layer alone (tests compare the two).
    fuse = True

    def __init__(self, layers: list[Layer], input_shape: tuple[int, int],
                 dtype: str = "float32", seed: int = 0, precision: str = DEFAULT_PRECISION):
        if dtype not in DTYPES:
            raise ShapeError(f"unsupported dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        if not layers or not isinstance(layers[-1], Softmax):
            raise ShapeError("a network must end with a softmax layer")
        if any(isinstance(layer, Softmax) for layer in layers[:-1]):
            raise ShapeError("only the last layer may be a softmax layer")
        self.layers = layers
        self.dtype = dtype
        self.input_shape = tuple(int(s) for s in input_shape)
        self.seed = int(seed)
        self.steps = 0     # training steps taken: the offset of each step's dropout keys
        self._name_layers()
        rng = np.random.default_rng(seed)
        shape = (1, *self.input_shape) if _takes_maps(layers) else self.input_shape
        for i, layer in enumerate(layers):
            layer.seed = layer_seed(self.seed, i)
            shape = layer.build(shape, rng, dtype)
        self.n_classes = shape[0]
        layers[0].needs_input_grad = False   # nothing consumes the gradient of the input
        self.backend_names = [DEFAULT_BACKEND] * len(layers)
        self.backends: list = []
        self.transfers: Counter = Counter()   # (from, to) -> number of array moves
        self._registry: Registry | None = None
        self._plan: tuple | None = None      # (placement and fuse, the units they give)
        self.precision = precision

    @property
    def precision(self) -> str:
        """The operand precision of the products (conv and dense layers; see
        :mod:`genrecnn.engine.ops.precision`). Parameters, gradients and optimiser state
        stay in the network's dtype whatever it is; setting it on a placed network
        checks the placement again."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        check_precision(value, self.dtype)
        if self.backends:
            self._check_placement(self.backends, self._registry or default_registry(), value)
        self._precision = value
        for layer in self.layers:
            layer.use_precision(value)

    def _name_layers(self) -> None:
        counts: Counter = Counter()
        taken = {layer.name for layer in self.layers if layer.name}
        for layer in self.layers:
            if layer.name:
                continue
            if layer.kind == "softmax":
                layer.name = "softmax"
                continue
            while True:
                counts[layer.kind] += 1
                candidate = f"{layer.kind}{counts[layer.kind]}"
                if candidate not in taken:
                    break
            layer.name = candidate
        names = [layer.name for layer in self.layers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ShapeError(f"layer names must be unique; repeated: {', '.join(dupes)}")

    # -- placement -------------------------------------------------------------------------

    def place(self, spec: str | dict | list[str], registry: Registry | None = None) -> list[str]:
        """Put each layer on a backend (a spec string/dict or one name per layer)."""
        reg = registry or self._registry or default_registry()
        if isinstance(spec, list):
            if len(spec) != len(self.layers):
                raise ShapeError(f"placement lists {len(spec)} backends for {len(self.layers)} layers")
            names = list(spec)
            for b in names:
                reg.get(b)
        else:
            names = resolve_placement(spec, self.layers, reg.names())
        new = [reg.get(b) for b in names]
        self._check_placement(new, reg, self.precision)
        old = self.backends or [None] * len(self.layers)
        for layer, src, dst in zip(self.layers, old, new):
            layer.place(src, dst)
        self._registry, self.backend_names, self.backends = reg, names, new
        return names

    def _check_placement(self, backends: list, reg: Registry, precision: str) -> None:
        """A PlacementError for the first layer its backend cannot run at ``precision``."""
        for layer, be in zip(self.layers, backends):
            if lacks_precision(be, layer, precision):
                offer = [n for n in reg.available_names()
                         if precision in reg.infos[n].cls.precisions
                         and self.dtype in reg.infos[n].cls.dtypes]
                where = (f"place that layer on {_either(offer)}, or " if offer else "")
                raise PlacementError(
                    f"backend {be.name!r} does not offer precision {precision!r} for layer "
                    f"{layer.name} (it offers {', '.join(be.precisions)}); {where}use "
                    f"--precision {DEFAULT_PRECISION}")
            why = missing(be, layer, self.dtype)
            if why:
                raise PlacementError(f"{why}, which layer {layer.name!r} needs; place that "
                                     f"layer on another backend ({layer.name}=numpy)")

    def ensure_placed(self) -> None:
        """Place every layer on the default backend if nothing placed it yet."""
        if not self.backends:
            self.place(DEFAULT_BACKEND)

    def _move(self, x, src, dst):
        if src is dst:
            return x
        self.transfers[(src.name, dst.name)] += 1
        return dst.adopt(x, src)

    # -- input checks ----------------------------------------------------------------------

    def check_batch(self, x: np.ndarray, labels: np.ndarray | None = None):
        """Validate a host batch; return it as a contiguous array of the network's dtype."""
        x = np.asarray(x)
        if x.ndim != 3 or tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(
                f"input batch has shape {x.shape}; this network expects (batch, "
                f"{self.input_shape[0]}, {self.input_shape[1]}) (mel bands, frames)")
        if not np.issubdtype(x.dtype, np.floating):
            raise DataError(f"input batch has dtype {x.dtype}; expected floating point "
                            f"({self.dtype})")
        if x.size and not (np.isfinite(x.min()) and np.isfinite(x.max())):   # NaN spreads
            bad = int(np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1))[0])
            raise DataError(f"input batch contains NaN or infinite values (example {bad}); "
                            f"check the features of that clip")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if labels is None:
            return x, None
        labels = np.asarray(labels)
        if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
            raise ShapeError(f"labels have shape {labels.shape} and dtype {labels.dtype}; "
                             f"expected {len(x)} integers")
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise DataError(f"labels must lie in [0, {self.n_classes}); got "
                            f"{labels.min()}..{labels.max()}")
        return x, labels.astype(np.int32)

    # -- computation -----------------------------------------------------------------------

    def _forward_features(self, x, train: bool):
        """Run every layer but the softmax on a host batch; return (logits, their backend)."""
        be = self.backends[0]
        return self._features(be.from_host(x.reshape(len(x), *self.layers[0].input_shape)), train)

    def _features(self, h, train: bool):
        """Every layer but the softmax from ``h`` on the first backend (already shaped
        for the first layer); return (logits, their backend)."""
        be = self.backends[0]
        for unit, ube in self._units():
            h = self._move(h, be, ube)
            be = ube
            h = unit.forward(be, h, train)
        return h, be

    def _units(self) -> list[tuple]:
        """(layer or fused block, backend) for every layer but the softmax, planned again
        when the placement or :attr:`fuse` changes."""
        key = (tuple(id(be) for be in self.backends), self.fuse)
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, units(self.layers[:-1], self.backends[:-1], self.fuse))
        return self._plan[1]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities [N, classes] for a host batch."""
        self.ensure_placed()
        x, _ = self.check_batch(x)
        logits, be = self._forward_features(x, train=False)
        out_be = self.backends[-1]
        probs = self.layers[-1].forward(out_be, self._move(logits, be, out_be), False)
        return out_be.to_host(probs)

    def loss_and_grads(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """Forward with loss, then backward filling every layer's ``grads``.

        One training step: its per-step values are created first (each dropout
        layer's key, from the layer's seed and :attr:`steps`, by ``from_host``
        in :meth:`Layer.begin_step`), and :attr:`steps` counts it at the end.
        Returns the mean cross-entropy and the host probabilities [N, classes].
        """
        self.ensure_placed()
        x, labels = self.check_batch(x, labels)
        self.begin_step()
        logits, be = self._forward_features(x, train=True)
        out_be = self.backends[-1]
        loss, probs = self.layers[-1].forward_loss(
            out_be, self._move(logits, be, out_be), out_be.from_host(labels))
        self._backward(out_be)
        return loss, out_be.to_host(probs)

    def loss_and_grads_pairs(self, x: np.ndarray, labels_a, labels_b, lam
                             ) -> tuple[float, np.ndarray]:
        """:meth:`loss_and_grads` for mixup pairs of labels with weights ``lam`` (the loss
        of the ``train_loss`` ops); plain labels when every ``lam`` is 1."""
        lam = np.asarray(lam)
        if np.all(lam == 1) and np.array_equal(labels_a, labels_b):
            return self.loss_and_grads(x, labels_a)
        self.ensure_placed()
        x, labels_a = self.check_batch(x, labels_a)
        out_be = self.backends[-1]
        stats = out_be.zeros((2,), self.dtype)
        self.begin_step()
        h = self.backends[0].from_host(x.reshape(len(x), *self.layers[0].input_shape))
        probs = self.device_step(h, out_be.from_host(labels_a),
                                 out_be.from_host(np.asarray(labels_b, dtype=np.int32)),
                                 out_be.from_host(lam.astype(self.dtype)), stats)
        return float(out_be.to_host(stats)[0]) / len(x), out_be.to_host(probs)

    def begin_step(self) -> None:
        """Write the values of the next training step (each dropout layer's key, from the
        layer's seed and :attr:`steps`) and count it. Called before the step runs, so a
        captured step replays with each step's values."""
        self.ensure_placed()
        for layer, be in zip(self.layers, self.backends):
            layer.begin_step(be, self.steps)
        self.steps += 1

    def device_step(self, x, labels_a, labels_b, lam, stats):
        """Forward, loss and backward of a batch already on the first backend, the loss
        accumulated into ``stats`` on the last (see ``softmax_cross_entropy_acc``);
        nothing is read back, so the step can be captured. Returns the probabilities."""
        first = self.backends[0]
        shape = (int(x.shape[0]), *self.layers[0].input_shape)
        if tuple(x.shape) != shape:
            x = first.reshape(x, shape)
        logits, be = self._features(x, train=True)
        out_be = self.backends[-1]
        probs = self.layers[-1].forward_loss_acc(out_be, self._move(logits, be, out_be),
                                                 labels_a, labels_b, lam, stats)
        self._backward(out_be)
        return probs

    def _backward(self, out_be) -> None:
        """Gradients of every layer, from the softmax's loss back to the first layer."""
        grad = self.layers[-1].backward(out_be)
        be = out_be
        for unit, ube in reversed(self._units()):
            grad = self._move(grad, be, ube)
            be = ube
            grad = unit.backward(be, grad)

    def finite(self) -> bool:
        """Whether every parameter and state value is finite (a diverged run is not)."""
        return all(np.isfinite(a).all() for a in self.host_params().values())

    def parameters(self):
        """(layer, key, backend) for every parameter, in layer order."""
        self.ensure_placed()
        for layer, be in zip(self.layers, self.backends):
            for key in layer.params:
                yield layer, key, be

    def parameter_groups(self) -> list[tuple[object, list[tuple]]]:
        """(backend, [(layer, key), ...]) for each backend holding parameters, in the
        order the layers first use them: what one fused call a backend takes."""
        groups: dict[int, tuple] = {}
        for layer, key, be in self.parameters():
            groups.setdefault(id(be), (be, []))[1].append((layer, key))
        return list(groups.values())

    # -- host views for saving -------------------------------------------------------------

    def _stored(self):
        """(file key, the dict holding it, key, backend or None) of every array a model
        file holds: parameters as ``layer/param``, state as ``layer/state/name``."""
        for layer, be in zip(self.layers, self.backends or [None] * len(self.layers)):
            for key in layer.params:
                yield f"{layer.name}/{key}", layer.params, key, be
            for key in layer.state:
                yield f"{layer.name}/state/{key}", layer.state, key, be

    def host_params(self) -> dict[str, np.ndarray]:
        """Every parameter and state array as a host array, keyed as :meth:`_stored` says."""
        return {full: be.to_host(d[key]) if be else np.asarray(d[key])
                for full, d, key, be in self._stored()}

    def load_host_params(self, params: dict[str, np.ndarray]) -> None:
        """Replace parameters and state (before placement, or re-placed afterwards)."""
        for full, d, key, be in list(self._stored()):
            if full not in params:
                raise ShapeError(f"saved weights lack {full!r}; the file does not match "
                                 f"this architecture")
            value = np.asarray(params[full], dtype=self.dtype)
            old = d[key]
            want = tuple(be.to_host(old).shape if be else np.shape(old))
            if value.shape != want:
                raise ShapeError(f"saved weights {full!r} have shape {value.shape}, "
                                 f"the layer needs {want}")
            d[key] = be.from_host(value) if be else value

    def config(self) -> list[dict]:
        return [dict(layer.config(), name=layer.name) for layer in self.layers]


def _either(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _takes_maps(layers) -> bool:
    """Whether the input reaches the first layers as 2-D maps: the first layer that
    takes sequences or maps but not both decides."""
    for layer in layers:
        ranks = set(layer.input_ranks or ())
        if len(ranks & {2, 3}) == 1:
            return 3 in ranks
    return False

