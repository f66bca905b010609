"""Data-parallel scaling on the GPUs of one machine, side by side in one run: genrecnn
under ``mpirun -n N`` (gradients summed by NCCL in one fused buffer per step) against
the same network in PyTorch DistributedDataParallel over NCCL under ``torchrun``.

    python bench/scale_out.py [--gpus 1,2,4,8] [--backends cupy,pycuda]
        [--cases cnn2d:256:32,cnn2d:256:256,cangea2016:1292:256] [--steps 30]
        [--rounds 3] [--json out.json]

A case is ``arch:frames:per-GPU batch`` (128 mel bands, 10 classes). Each rank trains
on random data resident on its GPU (float32, TF32 off), so the figures measure the
step and the gradient sum, not the input pipeline. Reported per case and N: examples
per second over all ranks (median over rounds), scaling efficiency (throughput at N /
(N x throughput at 1)) and genrecnn over PyTorch DDP (eager, and the whole step in a
CUDA graph where DDP allows it). ``--overhead`` instead compares one rank with a NCCL
communicator against one rank without any (the price of the data-parallel path).

The driver starts the ranks itself (``mpirun``/``torchrun`` in subprocesses); the
``--side`` modes are what those ranks run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

MELS, CLASSES = 128, 10
HERE = Path(__file__).resolve()


def _cases(text: str) -> list[tuple[str, int, int]]:
    out = []
    for item in text.split(","):
        arch, frames, batch = item.split(":")
        out.append((arch, int(frames), int(batch)))
    return out


# -- genrecnn ranks -------------------------------------------------------------------------

def genrecnn_rank(backend: str, arch: str, frames: int, batch: int, steps: int, rounds: int,
                  communicate: bool) -> dict:
    """Examples per second of this rank's steps (each rank reports; the driver sums)."""
    from genrecnn.engine.architectures import build_network, load_architecture
    from genrecnn.engine.batches import plan_epoch
    from genrecnn.engine.items import ArrayItems
    from genrecnn.engine.steps import StepRunner
    from genrecnn.run.settings import TrainSettings
    from genrecnn.world import World, world

    w = world()
    if communicate and w.comm is None:           # one rank with a communicator all the same
        from mpi4py import MPI
        w = World(MPI.COMM_WORLD)
    shape = (MELS, frames)
    net = build_network(load_architecture(arch), shape, CLASSES, seed=0)
    net.place(backend)
    settings = TrainSettings(arch=arch, batch_size=batch * w.size, optimizer="adam", lr=1e-4)
    m = batch * steps
    rng = np.random.default_rng(w.rank)
    x = rng.random((m, *shape), dtype=np.float32)
    y = rng.integers(0, CLASSES, m)
    runner = StepRunner(net, settings.make_optimizer(), ArrayItems(x, y), settings,
                        world=w if communicate else None)
    times = []
    for r in range(rounds + 1):
        # every rank draws the same global plan; its share indexes its own m examples
        plans = plan_epoch(m * w.size, shape[0], frames, frames, settings,
                           np.random.default_rng(r))
        for p in plans:
            p.index %= m
        w.barrier()
        t0 = time.perf_counter()
        runner.run_epoch(plans, [1e-4] * len(plans))
        w.barrier()
        if r:
            times.append(time.perf_counter() - t0)
    runner.close()
    per_step = statistics.median(times) / steps
    return {"rank": w.rank, "size": w.size, "path": runner.path,
            "examples_per_s": batch * w.size / per_step, "ms_per_step": per_step * 1e3}


# -- PyTorch DDP ranks -----------------------------------------------------------------------

def torch_rank(arch: str, frames: int, batch: int, steps: int, rounds: int, graph: bool) -> dict:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from genrecnn.engine.architectures import build_network, load_architecture
    from torch_twin import random_data_step, step_runner, twin

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    local = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    rank, size = dist.get_rank(), dist.get_world_size()
    net = build_network(load_architecture(arch), (MELS, frames), CLASSES, seed=0)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):                # DDP under capture must be built off the default stream
        model = DDP(twin(net), device_ids=[local], static_graph=graph)
    m = batch * steps
    step, opt, idx = random_data_step(model, (MELS, frames), CLASSES, m, batch, graph, rank)
    run = step_runner(step, opt, graph, warmup=11, side=side)   # DDP warms up 11 steps
    note = "graph" if graph else "eager"
    orders = [torch.randperm(m, device="cuda").view(steps, batch) for _ in range(rounds + 1)]
    times = []
    for r, order in enumerate(orders):
        torch.cuda.synchronize()
        dist.barrier()
        t0 = time.perf_counter()
        for i in range(steps):
            idx.copy_(order[i], non_blocking=True)
            run()
        torch.cuda.synchronize()
        dist.barrier()
        if r:
            times.append(time.perf_counter() - t0)
    dist.destroy_process_group()
    per_step = statistics.median(times) / steps
    return {"rank": rank, "size": size, "path": note,
            "examples_per_s": batch * size / per_step, "ms_per_step": per_step * 1e3}


# -- the driver -------------------------------------------------------------------------------

def _env() -> dict:
    return dict(os.environ, NCCL_NVLS_ENABLE="0", OMPI_ALLOW_RUN_AS_ROOT="1",
                OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONUNBUFFERED="1")


def _launch(cmd: list[str], timeout: int) -> dict | str:
    """Run the ranks; rank 0's JSON line, or the reason it failed."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout}s"
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not rows:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return f"exit {done.returncode}: {' | '.join(tail)}"
    return min(rows, key=lambda r: r["rank"])


def _side_cmd(side: str, n: int, args, arch, frames, batch, extra=()) -> list[str]:
    common = [str(HERE), "--side", side, "--steps", str(args.steps), "--rounds",
              str(args.rounds), "--case", f"{arch}:{frames}:{batch}", *extra]
    if side == "torch":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={n}", *common]
    return [shutil.which("mpirun") or "mpirun", "-n", str(n), sys.executable, *common]


def drive(args) -> list[dict]:
    gpus = [int(g) for g in args.gpus.split(",")]
    results = []
    for arch, frames, batch in _cases(args.cases):
        for n in gpus:
            cols = {}
            for be in args.backends.split(","):
                cols[be] = _launch(_side_cmd("genrecnn", n, args, arch, frames, batch,
                                             ["--backend", be]), args.timeout)
            for mode in ("eager", "graph"):
                extra = ["--graph"] if mode == "graph" else []
                cols[f"torch-{mode}"] = _launch(_side_cmd("torch", n, args, arch, frames, batch,
                                                          extra), args.timeout)
            results.append({"arch": arch, "frames": frames, "batch": batch, "gpus": n,
                            "columns": cols})
            _print_row(results, results[-1])
    return results


def _rate(col) -> float | None:
    return col["examples_per_s"] if isinstance(col, dict) else None


def _print_row(results, row) -> None:
    base = {k: _rate(v) for r in results if r["gpus"] == 1 and r["arch"] == row["arch"]
            and r["batch"] == row["batch"] and r["frames"] == row["frames"]
            for k, v in r["columns"].items()}
    parts = []
    for name, col in row["columns"].items():
        rate = _rate(col)
        if rate is None:
            parts.append(f"{name}: {col}")
            continue
        eff = rate / (row["gpus"] * base[name]) if base.get(name) else float("nan")
        parts.append(f"{name} {rate:,.0f} ex/s (eff {eff:.2f})")
    best_torch = max([_rate(row["columns"].get(k)) or 0 for k in ("torch-eager", "torch-graph")])
    ratios = [f"{k}/DDP-best {(_rate(v) or 0) / best_torch:.2f}x"
              for k, v in row["columns"].items() if not k.startswith("torch") and best_torch]
    print(f"{row['arch']} 128x{row['frames']} per-GPU batch {row['batch']}, N={row['gpus']}: "
          + "; ".join(parts + ratios), flush=True)


def overhead(args) -> dict:
    """One rank with a NCCL communicator against one rank without any, per backend and
    case, in this process (alternating, twice each; the faster of each kept)."""
    out = {}
    for arch, frames, batch in _cases(args.cases):
        for be in args.backends.split(","):
            best = {"none": None, "nccl": None}
            for _ in range(2):
                for name, comm in (("none", False), ("nccl", True)):
                    row = genrecnn_rank(be, arch, frames, batch, args.steps, args.rounds, comm)
                    if best[name] is None or row["ms_per_step"] < best[name]["ms_per_step"]:
                        best[name] = row
            ratio = best["nccl"]["ms_per_step"] / best["none"]["ms_per_step"]
            key = f"{arch}:{frames}:{batch}:{be}"
            out[key] = dict(best, step_time_ratio=ratio)
            print(f"{arch} 128x{frames} batch {batch} on {be}: no communicator "
                  f"{best['none']['ms_per_step']:.3f} ms/step, 1-rank NCCL "
                  f"{best['nccl']['ms_per_step']:.3f} ms/step ({best['nccl']['path']}); "
                  f"NCCL / none {ratio:.3f} (target <= 1.05)", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpus", default="1,2,4,8")
    ap.add_argument("--backends", default="cupy,pycuda")
    ap.add_argument("--cases", default="cnn2d:256:32,cnn2d:256:256,cangea2016:1292:256")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--overhead", action="store_true")
    ap.add_argument("--json", dest="json_path")
    ap.add_argument("--side", choices=("genrecnn", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--graph", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--communicate", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.side:
        arch, frames, batch = _cases(args.case)[0]
        if args.side == "torch":
            row = torch_rank(arch, frames, batch, args.steps, args.rounds, args.graph)
        else:
            from genrecnn.world import world
            row = genrecnn_rank(args.backend, arch, frames, batch, args.steps, args.rounds,
                                args.communicate or world().size > 1)
        if row["rank"] == 0:                     # rank 0 speaks for the run
            print(json.dumps(row), flush=True)
        return 0
    if args.overhead:
        result = overhead(args)
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(result, indent=1))
        return 0
    if args.gpus:
        import cupy
        have = cupy.cuda.runtime.getDeviceCount()
        wanted = [int(g) for g in args.gpus.split(",")]
        args.gpus = ",".join(str(g) for g in wanted if g <= have)
        print(f"{have} GPU(s) here: N = {args.gpus}", flush=True)
    result = drive(args)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
