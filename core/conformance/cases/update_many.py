"""update_many: every parameter updated in one call matches the one-at-a-time reference,
scalars read from the device array ``hyper``; grads and hyper stay as they were."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance import reference as ref
from genrecnn.conformance.checks import CheckFailed, compare_step, device, output
from genrecnn.conformance.cases.common import Case, normal

# shapes: one of a single element, ones past a thread block, and (in "many") more
# parameters than one launch of a CUDA backend takes (32)
SHAPES = {"few": [(3,), (7, 5), (70, 1100), (1,)],
          "many": [(i % 5 + 1, 17) for i in range(40)] + [(300,)]}
SGD = dict(lr=0.05, momentum=0.9, weight_decay=1e-3)
ADAM = dict(step=3, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-3,
            decoupled_weight_decay=0.02)


def _hyper(method: str) -> list[float]:
    if method == "sgd_update_many":
        return [SGD["lr"], SGD["momentum"], SGD["weight_decay"]]
    a = ADAM
    return [a["lr"], a["beta1"], a["beta2"], a["eps"], a["weight_decay"],
            a["decoupled_weight_decay"], 1 - a["beta1"] ** a["step"], 1 - a["beta2"] ** a["step"]]


def _update_many(be, dtype, rng, method, shapes):
    slots = ("velocity",) if method == "sgd_update_many" else ("m", "v")
    host = [{"param": normal(rng, s, dtype), "grad": normal(rng, s, dtype),
             **{k: (np.abs if k == "v" else np.asarray)(normal(rng, s, dtype, 0.1)) for k in slots}}
            for s in shapes]
    dev = [{k: device(be, v) for k, v in h.items()} for h in host]
    hyper_host = np.asarray(_hyper(method), dtype=dtype)
    hyper = device(be, hyper_host)
    ret = getattr(be, method)([d["param"] for d in dev], [d["grad"] for d in dev],
                              *([d[k] for d in dev] for k in slots), hyper)
    if ret is not None:
        raise CheckFailed(f"{method} returned {type(ret).__name__}; it must update in place")
    if not np.array_equal(be.to_host(hyper), hyper_host):
        raise CheckFailed(f"{method} modified its input 'hyper'")
    err = 0.0
    one = ref.sgd_update if method == "sgd_update_many" else ref.adam_update
    kw = SGD if method == "sgd_update_many" else ADAM
    for i, (h, d) in enumerate(zip(host, dev)):
        if not np.array_equal(be.to_host(d["grad"]), h["grad"]):
            raise CheckFailed(f"{method} modified grad #{i}")
        want = one(h["param"], h["grad"], *(h[k] for k in slots), **kw)
        for name, w in zip(("param", *slots), want):
            got = output(be, d[name], f"{method} {name} #{i}", h[name].shape, dtype)
            err = max(err, compare_step(f"{method} {name} #{i} of {len(shapes)}", got,
                                        h[name], w, dtype))
    return err


def update_many_cases(dtype):
    return [Case("update_many", dtype, "inplace", f"{method}-{label}",
                 functools.partial(_update_many, method=method, shapes=shapes))
            for method in ("sgd_update_many", "adam_update_many")
            for label, shapes in SHAPES.items()]
