"""The op contract implemented differently from genrecnn's NumPy backend.

Same arrays (NumPy, on the CPU), different algorithms, so that passing the
conformance suite means something:

* conv1d by FFT: a cross-correlation is a product of spectra; the backward
  pass sums over kernel taps with ``np.einsum`` (``optimize=True`` hands the
  contractions to BLAS);
* max pooling by gathering windows with an index array (a copy, not a
  strided view), its backward by ``np.add.at`` (which sums repeated indices,
  so overlapping windows that share a maximum add up);
* global pooling through ``np.linalg.norm`` and a one-hot mask;
* dense by ``np.einsum``; sigmoid as ``(1 + tanh(x / 2)) / 2``, which cannot
  overflow; softmax as ``e / sum(e)`` with ``e = exp(x - max x)`` (the
  conformance suite caught ``exp(x - logsumexp(x))``: in float32 it loses
  digits when logits are near 1e4).

Every output is made C-contiguous, as the contract asks: ``einsum`` with
``optimize=True`` and gathered windows can hand back other memory layouts
(the conformance suite caught that too).
"""
from __future__ import annotations

import numpy as np

from genrecnn.engine.ops import Backend


def _fft_len(n: int) -> int:
    """A fast FFT length >= n (a power of two)."""
    return 1 << max(0, (n - 1).bit_length())


class ExampleBackend(Backend):
    name = "example"
    device = "cpu"
    dtypes = ("float32", "float64")

    # -- transfers -----------------------------------------------------------------------

    def from_host(self, a):
        out = np.empty(np.shape(a), dtype=np.asarray(a).dtype)
        out[...] = a
        return out

    def to_host(self, x):
        return np.copy(x, order="C")

    def zeros(self, shape, dtype):
        return np.full(shape, 0, dtype=dtype)

    # -- convolution -----------------------------------------------------------------------

    def conv1d(self, x, w, b):
        n, c, width = x.shape
        f, _, k = w.shape
        wo = width - k + 1
        size = _fft_len(width + k - 1)
        # correlation with w == convolution with w reversed along time
        xs = np.fft.rfft(x.astype(np.float64), size, axis=2)          # [N, C, S]
        ws = np.fft.rfft(w[:, :, ::-1].astype(np.float64), size, axis=2)   # [F, C, S]
        full = np.fft.irfft(np.einsum("ncs,fcs->nfs", xs, ws, optimize=True), size, axis=2)
        y = full[:, :, k - 1:k - 1 + wo] + b.astype(np.float64)[None, :, None]
        return y.astype(x.dtype, order="C")

    def conv1d_backward(self, x, w, dy):
        f, c, k = w.shape
        wo = dy.shape[2]
        dx = np.zeros_like(x)
        dw = np.empty_like(w)
        for tap in range(k):
            seg = x[:, :, tap:tap + wo]
            dw[:, :, tap] = np.einsum("nft,nct->fc", dy, seg, optimize=True)
            dx[:, :, tap:tap + wo] += np.einsum("fc,nft->nct", w[:, :, tap], dy, optimize=True)
        return dx, dw, np.einsum("nft->f", dy)

    # -- pooling ---------------------------------------------------------------------------

    def maxpool1d(self, x, size, stride):
        wo = (x.shape[2] - size) // stride + 1
        idx = np.arange(wo)[:, None] * stride + np.arange(size)[None, :]   # [Wo, size]
        windows = x[:, :, idx]                                            # gathered copy
        local = np.argmax(windows, axis=3)
        arg = (local + idx[:, 0][None, None, :]).astype(np.int32)
        y = np.ascontiguousarray(np.max(windows, axis=3))
        return y, arg

    def maxpool1d_backward(self, dy, argmax, width):
        n, c, wo = dy.shape
        dx = np.zeros((n, c, width), dtype=dy.dtype)
        ni, ci = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
        np.add.at(dx, (ni[..., None], ci[..., None], argmax), dy)
        return dx

    def global_pool(self, x):
        width = x.shape[2]
        mean = np.einsum("ncw->nc", x) / x.dtype.type(width)
        arg = np.argmax(x, axis=2)
        mx = np.max(x, axis=2)
        l2 = np.linalg.norm(x, axis=2).astype(x.dtype)
        return np.hstack([mean, mx, l2]), arg.astype(np.int32)

    def global_pool_backward(self, x, y, argmax, dy):
        c, width = x.shape[1], x.shape[2]
        dmean, dmax, dl2 = np.split(dy, 3, axis=1)
        l2 = y[:, 2 * c:]
        safe = np.where(l2 > 0, l2, 1)
        onehot = np.arange(width)[None, None, :] == argmax[..., None]
        dx = (dmean / x.dtype.type(width))[..., None] + onehot * dmax[..., None]
        dx = dx + np.where((l2 > 0)[..., None], x * (dl2 / safe)[..., None], 0)
        return dx.astype(x.dtype, copy=False)

    # -- dense -----------------------------------------------------------------------------

    def dense(self, x, w, b):
        return np.ascontiguousarray(np.einsum("ni,io->no", x, w, optimize=True) + b)

    def dense_backward(self, x, w, dy):
        return (np.ascontiguousarray(np.einsum("no,io->ni", dy, w, optimize=True)),
                np.ascontiguousarray(np.einsum("ni,no->io", x, dy, optimize=True)),
                np.einsum("no->o", dy))

    # -- activations -----------------------------------------------------------------------

    def activation(self, kind, x, slope=0.01):
        one = x.dtype.type(1)
        half = x.dtype.type(0.5)
        if kind == "relu":
            return np.maximum(x, x.dtype.type(0))             # NaN stays NaN
        if kind == "leaky_relu":
            return x * np.where(x > 0, one, x.dtype.type(slope))
        if kind == "sigmoid":
            return half * (one + np.tanh(half * x))
        if kind == "tanh":
            return np.tanh(x)
        raise ValueError(f"unknown activation {kind!r}")

    def activation_backward(self, kind, x, y, dy, slope=0.01):
        one = x.dtype.type(1)
        if kind == "relu":
            return np.where(x > 0, dy, x.dtype.type(0))
        if kind == "leaky_relu":
            return dy * np.where(x > 0, one, x.dtype.type(slope))
        if kind == "sigmoid":
            return dy * (y - y * y)
        if kind == "tanh":
            return dy - dy * y * y
        raise ValueError(f"unknown activation {kind!r}")

    # -- softmax ---------------------------------------------------------------------------

    @staticmethod
    def _shifted(logits):
        """Rows minus their max (exact for nearby huge values) and exp of that."""
        z = logits - np.max(logits, axis=1, keepdims=True)
        return z, np.exp(z)

    def softmax(self, logits):
        _, e = self._shifted(logits)
        return e / np.sum(e, axis=1, keepdims=True)

    def softmax_cross_entropy(self, logits, labels):
        z, e = self._shifted(logits)
        total = np.sum(e, axis=1)
        loss = float(np.mean(np.log(total) - z[np.arange(len(labels)), labels]))
        return loss, e / total[:, None]

    def softmax_cross_entropy_backward(self, probs, labels):
        onehot = np.eye(probs.shape[1], dtype=probs.dtype)[labels]
        return (probs - onehot) / probs.dtype.type(len(labels))

    # -- updates ---------------------------------------------------------------------------

    def sgd_update(self, param, grad, velocity, lr, momentum, weight_decay):
        step = grad + param * param.dtype.type(weight_decay)
        np.multiply(velocity, velocity.dtype.type(momentum), out=velocity)
        np.subtract(velocity, step * step.dtype.type(lr), out=velocity)
        np.add(param, velocity, out=param)

    def adam_update(self, param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
                    decoupled_weight_decay=0.0):
        t = param.dtype.type
        g = grad + param * t(weight_decay)
        m[...] = t(beta1) * m + t(1 - beta1) * g
        v[...] = t(beta2) * v + t(1 - beta2) * np.square(g)
        lr_t = lr * np.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
        eps_t = eps * np.sqrt(1 - beta2 ** step)
        step_ = t(lr_t) * m / (np.sqrt(v) + t(eps_t)) + param * t(lr * decoupled_weight_decay)
        param -= step_
