"""The contract's parameter updates (:mod:`genrecnn.engine.ops.updates`) on ``updates.cu``
for both CUDA backends, planned once through the primitives of :mod:`.device`: one
parameter a launch, or up to ``grids.UPDATE_SLOTS`` of them in one. Pure Python:
importing it needs no CUDA.
"""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G
from genrecnn.backends.cuda_kernels.device import Launches

_FILE = "updates.cu"
_MANY_TYPES = "P" * (4 * G.UPDATE_SLOTS) + "q" * G.UPDATE_SLOTS + "P"


class ParameterUpdateOps(Launches):
    """sgd_update, adam_update, sgd_update_many, adam_update_many for a CUDA backend
    (listed before ``Backend`` among its bases)."""

    def sgd_update(self, param, grad, velocity, lr, momentum, weight_decay):
        n = int(param.size)
        self._flat_launch(_FILE, "sgd_update", "PPPqTTT", param.dtype, n,
                          (param, grad, velocity, n, lr, momentum,
                           float(lr) * float(weight_decay)))

    def adam_update(self, param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
                    decoupled_weight_decay=0.0):
        n, b1, b2 = int(param.size), float(beta1), float(beta2)
        self._flat_launch(_FILE, "adam_update", "PPPPq" + "T" * 10, param.dtype, n,
                          (param, grad, m, v, n, lr, b1, 1.0 - b1, b2, 1.0 - b2, eps,
                           weight_decay, 1.0 - b1 ** step, 1.0 - b2 ** step,
                           decoupled_weight_decay))

    # -- all parameters in one launch ---------------------------------------------------

    def _update_many(self, name: str, arrays: list[list], hyper) -> None:
        params = arrays[0]
        if not params:
            return
        sizes = [int(p.size) for p in params]
        self._slot_launches(_FILE, name, _MANY_TYPES, params[0].dtype, sizes,
                            lambda first, last: G.update_args(arrays, sizes, first, last),
                            (hyper,))

    def sgd_update_many(self, params, grads, velocities, hyper):
        self._update_many("sgd_many", [params, grads, velocities, velocities], hyper)

    def adam_update_many(self, params, grads, ms, vs, hyper):
        self._update_many("adam_many", [params, grads, ms, vs], hyper)
