"""softmax and cross-entropy: huge logits stay finite; the gradient (probs - onehot) / N."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance import reference as ref
from genrecnn.conformance.checks import (CheckFailed, call, compare, device, gradcheck, output,
                                         unpack)
from genrecnn.conformance.cases.common import Case, normal, random_labels

HUGE = np.array([[1e4, 0.0, -1e4], [1e4, 1e4 - 1, 1e4 - 2], [-1e4, -1e4, -1e4 + 5],
                 [-1e4, -1e4, -1e4], [0.0, 0.0, 0.0]])
SOFTMAX_CONFIGS = ["N1K1", "N1K3", "N4K10", "huge-logits", "N33K70-huge", "N300K10", "N5K1100"]
SOFTMAX_FD_CONFIGS = ["N1K3", "N4K10"]


def _logits(rng, cfg, dtype):
    if cfg == "huge-logits":
        return HUGE.astype(dtype)
    size, _, huge = cfg.partition("-")
    n, k = (int(v) for v in size[1:].split("K"))
    return normal(rng, (n, k), dtype, 1e4 if huge else 3.0)


def _softmax_forward(be, dtype, rng, cfg):
    z = _logits(rng, cfg, dtype)
    p = call(be, "softmax", device(be, z))
    return compare("softmax probs", output(be, p, "softmax probs", z.shape, dtype),
                   ref.softmax(z), dtype)


def _xent_forward(be, dtype, rng, cfg):
    z = _logits(rng, cfg, dtype)
    labels = random_labels(rng, z.shape[0], z.shape[1])
    if cfg == "huge-logits":
        labels = np.array([2, 0, 1, 0, 2], dtype=np.int32)   # the -1e4 logit of row 0: loss 2e4
    loss, p = unpack(call(be, "softmax_cross_entropy", device(be, z), device(be, labels)), 2,
                     "softmax_cross_entropy")
    rloss, rp = ref.softmax_cross_entropy(z, labels)
    if not isinstance(loss, float):
        raise CheckFailed(f"softmax_cross_entropy loss is {type(loss).__name__}, expected a "
                          f"Python float")
    return max(compare("softmax_cross_entropy loss", np.float64(loss), rloss, dtype),
               compare("softmax_cross_entropy probs", output(be, p, "probs", z.shape, dtype), rp,
                       dtype))


def _xent_backward(be, dtype, rng, cfg):
    z = _logits(rng, cfg, dtype)
    labels = random_labels(rng, z.shape[0], z.shape[1])
    probs = ref.softmax(z).astype(dtype)
    g = call(be, "softmax_cross_entropy_backward", device(be, probs), device(be, labels))
    return compare("softmax_cross_entropy_backward", output(be, g, "dlogits", z.shape, dtype),
                   ref.softmax_cross_entropy_backward(probs, labels), dtype)


def _xent_gradcheck(be, dtype, rng, cfg):
    z = _logits(rng, cfg, dtype)
    labels = random_labels(rng, z.shape[0], z.shape[1])
    lab = device(be, labels)

    def loss(logits):
        return be.softmax_cross_entropy(device(be, logits), lab)[0]

    _, p = be.softmax_cross_entropy(device(be, z), lab)
    g = be.to_host(be.softmax_cross_entropy_backward(p, lab))
    return gradcheck(loss, {"logits": z}, {"logits": g}, rng)


def softmax_cases(dtype):
    out = [Case("softmax", dtype, "softmax", cfg, functools.partial(_softmax_forward, cfg=cfg))
           for cfg in SOFTMAX_CONFIGS]
    out += [Case("softmax", dtype, "cross-entropy", cfg, functools.partial(_xent_forward, cfg=cfg))
            for cfg in SOFTMAX_CONFIGS]
    out += [Case("softmax", dtype, "backward", cfg, functools.partial(_xent_backward, cfg=cfg))
            for cfg in SOFTMAX_CONFIGS]
    if dtype == "float64":
        out += [Case("softmax", dtype, "gradcheck", cfg, functools.partial(_xent_gradcheck, cfg=cfg))
                for cfg in SOFTMAX_FD_CONFIGS]
    return out
