"""One Adam training step of the dissertation's network on the CPU: genrecnn's
NumPy backend side by side with the same network in PyTorch, on the same threads.

    python bench/cpu_train_step.py [--threads N] [--batch 32] [--frames 1292]
        [--reps 20] [--arch cangea2016] [--no-layers] [--unfused]

A step is: cut a batch from a training set held in memory (``--pool`` batches' worth
of examples), forward, loss, backward and the Adam update, in float32, with the same
batches, labels and initial weights on both sides. Ours is what ``genrecnn train``
runs (:class:`genrecnn.engine.steps.StepRunner`: the batch gathered by index from the
set, which was checked once at load time; the loss kept until the epoch ends);
PyTorch indexes the same batch out of the same set. The two alternate step by step
(who goes first alternates too), so load from other processes hits both alike.
Prints the median step time of each with its spread, the throughput ratio
numpy / torch (1.0: as fast as PyTorch's CPU path), and then where a step's
time goes: forward and backward of every layer, ours beside PyTorch's.

``--unfused`` also times the same network with every batchnorm -> relu -> pool2d run
as three layers instead of one fused op (``Network.fuse = False``), interleaved with the
rest: the fused block's gain, before and after in one run.

``--threads N`` sets NumPy's BLAS threads, the NumPy backend's thread pool and
``torch.set_num_threads`` to N (default: the cores this process may use). To
measure on N cores of a larger machine, pin the process too:
``taskset -c 0-15 python bench/cpu_train_step.py --threads 16``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from genrecnn.backends.numpy_backend import parallel
from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.optim import Adam
from genrecnn.engine.batches import plan_epoch
from genrecnn.run.settings import TrainSettings
from genrecnn.engine.items import ArrayItems
from genrecnn.engine.steps import StepRunner

sys.path.insert(0, str(Path(__file__).parent))
from torch_twin import twin  # noqa: E402

LR = 1e-3


def limit_threads(n: int, torch) -> list:
    """Every thread pool a step uses, set to ``n``; returns what must stay alive."""
    from threadpoolctl import threadpool_limits
    parallel.set_threads(n)
    keep = [threadpool_limits(n, user_api="blas")]
    if torch is not None:
        torch.set_num_threads(n)
    return keep


def thread_report(torch) -> str:
    from threadpoolctl import threadpool_info
    blas = ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info()
                     if i["user_api"] == "blas")
    out = f"threads: numpy backend {parallel.threads()}, BLAS ({blas})"
    if torch is not None:
        out += f", torch {torch.get_num_threads()}"
    return out + f"; {parallel.cores()} cores in this process's affinity"


# -- ours ---------------------------------------------------------------------------------

def numpy_model(arch: str, shape, n_classes: int):
    net = build_network(load_architecture(arch), shape, n_classes, seed=0)
    net.place("numpy")
    return net, Adam(lr=LR)


def numpy_step(net, opt, data, labels, plans, batch: int):
    """The trainer's step (StepRunner's resident path), one plan after another."""
    runner = StepRunner(net, opt, ArrayItems(data, labels),
                        TrainSettings(batch_size=batch, lr=LR))
    k = iter(range(1 << 30))

    def step():
        runner.run_epoch([plans[next(k) % len(plans)]], [LR])
    return step


def numpy_layers(net, opt, data, labels, plans) -> dict[str, list[float]]:
    """One step layer by layer (what StepRunner does on one backend): name ->
    [forward s, backward s]; 'gather' cuts the batch out of the set."""
    be, plan = net.backends[0], plans[0]
    t, now = {}, time.perf_counter
    t0 = now()
    h, lab = be.gather_batch(data, labels, plan.index, plan.start, data.shape[2])
    h = be.reshape(h, (len(lab), *net.layers[0].input_shape))   # [N, 1, mels, frames] in 2-D
    t["gather"] = [now() - t0, 0.0]
    for layer in net.layers[:-1]:
        t0 = now()
        h = layer.forward(be, h, True)
        t[layer.name] = [now() - t0, 0.0]
    out = net.layers[-1]
    t0 = now()
    out.forward_loss(be, h, lab)
    t1 = now()
    g = out.backward(be)
    t[out.name] = [t1 - t0, now() - t1]
    for layer in reversed(net.layers[:-1]):
        t0 = now()
        g = layer.backward(be, g)
        t[layer.name][1] = now() - t0
    t0 = now()
    opt.step(net)
    t["adam update"] = [0.0, now() - t0]
    return t


def add_unfused(steps: dict, args, data, labels, plans) -> None:
    """The same network (same seed) with its blocks run as separate layers."""
    net, opt = numpy_model(args.arch, data.shape[1:], args.classes)
    net.fuse = False
    steps["unfused"] = numpy_step(net, opt, data, labels, plans, args.batch)


def print_ratios(times: dict) -> None:
    if "unfused" in times:
        ratio = statistics.median(times["unfused"]) / statistics.median(times["numpy"])
        print(f"fused block speed-up (unfused / fused step time): {ratio:.2f}")
    if "torch" not in times:
        return
    paired = [t / n for t, n in zip(times["torch"], times["numpy"])]
    q1, q3 = np.percentile(paired, [25, 75])
    ratio = statistics.median(times["torch"]) / statistics.median(times["numpy"])
    print(f"numpy/torch throughput ratio: {ratio:.2f} (of medians); step by step "
          f"median {statistics.median(paired):.2f}, p25 {q1:.2f}, p75 {q3:.2f}")


# -- PyTorch ------------------------------------------------------------------------------

def torch_step(model, opt, data, labels, index, torch):
    loss_fn = torch.nn.CrossEntropyLoss()
    k = iter(range(1 << 30))

    def step():
        idx = index[next(k) % len(index)]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(data[idx]), labels[idx]).backward()
        opt.step()
    return step


def torch_layers(names, model, opt, data, labels, index, torch) -> dict[str, list[float]]:
    """One step module by module, each input cut from the graph so that every
    backward is timed alone; the first layer's input needs no gradient."""
    t, now = {}, time.perf_counter
    t0 = now()
    xt, yt = data[index[0]], labels[index[0]]
    t["gather"] = [now() - t0, 0.0]
    opt.zero_grad(set_to_none=True)
    ins, outs, h = [], [], xt
    for i, (name, m) in enumerate(zip(names, model)):
        h = h.detach().requires_grad_(i > 0)
        t0 = now()
        out = m(h)
        t[name] = [now() - t0, 0.0]
        ins.append(h)
        outs.append(out)
        h = out
    logits = h.detach().requires_grad_(True)
    t0 = now()
    loss = torch.nn.functional.cross_entropy(logits, yt)
    t1 = now()
    loss.backward()
    t["softmax"] = [t1 - t0, now() - t1]
    g = logits.grad
    for name, inp, out in zip(reversed(names), reversed(ins), reversed(outs)):
        t0 = now()
        out.backward(g)
        t[name][1] = now() - t0
        g = inp.grad
    t0 = now()
    opt.step()
    t["adam update"] = [0.0, now() - t0]
    return t


# -- measuring ------------------------------------------------------------------------------

def interleaved(calls: dict, reps: int) -> dict[str, list]:
    """Call each of ``calls`` once per round, alternating who goes first; two
    untimed rounds first (allocations, thread pools). name -> results or seconds."""
    names = list(calls)
    out = {name: [] for name in names}
    for r in range(reps + 2):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            res = calls[name]()
            if r >= 2:
                out[name].append(time.perf_counter() - t0 if res is None else res)
    return out


def spread(ts: list[float]) -> str:
    q1, q3 = np.percentile(ts, [25, 75])
    return (f"median {statistics.median(ts) * 1e3:7.1f} ms  (p25 {q1 * 1e3:.1f}, p75 "
            f"{q3 * 1e3:.1f}, min {min(ts) * 1e3:.1f}, max {max(ts) * 1e3:.1f})")


def print_layers(results: dict[str, list[dict]]) -> None:
    """Median forward and backward per layer, for each side, and the sums."""
    sides = list(results)
    names = list(results[sides[0]][0])
    med = {s: {n: [statistics.median(r[n][i] for r in results[s]) for i in (0, 1)]
               for n in names if n in results[s][0]} for s in sides}
    head = "".join(f"{s + ' fwd':>11}{s + ' bwd':>11}" for s in sides)
    print(f"\nper layer, median ms of {len(results[sides[0]])} steps\n{'layer':<12}{head}"
          + ("    ratio" if len(sides) == 2 else ""))
    totals = {s: 0.0 for s in sides}
    for n in names:
        cells, sums = "", {}
        for s in sides:
            f, b = med[s].get(n, (None, None))
            cells += "".join(f"{v * 1e3:11.2f}" if v is not None else f"{'-':>11}" for v in (f, b))
            sums[s] = (f or 0) + (b or 0)
            totals[s] += sums[s]
        ratio = (f"{sums[sides[0]] / sums[sides[1]]:9.2f}"
                 if len(sides) == 2 and sums[sides[1]] > 0 else "")
        print(f"{n:<12}{cells}{ratio}")
    print(f"{'sum':<12}" + "".join(f"{totals[s] * 1e3:22.2f}" for s in sides))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="cangea2016")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frames", type=int, default=1292)
    ap.add_argument("--mels", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--reps", type=int, default=20, help="timed steps of each (default 20)")
    ap.add_argument("--pool", type=int, default=4,
                    help="batches' worth of examples in the training set (default 4)")
    ap.add_argument("--threads", type=int, default=parallel.cores(),
                    help="threads for both (default: the cores this process may use)")
    ap.add_argument("--no-layers", action="store_true", help="skip the per-layer breakdown")
    ap.add_argument("--unfused", action="store_true",
                    help="also time the network without fused blocks (Network.fuse = False)")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch not installed: numpy only (pip install torch)")
    _limits = limit_threads(args.threads, torch)     # in force while referenced

    rng = np.random.default_rng(0)
    m = args.batch * args.pool
    data = rng.random((m, args.mels, args.frames), dtype=np.float32)
    labels = rng.integers(0, args.classes, m).astype(np.int32)
    plans = plan_epoch(m, args.mels, args.frames, args.frames,
                       TrainSettings(batch_size=args.batch), rng)
    net, opt = numpy_model(args.arch, data.shape[1:], args.classes)
    print(f"one Adam step, {args.arch}, input {args.mels} x {args.frames}, batch {args.batch}, "
          f"float32, {args.reps} interleaved steps each\n{thread_report(torch)}")
    steps = {"numpy": numpy_step(net, opt, data, labels, plans, args.batch)}
    layers = {"numpy": lambda: numpy_layers(net, opt, data, labels, plans)}
    if args.unfused:
        add_unfused(steps, args, data, labels, plans)
    if torch is not None:
        model = twin(net, device="cpu")
        names = [layer.name for layer in net.layers[:-1]]
        names = ["to maps"] * (len(model) - len(names)) + names    # twin's Unsqueeze, if any
        topt = torch.optim.Adam(model.parameters(), lr=LR)
        xt, yt = torch.from_numpy(data), torch.from_numpy(labels.astype(np.int64))
        index = [torch.from_numpy(p.index.astype(np.int64)) for p in plans]
        steps["torch"] = torch_step(model, topt, xt, yt, index, torch)
        layers["torch"] = lambda: torch_layers(names, model, topt, xt, yt, index, torch)

    times = interleaved(steps, args.reps)
    for name, ts in times.items():
        print(f"  {name:<6} {spread(ts)}  {args.batch / statistics.median(ts):7.1f} examples/s")
    print_ratios(times)
    if not args.no_layers:
        print_layers(interleaved(layers, args.reps))


if __name__ == "__main__":
    main()
