"""Optimisers: per-parameter state on the parameter's backend, updates as ops.

``SGD`` is the dissertation's mini-batch SGD with momentum; ``Adam`` learns well
on real music, and ``AdamW`` is Adam with decoupled weight decay (the decay
shrinks the weights directly instead of entering the moments). The rate of each
step is set from outside (:mod:`genrecnn.engine.schedules`) through ``lr``.
"""
from __future__ import annotations

import numpy as np

from genrecnn.errors import GenrecnnError


class Optimizer:
    """Holds hyper-parameters and per-parameter state; ``step`` applies the grads."""

    slots = 1          # state arrays per parameter

    def __init__(self, lr: float, weight_decay: float = 0.0):
        if not lr > 0:
            raise GenrecnnError(f"learning rate must be positive, got {lr}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self._state: dict[tuple[str, str], tuple[str, tuple]] = {}
        self._hyper: dict[str, object] = {}     # backend name -> device scalars

    def _slots(self, layer, key, be, count: int) -> tuple:
        """State arrays for one parameter, created (or moved) on its backend."""
        ident = (layer.name, key)
        held = self._state.get(ident)
        if held is None:
            param = layer.params[key]
            arrays = tuple(be.zeros(tuple(param.shape), str(param.dtype)) for _ in range(count))
            held = (be.name, arrays)
        elif held[0] != be.name:
            from genrecnn.engine.registry import registry
            src = registry().get(held[0])
            held = (be.name, tuple(be.adopt(a, src) for a in held[1]))
        self._state[ident] = held
        return held[1]

    def step(self, network) -> None:
        """One update of every parameter from its gradient: :meth:`prepare`, then :meth:`apply`."""
        self.prepare(network)
        self.apply(network)

    def prepare(self, network) -> None:
        """The host's part of a step: advance the step count and write this step's
        scalars to every backend that updates all its parameters in one call (so a
        captured :meth:`apply` reads them there)."""
        self._advance()
        for layer, key, be in _first_of_each_backend(network.parameters()):
            if not be.supports("update_many"):
                continue
            values = np.asarray(self._hyper_values(), dtype=str(layer.params[key].dtype))
            held = self._hyper.get(be.name)
            if held is not None and be.supports("batch"):
                be.write(held, values)
            else:
                self._hyper[be.name] = be.from_host(values)

    def apply(self, network) -> None:
        """The device's part of a step: the update ops, with nothing read back."""
        for be, items in network.parameter_groups():
            if be.supports("update_many"):
                slots = [self._slots(layer, key, be, self.slots) for layer, key in items]
                self._update_many(be, [layer.params[k] for layer, k in items],
                                  [layer.grads[k] for layer, k in items],
                                  *zip(*slots), self._hyper[be.name])
            else:
                for layer, key in items:
                    self._update(be, layer, key, layer.params[key], layer.grads[key])

    def _advance(self) -> None:
        """Count a step (Adam's bias corrections need it)."""

    def state_dict(self) -> dict:
        return {"lr": self.lr}

    def load_state_dict(self, state: dict) -> None:
        """Restore the scalars of :meth:`state_dict` (the arrays go through load_state_arrays)."""
        self.lr = float(state.get("lr", self.lr))

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Per-parameter state as host arrays (``layer/param/slot``), for exact resume."""
        from genrecnn.engine.registry import registry
        out = {}
        for (lname, key), (bname, arrays) in self._state.items():
            be = registry().get(bname)
            for i, a in enumerate(arrays):
                out[f"{lname}/{key}/{i}"] = be.to_host(a)
        return out

    def load_state_arrays(self, network, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_arrays` output onto each parameter's current backend."""
        self._state = {}
        slots: dict[tuple[str, str], dict[int, np.ndarray]] = {}
        for name, a in arrays.items():
            lname, key, i = name.rsplit("/", 2)
            slots.setdefault((lname, key), {})[int(i)] = a
        for layer, key, be in network.parameters():
            held = slots.pop((layer.name, key), None)
            if held is None:
                continue
            want = tuple(layer.params[key].shape)
            if any(tuple(a.shape) != want for a in held.values()):
                raise GenrecnnError(f"saved optimiser state for {layer.name}/{key} does not fit "
                                    f"the parameter {want}; train afresh without --resume")
            dtype = str(layer.params[key].dtype)
            self._state[(layer.name, key)] = (be.name, tuple(
                be.from_host(np.asarray(held[i], dtype=dtype)) for i in sorted(held)))
        if slots:
            raise GenrecnnError(f"saved optimiser state names unknown parameters "
                                f"({', '.join('/'.join(k) for k in sorted(slots))}); "
                                f"train afresh without --resume")


class SGD(Optimizer):
    def __init__(self, lr=0.01, momentum=0.9, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.momentum = float(momentum)

    def _hyper_values(self) -> list[float]:
        return [self.lr, self.momentum, self.weight_decay]

    def _update_many(self, be, params, grads, velocities, hyper):
        be.sgd_update_many(params, grads, list(velocities), hyper)

    def _update(self, be, layer, key, param, grad):
        (velocity,) = self._slots(layer, key, be, 1)
        be.sgd_update(param, grad, velocity, self.lr, self.momentum, self.weight_decay)


class Adam(Optimizer):
    """Adam; ``weight_decay`` enters the gradient (L2), as in Kingma and Ba."""

    decoupled = False
    slots = 2

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.t = 0

    def _advance(self) -> None:
        self.t += 1

    def _hyper_values(self) -> list[float]:
        l2, dwd = (0.0, self.weight_decay) if self.decoupled else (self.weight_decay, 0.0)
        return [self.lr, self.beta1, self.beta2, self.eps, l2, dwd,
                1 - self.beta1 ** self.t, 1 - self.beta2 ** self.t]

    def _update_many(self, be, params, grads, ms, vs, hyper):
        be.adam_update_many(params, grads, list(ms), list(vs), hyper)

    def state_dict(self) -> dict:
        return dict(super().state_dict(), t=self.t)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.t = int(state.get("t", 0))

    def _update(self, be, layer, key, param, grad):
        m, v = self._slots(layer, key, be, 2)
        if self.decoupled:
            be.adam_update(param, grad, m, v, self.t, self.lr, self.beta1, self.beta2, self.eps,
                           0.0, self.weight_decay)
        else:
            be.adam_update(param, grad, m, v, self.t, self.lr, self.beta1, self.beta2, self.eps,
                           self.weight_decay)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter): the weights shrink by
    ``lr * weight_decay`` each step, outside the adaptive moments."""

    decoupled = True


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def make_optimizer(name: str, **kwargs) -> Optimizer:
    if name not in OPTIMIZERS:
        raise GenrecnnError(f"unknown optimiser {name!r}; use one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](**kwargs)


def _first_of_each_backend(parameters) -> list:
    """(layer, key, backend) of the first parameter on each backend."""
    seen: dict[int, tuple] = {}
    for item in parameters:
        seen.setdefault(id(item[2]), item)
    return list(seen.values())
