"""PyCUDA: the contract's parameter updates (:mod:`genrecnn.engine.ops.updates`), one
parameter a launch or up to ``grids.UPDATE_SLOTS`` of them in one (``updates.cu``)."""
from __future__ import annotations

from genrecnn.backends.cuda_kernels import grids as G

from .host import HostBase

_FILE = "updates.cu"


class PycudaUpdateOps(HostBase):
    """sgd_update, adam_update, sgd_update_many, adam_update_many for
    :class:`.PycudaBackend` (listed before ``Backend`` among its bases)."""

    def sgd_update(self, param, grad, velocity, lr, momentum, weight_decay):
        n = param.size
        self._elementwise("sgd_update", "PPPqTTT", str(param.dtype), n, self._ptr(param),
                          self._ptr(grad), self._ptr(velocity), n, float(lr), float(momentum),
                          float(lr) * float(weight_decay), file=_FILE)

    def adam_update(self, param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
                    decoupled_weight_decay=0.0):
        b1, b2, n = float(beta1), float(beta2), param.size
        self._elementwise("adam_update", "PPPPqTTTTTTTTTT", str(param.dtype), n, self._ptr(param),
                          self._ptr(grad), self._ptr(m), self._ptr(v), n, float(lr),
                          b1, 1.0 - b1, b2, 1.0 - b2, float(eps), float(weight_decay),
                          1.0 - b1 ** step, 1.0 - b2 ** step, float(decoupled_weight_decay),
                          file=_FILE)

    # -- all parameters in one launch ---------------------------------------------------

    def _update_many(self, name: str, arrays: list[list], hyper) -> None:
        params = arrays[0]
        if not params:
            return
        dt = str(params[0].dtype)
        sizes = [int(p.size) for p in params]
        arg_types = "P" * (4 * G.UPDATE_SLOTS) + "q" * G.UPDATE_SLOTS + "P"
        for first, last, grid in G.update_launches(sizes, self.sm_count):
            args = G.update_args(arrays, sizes, first, last)
            self._launch(_FILE, name, arg_types, dt, grid, (G.THREADS, 1, 1),
                         *[self._ptr(a) for a in args[:4 * G.UPDATE_SLOTS]],
                         *args[4 * G.UPDATE_SLOTS:], self._ptr(hyper))

    def sgd_update_many(self, params, grads, velocities, hyper):
        self._update_many("sgd_many", [params, grads, velocities, velocities], hyper)

    def adam_update_many(self, params, grads, ms, vs, hyper):
        self._update_many("adam_many", [params, grads, ms, vs], hyper)
