"""CuPy: the contract's parameter updates (:mod:`genrecnn.engine.ops.updates`), one
parameter a launch or up to ``grids.UPDATE_SLOTS`` of them in one (``updates.cu``)."""
from __future__ import annotations

import numpy as np

from genrecnn.backends.cuda_kernels import grids as G

from . import kernels as K
from .host import HostBase

_FILE = "updates.cu"


class CupyUpdateOps(HostBase):
    """sgd_update, adam_update, sgd_update_many, adam_update_many for :class:`.CupyBackend`
    (listed before ``Backend`` among its bases)."""

    def sgd_update(self, param, grad, velocity, lr, momentum, weight_decay):
        t = param.dtype.type
        K.launch_flat(_FILE, "sgd_update", param.dtype, param.size,
                      (param, grad, velocity, K.i64(param.size), t(lr), t(momentum),
                       t(lr * weight_decay)))

    def adam_update(self, param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
                    decoupled_weight_decay=0.0):
        t = param.dtype.type
        K.launch_flat(_FILE, "adam_update", param.dtype, param.size,
                      (param, grad, m, v, K.i64(param.size), t(lr), t(beta1), t(1 - beta1),
                       t(beta2), t(1 - beta2), t(eps), t(weight_decay), t(1 - beta1 ** step),
                       t(1 - beta2 ** step), t(decoupled_weight_decay)))

    # -- all parameters in one launch ---------------------------------------------------

    def _update_many(self, name: str, arrays: list[list], hyper) -> None:
        params = arrays[0]
        if not params:
            return
        sizes = [int(p.size) for p in params]
        sms = K.current_sm_count()
        for first, last, grid in G.update_launches(sizes, sms):
            args = G.update_args(arrays, sizes, first, last)
            K.launch(_FILE, name, params[0].dtype, grid, (G.THREADS, 1, 1),
                     (*args[:4 * G.UPDATE_SLOTS],
                       *(np.int64(n) for n in args[4 * G.UPDATE_SLOTS:]), hyper))

    def sgd_update_many(self, params, grads, velocities, hyper):
        self._update_many("sgd_many", [params, grads, velocities, velocities], hyper)

    def adam_update_many(self, params, grads, ms, vs, hyper):
        self._update_many("adam_many", [params, grads, ms, vs], hyper)
