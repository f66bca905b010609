"""Where a training step's GPU time goes, kernel by kernel: genrecnn's eager steps
(graphs off, so each kernel is seen) recorded by CUPTI through ``torch.profiler``.

    python bench/gpu_kernels.py [--arch cnn2d] [--frames 256] [--batch 32]
        [--backend cupy] [--rows 22] [--precision fp32] [--fused-op] [--implicit]

Prints the GPU milliseconds of one step and the kernels that take most of it
(microseconds per step, calls per step), with the products at ``--precision``.
PyTorch is only the recorder here.

``--fused-op`` instead times the ``fused`` op group (batch norm + ReLU + max pooling)
at every fused block of the network against :class:`ComposedFusedOps` (the backend's
own batch-norm, max-pool and ReLU ops) on the same backend and inputs, training
forward and backward, and prints how far their outputs differ (no PyTorch needed).

``--implicit`` times every conv2d and dense layer of the network at its shapes: the
backend's own fp32 op (im2col and cuBLAS on CuPy, im2col and gemm.cu on PyCUDA) against
mma.cu's implicit GEMMs (``cuda_kernels/lowp.py``) at fp32, tf32 and bf16, forward and
backward (all three gradients), with each one's distance from the backend's fp32 result:
the evidence for routing fp32 through the implicit kernels too (no PyTorch needed). A
one-channel conv2d runs conv2d_c1.cu at every precision (``cuda_kernels/direct.py``), so
its row compares that kernel with and without rounded operands.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _us(be, fn, reps: int, rounds: int = 5) -> float:
    """Median over rounds of the microseconds one call of ``fn`` takes (synchronised)."""
    fn()
    times = []
    for _ in range(rounds):
        be.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        be.synchronize()
        times.append((time.perf_counter() - start) / reps * 1e6)
    return statistics.median(times)


def _gap(be, got, want) -> float:
    """max |got - want| over max |want|."""
    got, want = be.to_host(got).astype(np.float64), be.to_host(want).astype(np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def fused_op(args) -> None:
    """The fused op against its composition at each fused block's input shape."""
    from genrecnn.engine.architectures import build_network, load_architecture
    from genrecnn.engine.blocks import NormReluPool
    from genrecnn.engine.ops.fused import ComposedFusedOps as Composed

    net = build_network(load_architecture(args.arch), (args.mels, args.frames), 10, seed=0)
    net.place(args.backend)
    rng = np.random.default_rng(0)
    print(f"{args.backend} {args.arch}, batch {args.batch}, input {args.mels} x {args.frames}: "
          f"fused op against the composition, us per call (median)")
    for block, be in net._units():
        if not isinstance(block, NormReluPool):
            continue
        c = block.norm.input_shape[0]
        shape = (args.batch, *block.norm.input_shape)
        size, stride, eps = block.pool.size, block.pool.stride, block.norm.eps
        z = be.from_host(rng.standard_normal(shape, dtype=np.float32))
        gamma = be.from_host((0.5 + rng.random(c)).astype(np.float32))
        beta = be.from_host(rng.standard_normal(c, dtype=np.float32))
        row = []
        outs = {}
        for name, ops in (("fused", type(be)), ("composed", Composed)):
            def train(ops=ops):
                return ops.norm_relu_maxpool2d_train(be, z, gamma, beta, eps, size, stride)
            p, am, mean, invstd = train()
            dp = be.from_host(np.random.default_rng(1).standard_normal(
                tuple(p.shape), dtype=np.float32))

            def backward(ops=ops, p=p, am=am, mean=mean, invstd=invstd, dp=dp):
                return ops.norm_relu_maxpool2d_backward(be, z, gamma, mean, invstd, am, p, dp,
                                                        size, stride)
            outs[name] = (p, backward()[0])
            row += [_us(be, train, args.reps), _us(be, backward, args.reps)]
        gaps = [_gap(be, f, o) for f, o in zip(outs["fused"], outs["composed"])]
        print(f"  z {'x'.join(map(str, shape))}: forward {row[0]:7.1f} against {row[2]:7.1f}, "
              f"backward {row[1]:7.1f} against {row[3]:7.1f} "
              f"(p differs by {gaps[0]:.1e}, dz by {gaps[1]:.1e} of their largest)")


def implicit(args) -> None:
    """The backend's fp32 products against lowp's implicit GEMMs at every precision."""
    from genrecnn.engine.architectures import build_network, load_architecture
    from genrecnn.engine.layers.maps import Conv2D
    from genrecnn.engine.layers.sequence import Dense

    net = build_network(load_architecture(args.arch), (args.mels, args.frames), 10, seed=0)
    net.place(args.backend)
    be = net.backends[0]
    rng = np.random.default_rng(0)

    def arr(shape):
        return be.from_host(rng.standard_normal(shape, dtype=np.float32))

    print(f"{args.backend} {args.arch}, batch {args.batch}: us per call (median), forward / "
          f"backward; own = the backend's fp32 op, then mma.cu at fp32 / tf32 / bf16")
    for layer in net.layers:
        if isinstance(layer, Conv2D):
            conv = (layer.stride, layer.padding)
            fwd, bwd = "conv2d", "conv2d_backward"
        elif isinstance(layer, Dense):
            conv = ()
            fwd, bwd = "dense", "dense_backward"
        else:
            continue
        x = arr((args.batch, *layer.input_shape))
        w, b = arr(tuple(layer.params["w"].shape)), arr(tuple(layer.params["b"].shape))
        dy = arr(tuple(getattr(be, fwd)(x, w, b, *conv).shape))
        runs = {"own": (lambda: getattr(be, fwd)(x, w, b, *conv),
                        lambda: getattr(be, bwd)(x, w, dy, *conv))}
        for p in ("fp32", "tf32", "bf16"):
            runs[p] = (lambda p=p: getattr(be, f"_lp_{fwd}")(x, w, b, *conv, p),
                       lambda p=p: getattr(be, f"_lp_{bwd}")(x, w, dy, *conv, p))
        own_y, own_grads = runs["own"][0](), runs["own"][1]()
        cells = []
        for name, (forward, backward) in runs.items():
            times = f"{_us(be, forward, args.reps):8.1f} / {_us(be, backward, args.reps):8.1f}"
            if name != "own":
                gap = max([_gap(be, forward(), own_y)]
                          + [_gap(be, g, o) for g, o in zip(backward(), own_grads)])
                times += f" ({gap:.0e})"
            cells.append(f"{name} {times}")
        print(f"  {layer.name} x {'x'.join(map(str, x.shape))}: " + ", ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="cnn2d")
    ap.add_argument("--mels", type=int, default=128)
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--backend", default="cupy")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rows", type=int, default=22)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"),
                    help="of the conv and dense products in the step breakdown")
    ap.add_argument("--fused-op", action="store_true",
                    help="time the fused op against its composition at each fused block")
    ap.add_argument("--implicit", action="store_true",
                    help="time the backend's fp32 products against mma.cu's implicit GEMMs")
    ap.add_argument("--reps", type=int, default=50,
                    help="calls per round (--fused-op, --implicit)")
    args = ap.parse_args()
    if args.fused_op or args.implicit:
        (fused_op if args.fused_op else implicit)(args)
        return
    import torch
    from torch.profiler import ProfilerActivity, profile

    from genrecnn.engine.architectures import build_network, load_architecture
    from genrecnn.engine.batches import plan_epoch
    from genrecnn.run.settings import TrainSettings
    from genrecnn.engine.items import ArrayItems
    from genrecnn.engine.steps import StepRunner

    shape = (args.mels, args.frames)
    net = build_network(load_architecture(args.arch), shape, 10, seed=0,
                        precision=args.precision)
    net.place(args.backend)
    settings = TrainSettings(arch=args.arch, batch_size=args.batch, optimizer="adamw", lr=1e-4,
                             precision=args.precision)
    m = args.batch * args.steps
    x = np.random.default_rng(0).random((m, *shape), dtype=np.float32)
    runner = StepRunner(net, settings.make_optimizer(), ArrayItems(x, np.arange(m) % 10),
                        settings, graphs=False)
    plans = plan_epoch(m, args.mels, args.frames, args.frames, settings,
                       np.random.default_rng(0))
    runner.run_epoch(plans, [1e-4] * len(plans))          # compile and warm up
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        runner.run_epoch(plans, [1e-4] * len(plans))
        torch.cuda.synchronize()
    runner.close()
    events = list(prof.key_averages())
    steps = len(plans)
    total = sum(e.self_device_time_total for e in events)
    print(f"{args.backend} {args.arch} at {args.precision}, batch {args.batch}, input "
          f"{shape[0]} x {shape[1]}: {total / steps / 1e3:.3f} ms of kernels per step")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:args.rows]:
        print(f"  {e.self_device_time_total / steps:8.1f} us  x{e.count // steps:<3d} {e.key[:90]}")


if __name__ == "__main__":
    main()
