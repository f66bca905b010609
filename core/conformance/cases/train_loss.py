"""train_loss: the mixup cross-entropy and credit accumulated in place into ``stats``
(twice, to see it add up), finite for huge logits; with lam 1 it is plain cross-entropy;
with label smoothing eps (passed as ``smoothing=`` only where it is not 0) against the
targets ``(1 - eps) (lam onehot(a) + (1 - lam) onehot(b)) + eps / K``."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance import reference as ref_seq
from genrecnn.conformance import reference_maps as ref
from genrecnn.conformance.cases.common import Case, normal, random_labels
from genrecnn.conformance.cases.softmax import HUGE
from genrecnn.conformance.cases.support import call_in_place, seeded
from genrecnn.conformance.checks import call, compare, device, gradcheck, output

# (N, K, lam, logits, label smoothing): lam "mixed" is uniform in [0, 1]; "ties" rows
# have equal maxima
LOSS_CONFIGS = [(1, 1, "one", "normal", 0.0), (4, 10, "mixed", "normal", 0.0),
                (5, 3, "one", "normal", 0.0), (5, 4, "zero", "normal", 0.0),
                (6, 5, "mixed", "ties", 0.0), (5, 3, "one", "huge", 0.0),
                (5, 3, "mixed", "huge", 0.0), (300, 10, "mixed", "normal", 0.0),
                (5, 1100, "mixed", "normal", 0.0),      # more rows / classes than a GPU block
                (1, 1, "one", "normal", 0.1), (4, 10, "mixed", "normal", 0.1),
                (5, 3, "one", "normal", 0.2), (6, 5, "mixed", "ties", 0.1),
                (5, 3, "mixed", "huge", 0.1), (300, 10, "mixed", "normal", 0.05),
                (5, 1100, "mixed", "normal", 0.3)]
LOSS_FD_CONFIGS = [(4, 10, "mixed", "normal", 0.0), (5, 3, "one", "normal", 0.0),
                   (4, 10, "mixed", "normal", 0.1)]


def _label(cfg):
    n, k, lam, logits, eps = cfg
    return (f"N{n}K{k}-lam{lam}" + ("" if logits == "normal" else f"-{logits}")
            + (f"-smoothing{eps:g}" if eps else ""))


def _smoothing(cfg) -> dict:
    """The keyword the op gets: none where eps is 0 (as the network calls it)."""
    return {"smoothing": cfg[4]} if cfg[4] else {}


@seeded
def _data(rng, cfg, dtype):
    n, k, lams, kind, eps = cfg
    if kind == "huge":
        z = HUGE.astype(dtype)
    elif kind == "ties":
        z = rng.integers(-1, 2, size=(n, k)).astype(dtype)      # many equal maxima
    else:
        z = normal(rng, (n, k), dtype, 3.0)
    a, b = random_labels(rng, n, k), random_labels(rng, n, k)
    if kind == "huge":
        a, b = np.array([1, 0, 2, 0, 2], np.int32), np.array([2, 2, 0, 1, 0], np.int32)
    b[-1] = a[-1]                                                 # both labels alike
    lam = {"one": np.ones(n), "zero": np.zeros(n), "mixed": rng.random(n)}[lams].astype(dtype)
    stats = np.array([3.5, 2.0], dtype=dtype)
    probs, once = ref.softmax_cross_entropy_acc(z, a, b, lam, stats, eps)
    _, twice = ref.softmax_cross_entropy_acc(z, a, b, lam, once, eps)
    return {"logits": z, "a": a, "b": b, "lam": lam, "stats": stats, "probs": probs,
            "once": once, "twice": twice,
            "grad": ref.softmax_cross_entropy_acc_backward(probs.astype(dtype), a, b, lam, eps)}


def _accumulate(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    args = {"logits": device(be, d["logits"]), "labels_a": device(be, d["a"]),
            "labels_b": device(be, d["b"]), "lam": device(be, d["lam"]),
            "stats": device(be, d["stats"])}
    probs, err = call_in_place(be, "softmax_cross_entropy_acc", args, {"stats": d["once"]},
                               dtype, returns_none=False, keywords=_smoothing(cfg))
    err = max(err, compare("softmax_cross_entropy_acc probs",
                           output(be, probs, "probs", d["logits"].shape, dtype), d["probs"],
                           dtype))
    be.softmax_cross_entropy_acc(*args.values(), **_smoothing(cfg))
    stats = output(be, args["stats"], "stats after a second call", (2,), dtype)
    err = max(err, compare("softmax_cross_entropy_acc stats after a second call (+=)", stats,
                           d["twice"], dtype))
    if cfg[2] == "one" and not cfg[4]:   # lam 1: the summed loss is N times cross-entropy
        plain, _ = ref_seq.softmax_cross_entropy(d["logits"], d["a"])
        err = max(err, compare("softmax_cross_entropy_acc loss with lam 1 (N x cross-entropy)",
                               (stats[0] - d["stats"][0]) / 2, len(d["a"]) * plain, dtype))
    return err


def _backward(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    g = call(be, "softmax_cross_entropy_acc_backward", device(be, d["probs"].astype(dtype)),
             device(be, d["a"]), device(be, d["b"]), device(be, d["lam"]), **_smoothing(cfg))
    return compare("softmax_cross_entropy_acc_backward", output(be, g, "dlogits",
                                                                d["logits"].shape, dtype),
                   d["grad"], dtype)


def _gradcheck(be, dtype, rng, cfg):
    d = _data(cfg, dtype)
    labels = [device(be, d[k]) for k in ("a", "b", "lam")]

    kw = _smoothing(cfg)

    def loss(logits):
        stats = be.zeros((2,), dtype)
        be.softmax_cross_entropy_acc(device(be, logits), *labels, stats, **kw)
        return float(be.to_host(stats)[0]) / len(logits)

    probs = be.softmax_cross_entropy_acc(device(be, d["logits"]), *labels, be.zeros((2,), dtype),
                                         **kw)
    g = be.to_host(be.softmax_cross_entropy_acc_backward(probs, *labels, **kw))
    return gradcheck(loss, {"logits": d["logits"]}, {"logits": g}, rng)


def train_loss_cases(dtype):
    def cases(check, fn, cfgs):
        return [Case("train_loss", dtype, check, _label(c), functools.partial(fn, cfg=c))
                for c in cfgs]
    out = cases("accumulate", _accumulate, LOSS_CONFIGS) + cases("backward", _backward,
                                                                  LOSS_CONFIGS)
    if dtype == "float64":
        out += cases("gradcheck", _gradcheck, LOSS_FD_CONFIGS)
    return out
