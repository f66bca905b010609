"""Training steps on the GPU, side by side in one run: genrecnn's CUDA backends (each
step one CUDA graph replay, the training set resident on the device) against the
same network in PyTorch, eager, with the whole step in one CUDA graph, and (``--compile``)
through ``torch.compile``.

    python bench/gpu_train_throughput.py [--arch cangea2016] [--frames 1292]
        [--batches 1,32,256] [--backends cupy,pycuda] [--steps 40] [--stream]
        [--compile default,max-autotune] [--precisions fp32,tf32,bf16] [--json out.json]

One step is: cut a batch from a resident training set by index, forward, loss,
backward and Adam update (float32 weights; at fp32, the default, TF32 off everywhere).
``--precisions`` times each precision in turn: genrecnn's backends with
``--precision`` (a backend that does not offer it is left out, with the reason) and
PyTorch at the matching setting: fp32 with TF32 off, tf32 with
``allow_tf32`` on for matmuls and cuDNN, bf16 under ``torch.autocast(bfloat16)``;
each row is labelled with its precision, and each column's speed-up over its own fp32
row is printed at the end. genrecnn runs
:class:`genrecnn.engine.steps.StepRunner` (the path ``genrecnn train`` takes);
PyTorch gathers the batch from the same resident tensor, and in its graph
column captures gather, forward, backward and ``Adam(capturable=True)``
(``torch.cuda.graph``) and replays it after writing the next indices. Each
figure is the median over rounds of ``--steps`` steps after a warm-up; ratios
are PyTorch eager's milliseconds per step over each column's (above 1: faster
than PyTorch eager). ``--stream`` adds the training set over the resident budget:
genrecnn's stream path (each batch uploaded from pinned host memory on a second
stream while the previous step runs) and, beside it, the host path it replaces.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from torch_twin import random_data_step, step_runner, twin  # noqa: E402


def genrecnn_ms(backend, arch, shape, classes, batch, steps, rounds, graphs=True,
                feed="resident", precision="fp32"):
    """ms per step; ``feed``: resident (the set uploaded once), stream (over the budget:
    batches from pinned memory on a side stream) or host (over the budget on a backend
    without the staging ops: each batch copied from pageable memory, the loss read
    back every step); ``precision``: of the conv and dense products."""
    from genrecnn.engine.architectures import build_network, load_architecture
    from genrecnn.engine.batches import plan_epoch
    from genrecnn.run.settings import TrainSettings
    from genrecnn.engine.items import ArrayItems
    from genrecnn.engine.steps import StepRunner
    net = build_network(load_architecture(arch), shape, classes, seed=0, precision=precision)
    net.place(backend)
    settings = TrainSettings(arch=arch, batch_size=batch, optimizer="adam", lr=1e-4,
                             precision=precision)
    m = batch * steps
    rng = np.random.default_rng(0)
    x = rng.random((m, *shape), dtype=np.float32)
    y = rng.integers(0, classes, m)
    opt = settings.make_optimizer()
    first = net.backends[0]
    if feed == "host":      # hide the staging ops (this instance, for this run only)
        first.supports = lambda group, has=first.supports: group != "staging" and has(group)
    try:
        runner = StepRunner(net, opt, ArrayItems(x, y), settings, graphs=graphs,
                            **({} if feed == "resident" else {"resident_budget": 0}))
        times = []
        for r in range(rounds + 1):
            plans = plan_epoch(m, shape[0], shape[1], shape[1], settings,
                               np.random.default_rng(r))
            t0 = time.perf_counter()
            runner.run_epoch(plans, [1e-4] * len(plans))     # ends reading the loss: a sync
            if r:
                times.append((time.perf_counter() - t0) * 1e3 / len(plans))
        path = runner.path + (" graph" if runner.path == "stream" and runner.graphs else "")
        runner.close()
    finally:
        first.__dict__.pop("supports", None)
    return statistics.median(times), path


def torch_precision(precision: str):
    """Set PyTorch up for ``precision``; the autocast dtype a step runs under (or None)."""
    import torch
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = (
        precision == "tf32")
    return torch.bfloat16 if precision == "bf16" else None


def torch_ms(arch, shape, classes, batch, steps, rounds, graph: bool, compile_mode=None,
             autocast=None):
    """PyTorch's step time: eager, the whole step in one CUDA graph (``graph``), or the
    model through ``torch.compile(mode=compile_mode)`` (compiled once, before timing;
    "max-autotune" also replays inductor's own CUDA graphs); ``autocast``: see
    :func:`torch_twin.random_data_step`."""
    import torch
    from genrecnn.engine.architectures import build_network, load_architecture
    net = build_network(load_architecture(arch), shape, classes, seed=0)
    model = twin(net)
    if compile_mode:
        model = torch.compile(model, mode=compile_mode)
    m = batch * steps
    step, opt, idx = random_data_step(model, shape, classes, m, batch, graph, autocast=autocast)
    orders = [torch.randperm(m, device="cuda").view(steps, batch) for _ in range(rounds + 1)]
    run = step_runner(step, opt, graph)
    times = []
    for r, order in enumerate(orders):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(steps):
            idx.copy_(order[i], non_blocking=True)
            run()
        torch.cuda.synchronize()
        if r:
            times.append((time.perf_counter() - t0) * 1e3 / steps)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="cangea2016")
    ap.add_argument("--mels", type=int, default=128)
    ap.add_argument("--frames", type=int, default=1292)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--backends", default="cupy,pycuda")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--eager", action="store_true", help="also genrecnn without graphs")
    ap.add_argument("--stream", action="store_true",
                    help="also genrecnn with the set over the resident budget (--resident-mb "
                         "0): batches streamed, and (host) copied step by step as before")
    ap.add_argument("--compile", default="",
                    help="also PyTorch through torch.compile in these modes (comma list: "
                         "default, reduce-overhead, max-autotune; each compiles for minutes)")
    ap.add_argument("--precisions", default="fp32",
                    help="comma list of fp32, tf32, bf16: each timed in turn (default fp32)")
    ap.add_argument("--json", dest="json_path")
    args = ap.parse_args(argv)
    from genrecnn.engine.ops import PRECISIONS
    from genrecnn.errors import GenrecnnError
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not precisions or set(precisions) - set(PRECISIONS):
        ap.error(f"--precisions {args.precisions!r}: give some of {', '.join(PRECISIONS)}")
    import torch
    torch.backends.cudnn.benchmark = True
    shape = (args.mels, args.frames)
    print(f"{args.arch}, input {shape[0]} x {shape[1]}, {args.classes} classes, float32, "
          f"Adam, on {torch.cuda.get_device_name()} (torch {torch.__version__})")
    rows = []
    for precision in precisions:
        autocast = torch_precision(precision)
        label = "" if precisions == ["fp32"] else f"[{precision}] "
        for batch in (int(b) for b in args.batches.split(",")):
            def timed(graph, mode=None):
                return torch_ms(args.arch, shape, args.classes, batch, args.steps, args.rounds,
                                graph, mode, autocast)
            row = {"precision": precision, "batch": batch, "torch eager": timed(False),
                   "torch graph": timed(True)}
            for mode in (m for m in args.compile.split(",") if m):
                row[f"torch.compile {mode}"] = timed(False, mode)
            for b in args.backends.split(","):
                for feed in (("resident", "stream", "host") if args.stream else ("resident",)):
                    for graphs in ((True, False) if args.eager else (True,)):
                        try:
                            ms, path = genrecnn_ms(b, args.arch, shape, args.classes, batch,
                                                   args.steps, args.rounds, graphs, feed,
                                                   precision)
                        except GenrecnnError as exc:     # the backend lacks the precision
                            print(f"{label}{b}: left out ({exc})", flush=True)
                            continue
                        row[f"{b} ({path})"] = ms
            rows.append(row)
            eager = row["torch eager"]
            cells = "  ".join(f"{k} {v:.3f} ms ({eager / v:.2f}x)" for k, v in row.items()
                              if k not in ("batch", "precision"))
            print(f"{label}batch {batch:>4}: {cells}", flush=True)
    for line in speedups(rows):
        print(line)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=1))
    return 0


def speedups(rows: list[dict]) -> list[str]:
    """Per row at tf32 or bf16, each column's fp32 ms over its ms at that precision (the
    same batch's fp32 row; above 1: faster than fp32)."""
    fp32 = {r["batch"]: r for r in rows if r["precision"] == "fp32"}
    lines = []
    for r in rows:
        base = fp32.get(r["batch"])
        if r["precision"] == "fp32" or base is None:
            continue
        cells = "  ".join(f"{k} {base[k] / v:.2f}x" for k, v in r.items()
                          if k not in ("batch", "precision") and k in base)
        lines.append(f"[{r['precision']} over fp32] batch {r['batch']:>4}: {cells}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
