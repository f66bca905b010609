"""One training step of the dissertation's network on the CPU: genrecnn's NumPy
backend side by side with the same network in PyTorch, on the same threads.

    python bench/cpu_train_step.py [--batch 32] [--frames 1292] [--reps 5] [--arch cangea2016]

Prints the median step time of each and the ratio of throughputs
(numpy / torch; 1.0 means as fast as PyTorch's CPU path).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.optim import SGD


def time_steps(step, reps: int) -> list[float]:
    step()                                   # warm-up: allocations, thread pools
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        out.append(time.perf_counter() - t0)
    return out


def genrecnn_step(arch, x, y, n_classes):
    net = build_network(load_architecture(arch), x.shape[1:], n_classes, seed=0)
    net.place("numpy")
    opt = SGD(lr=0.01, momentum=0.9)

    def step():
        net.loss_and_grads(x, y)
        opt.step(net)
    return step


def torch_step(arch_layers, x, y, n_classes):
    import torch
    from torch import nn

    class GlobalPool(nn.Module):
        def forward(self, h):
            return torch.cat([h.mean(2), h.amax(2), h.pow(2).sum(2).sqrt()], 1)

    mods, c = [], x.shape[1]
    flat = None
    for cfg in arch_layers:
        t = cfg["type"]
        if t == "conv":
            mods.append(nn.Conv1d(c, cfg["filters"], cfg["width"]))
            c = cfg["filters"]
        elif t == "pool":
            mods.append(nn.MaxPool1d(cfg["size"], cfg.get("stride") or cfg["size"]))
        elif t == "gpool":
            mods.append(GlobalPool())
            flat = 3 * c
        elif t == "fc":
            units = n_classes if cfg["units"] == "classes" else cfg["units"]
            mods.append(nn.Linear(flat, units))
            flat = units
        elif t == "act":
            mods.append({"relu": nn.ReLU(), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(),
                         "leaky_relu": nn.LeakyReLU(cfg.get("slope", 0.01))}[cfg["fn"]])
    model = nn.Sequential(*mods)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="cangea2016")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frames", type=int, default=1292)
    ap.add_argument("--mels", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, args.mels, args.frames), dtype=np.float32)
    y = rng.integers(0, 10, args.batch).astype(np.int32)
    layers = load_architecture(args.arch)
    print(f"one SGD step, {args.arch}, input {args.mels} x {args.frames}, batch {args.batch}, "
          f"float32, {os.cpu_count()} cores, median of {args.reps}")

    results = {"numpy": time_steps(genrecnn_step(args.arch, x, y, 10), args.reps)}
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
        results["torch"] = time_steps(torch_step(layers, x, y, 10), args.reps)
    except ImportError:
        print("PyTorch not installed: numpy only")
    for name, ts in results.items():
        med = statistics.median(ts)
        print(f"  {name:<6} {med * 1000:9.1f} ms/step  {args.batch / med:8.1f} examples/s  "
              f"(min {min(ts) * 1000:.1f}, max {max(ts) * 1000:.1f})")
    if "torch" in results:
        ratio = statistics.median(results["torch"]) / statistics.median(results["numpy"])
        print(f"numpy/torch throughput ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
