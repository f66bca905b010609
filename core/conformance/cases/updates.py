"""In-place updates: SGD with momentum and Adam change param and state, never grad;
each array's step (new - old) is judged against the reference's step."""
from __future__ import annotations

import functools

import numpy as np

from genrecnn.conformance import reference as ref
from genrecnn.conformance.checks import CheckFailed, compare_step, device, output
from genrecnn.conformance.cases.common import Case, normal


def _update(be, dtype, rng, method, shape, hyper):
    """Run an update op on device state; check it changed param/state in place per the formula."""
    names = {"sgd_update": ("param", "velocity"), "adam_update": ("param", "m", "v")}[method]
    host = {"param": normal(rng, shape, dtype), "grad": normal(rng, shape, dtype)}
    for name in names[1:]:
        host[name] = normal(rng, shape, dtype, 0.1)
    if "v" in host:
        host["v"] = np.abs(host["v"])
    dev = {k: device(be, v) for k, v in host.items()}
    grad_before = host["grad"].copy()
    args = [dev[n] for n in names[:1]] + [dev["grad"]] + [dev[n] for n in names[1:]]
    ret = getattr(be, method)(*args, *hyper.values())   # positional, as optimisers call
    if ret is not None:
        raise CheckFailed(f"{method} returned {type(ret).__name__}; it must update in place and "
                          f"return None")
    if not np.array_equal(be.to_host(dev["grad"]), grad_before):
        raise CheckFailed(f"{method} modified its input 'grad'")
    expected = getattr(ref, method)(*(host[n] for n in names[:1]), host["grad"],
                                    *(host[n] for n in names[1:]), **hyper)
    err = 0.0
    for name, want in zip(names, expected):
        got = output(be, dev[name], f"{method} {name}", shape, dtype)
        if np.array_equal(got, host[name]) and not np.array_equal(want, host[name]):
            raise CheckFailed(f"{method} did not change {name!r} in place (it is unchanged)",
                              float("inf"))
        err = max(err, compare_step(f"{method} {name} (in place)", got, host[name], want, dtype))
    return err


SGD_CONFIGS = [((3,), dict(lr=0.1, momentum=0.9, weight_decay=0.0)),
               ((70, 1100), dict(lr=0.01, momentum=0.9, weight_decay=1e-4)),
               ((4, 5), dict(lr=0.05, momentum=0.0, weight_decay=1e-3)),
               ((2, 3, 4), dict(lr=0.01, momentum=0.9, weight_decay=0.1))]
ADAM_CONFIGS = [((3,), dict(step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)),
                ((70, 1100), dict(step=2, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                                  weight_decay=1e-4)),
                ((4, 5), dict(step=7, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8,
                              weight_decay=0.01)),
                ((2, 3, 4), dict(step=3, lr=0.1, beta1=0.8, beta2=0.99, eps=1e-6,
                                 weight_decay=0.0)),
                ((5, 6), dict(step=4, lr=3e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                              weight_decay=0.0, decoupled_weight_decay=0.01))]   # AdamW


def _hyper_label(shape, hyper):
    return "x".join(map(str, shape)) + "-" + ",".join(f"{k}={v:g}" for k, v in hyper.items())


def sgd_cases(dtype):
    return [Case("sgd_update", dtype, "inplace", _hyper_label(s, h),
                 functools.partial(_update, method="sgd_update", shape=s, hyper=h))
            for s, h in SGD_CONFIGS]


def adam_cases(dtype):
    return [Case("adam_update", dtype, "inplace", _hyper_label(s, h),
                 functools.partial(_update, method="adam_update", shape=s, hyper=h))
            for s, h in ADAM_CONFIGS]
