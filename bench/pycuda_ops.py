"""Micro-benchmark: the PyCUDA backend's kernels against the NumPy backend.

Times each op (forward + backward) at the dissertation's network sizes, batch
32 by default: the first convolution x[32, 128, 1292] * w[256, 128, 4], the
pooling after it, global pooling and the 2048-unit dense layer. Device inputs
are made once; GPU times include ``synchronize()`` and are the median of
``--repeat`` runs after one warm-up (which also compiles the kernels).

    python bench/pycuda_ops.py [--batch 32] [--dtype float32] [--repeat 20] [--json]
    python bench/pycuda_ops.py --network cangea2016 [--frames 1292]   # whole train steps

``--network`` times one training step (forward, loss, backward, Adam update) of a
built-in architecture on 128-band input on each backend instead.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.optim import Adam
from genrecnn.engine.registry import get_backend


def median_seconds(fn, sync, repeat: int) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cases(n: int, dtype: str, rng):
    """(name, shape label, host inputs, function of (backend, device inputs))."""
    def normal(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x1, w1 = normal(n, 128, 1292), normal(256, 128, 4) * 0.05
    yield ("conv1d fwd", "x[N,128,1292] w[256,128,4]", (x1, w1, normal(256)),
           lambda be, x, w, b: be.conv1d(x, w, b))
    yield ("conv1d bwd", "x[N,128,1292] w[256,128,4]", (x1, w1, normal(n, 256, 1289)),
           lambda be, x, w, dy: be.conv1d_backward(x, w, dy))
    yield ("conv1d fwd+bwd", "x[N,128,1292] w[256,128,4]", (x1, w1, normal(256), normal(n, 256, 1289)),
           lambda be, x, w, b, dy: (be.conv1d(x, w, b), be.conv1d_backward(x, w, dy)))
    xp = normal(n, 256, 1289)

    def pool(be, x):
        y, arg = be.maxpool1d(x, 4, 4)
        return be.maxpool1d_backward(y, arg, 1289)
    yield ("maxpool1d fwd+bwd", "x[N,256,1289] size 4", (xp,), pool)

    def pool_overlap(be, x):
        y, arg = be.maxpool1d(x, 4, 2)
        return be.maxpool1d_backward(y, arg, 1289)
    yield ("maxpool1d overlap fwd+bwd", "x[N,256,1289] size 4 stride 2", (xp,), pool_overlap)
    xg = normal(n, 512, 157)

    def gpool(be, x):
        y, arg = be.global_pool(x)
        return be.global_pool_backward(x, y, arg, y)
    yield ("global_pool fwd+bwd", "x[N,512,157]", (xg,), gpool)
    xd, wd = normal(n, 1536), normal(1536, 2048) * 0.03
    yield ("dense fwd+bwd", "x[N,1536] w[1536,2048]", (xd, wd, normal(2048), normal(n, 2048)),
           lambda be, x, w, b, dy: (be.dense(x, w, b), be.dense_backward(x, w, dy)))
    xa = normal(n, 256, 1289)
    yield ("relu fwd+bwd", "x[N,256,1289]", (xa,),
           lambda be, x: be.activation_backward("relu", x, x, x))


def train_step_seconds(backend: str, arch: str, batch: int, frames: int, dtype: str,
                       repeat: int) -> float:
    """Median seconds of loss_and_grads + Adam step with every layer on ``backend``."""
    net = build_network(load_architecture(arch), (128, frames), 10, dtype=dtype, seed=0)
    net.place(backend)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 128, frames)).astype(dtype)
    y = rng.integers(0, 10, batch)
    opt = Adam(lr=1e-3)

    def step():
        net.loss_and_grads(x, y)
        opt.step(net)
    return median_seconds(step, get_backend(backend).synchronize, repeat)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--network", metavar="ARCH", help="time whole train steps of ARCH")
    parser.add_argument("--frames", type=int, default=1292, help="input frames for --network")
    args = parser.parse_args(argv)
    if args.network:
        t = {b: train_step_seconds(b, args.network, args.batch, args.frames, args.dtype,
                                   max(2, args.repeat // (10 if b == "numpy" else 1)))
             for b in ("numpy", "pycuda")}
        print(f"train step {args.network} batch {args.batch} x [128, {args.frames}] "
              f"{args.dtype}: numpy {t['numpy'] * 1e3:.1f} ms, pycuda {t['pycuda'] * 1e3:.2f} ms, "
              f"speed-up {t['numpy'] / t['pycuda']:.1f}x")
        return
    npb, gpu = get_backend("numpy"), get_backend("pycuda")
    rng = np.random.default_rng(0)
    rows = []
    for name, label, host, fn in cases(args.batch, args.dtype, rng):
        dev = [gpu.from_host(a) for a in host]
        t_np = median_seconds(lambda: fn(npb, *host), lambda: None, max(3, args.repeat // 5))
        t_gpu = median_seconds(lambda: fn(gpu, *dev), gpu.synchronize, args.repeat)
        rows.append({"op": name, "shape": label.replace("N", str(args.batch), 1),
                     "dtype": args.dtype, "numpy_ms": t_np * 1e3, "pycuda_ms": t_gpu * 1e3,
                     "speedup": t_np / t_gpu})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'op':<28}{'shape':<34}{'numpy ms':>10}{'pycuda ms':>11}{'speed-up':>10}")
    for r in rows:
        print(f"{r['op']:<28}{r['shape']:<34}{r['numpy_ms']:>10.2f}{r['pycuda_ms']:>11.3f}"
              f"{r['speedup']:>9.1f}x")


if __name__ == "__main__":
    main()
