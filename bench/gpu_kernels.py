"""Where a training step's GPU time goes, kernel by kernel: genrecnn's eager steps
(graphs off, so each kernel is seen) recorded by CUPTI through ``torch.profiler``.

    python bench/gpu_kernels.py [--arch cnn2d] [--frames 256] [--batch 32]
        [--backend cupy] [--rows 22]

Prints the GPU milliseconds of one step and the kernels that take most of it
(microseconds per step, calls per step). PyTorch is only the recorder here.
"""
from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="cnn2d")
    ap.add_argument("--mels", type=int, default=128)
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--backend", default="cupy")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rows", type=int, default=22)
    args = ap.parse_args()
    import torch
    from torch.profiler import ProfilerActivity, profile

    from genrecnn.engine.architectures import build_network, load_architecture
    from genrecnn.engine.batches import plan_epoch
    from genrecnn.run.settings import TrainSettings
    from genrecnn.engine.items import ArrayItems
    from genrecnn.engine.steps import StepRunner

    shape = (args.mels, args.frames)
    net = build_network(load_architecture(args.arch), shape, 10, seed=0)
    net.place(args.backend)
    settings = TrainSettings(arch=args.arch, batch_size=args.batch, optimizer="adamw", lr=1e-4)
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
    print(f"{args.backend} {args.arch}, batch {args.batch}, input {shape[0]} x {shape[1]}: "
          f"{total / steps / 1e3:.3f} ms of kernels per step")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:args.rows]:
        print(f"  {e.self_device_time_total / steps:8.1f} us  x{e.count // steps:<3d} {e.key[:90]}")


if __name__ == "__main__":
    main()
