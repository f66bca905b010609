"""Training throughput of the dissertation's network on the GPU: genrecnn's GPU
backends side by side with the same network written in PyTorch, same GPU, same run.

    python bench/gpu_train_throughput.py [--batches 1,32,256] [--backends cupy,pycuda]
        [--precision fp32|tf32] [--reps 10] [--warmup 3] [--host-fed] [--profile]
        [--json out.json] [--csv out.csv]

One step is forward + backward + Adam update of ``cangea2016`` (input 128 x
1292, 10 classes, float32) with the batch already on the GPU, for both sides
(``--host-fed`` also times the step from a host NumPy batch: genrecnn's
``Network.loss_and_grads``, which validates and uploads it, against PyTorch's
``torch.from_numpy(x).cuda()``). Each figure is the median of ``--reps``
synchronised steps after ``--warmup`` steps; the ratio is backend / PyTorch
examples per second. ``--precision fp32`` (default) keeps float32 arithmetic
everywhere (TF32 off in PyTorch's cuDNN and cuBLAS); ``tf32`` lets both cuBLAS
(through ``CUPY_TF32``) and PyTorch use TF32 tensor cores. Before timing, the
first loss of each genrecnn backend is checked against PyTorch's from the same
weights and batch, so both sides are the same network.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time

import numpy as np

ARCH, INPUT, CLASSES, DTYPE = "cangea2016", (128, 1292), 10, "float32"
GPU_BACKENDS = ("cupy", "pycuda")


# -- genrecnn side ------------------------------------------------------------------------------

def make_genrecnn(backend: str, seed: int = 0):
    from genrecnn.engine.architectures import build_network, load_architecture
    from genrecnn.engine.optim import Adam
    net = build_network(load_architecture(ARCH), INPUT, CLASSES, dtype=DTYPE, seed=seed)
    net.place(backend)
    return net, Adam(lr=1e-3)


def device_step(net, opt, x_dev, y_dev) -> float:
    """``Network.loss_and_grads`` + ``opt.step`` for a batch already on the device:
    the same layer calls, without the host validation and upload of the batch."""
    layers, bes = net.layers, net.backends
    h, be = x_dev, bes[0]
    for layer, lbe in zip(layers[:-1], bes[:-1]):
        h, be = (h if lbe is be else lbe.adopt(h, be)), lbe
        h = layer.forward(be, h, True)
    out = bes[-1]
    loss, _ = layers[-1].forward_loss(out, h if out is be else out.adopt(h, be), y_dev)
    g, be = layers[-1].backward(out), out
    for layer, lbe in zip(reversed(layers[:-1]), reversed(bes[:-1])):
        g, be = (g if lbe is be else lbe.adopt(g, be)), lbe
        g = layer.backward(be, g)
    opt.step(net)
    return loss


def profile_layers(net, x_dev, y_dev, reps: int = 5) -> list[tuple[str, float, float]]:
    """Median forward and backward milliseconds of every layer (synchronised each call)."""
    be = net.backends[0]
    fw: dict[str, list[float]] = {}
    bw: dict[str, list[float]] = {}

    def timed(fn):
        be.synchronize()
        t0 = time.perf_counter()
        r = fn()
        be.synchronize()
        return r, (time.perf_counter() - t0) * 1e3

    for _ in range(reps + 1):
        h = x_dev
        for layer in net.layers[:-1]:
            h, ms = timed(lambda: layer.forward(be, h, True))
            fw.setdefault(layer.name, []).append(ms)
        (loss, _), ms = timed(lambda: net.layers[-1].forward_loss(be, h, y_dev))
        fw.setdefault("softmax", []).append(ms)
        g, ms = timed(lambda: net.layers[-1].backward(be))
        bw.setdefault("softmax", []).append(ms)
        for layer in reversed(net.layers[:-1]):
            g, ms = timed(lambda: layer.backward(be, g))
            bw.setdefault(layer.name, []).append(ms)
    med = lambda v: statistics.median(v[1:])          # noqa: E731  (first rep is warm-up)
    return [(layer.name, med(fw[layer.name]), med(bw[layer.name])) for layer in net.layers]


# -- PyTorch side -------------------------------------------------------------------------------

def make_torch(net, device: str):
    """The same network in PyTorch, with genrecnn's initial weights copied in."""
    import torch
    from torch import nn

    class GlobalPool(nn.Module):
        def forward(self, h):
            return torch.cat([h.mean(2), h.amax(2), torch.linalg.vector_norm(h, dim=2)], 1)

    params = net.host_params()
    mods = []
    for layer in net.layers[:-1]:
        cfg = layer.config()
        if layer.kind == "conv":
            m = nn.Conv1d(layer.input_shape[0], layer.filters, layer.width)
            m.weight.data = torch.from_numpy(params[f"{layer.name}/w"]).clone()
            m.bias.data = torch.from_numpy(params[f"{layer.name}/b"]).clone()
        elif layer.kind == "fc":
            m = nn.Linear(layer.input_shape[0], layer.units)
            m.weight.data = torch.from_numpy(params[f"{layer.name}/w"].T.copy())
            m.bias.data = torch.from_numpy(params[f"{layer.name}/b"]).clone()
        elif layer.kind == "pool":
            m = nn.MaxPool1d(layer.size, layer.stride)
        elif layer.kind == "gpool":
            m = GlobalPool()
        elif layer.kind == "act" and cfg["fn"] == "relu":
            m = nn.ReLU()
        else:
            raise SystemExit(f"error: layer {layer.name} ({cfg}) has no PyTorch twin in this bench")
        mods.append(m)
    model = nn.Sequential(*mods).to(device)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def torch_step(model, opt, x, y) -> float:
    import torch.nn.functional as F
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def kernel_table(label: str, step, top: int = 14) -> None:
    """Print the CUDA kernels of two steps by total device time (CUPTI sees every
    kernel of the process, CuPy's and PyCUDA's included)."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        print("note: --kernels needs PyTorch's profiler")
        return
    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(2):
            step()
        torch.cuda.synchronize()
    rows = [(e.key, e.device_time_total / 2e3, e.count // 2) for e in prof.key_averages()
            if e.device_time_total > 0]
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    print(f"\nCUDA kernels of one {label} step: {total:.3f} ms in all")
    for key, ms, n in rows[:top]:
        print(f"  {ms:8.3f} ms {n:4d}x  {key[:110]}")


# -- timing -------------------------------------------------------------------------------------

def median_ms(step, sync, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def available_gpu_backends(wanted) -> tuple[list[str], dict[str, str]]:
    from genrecnn.engine.registry import registry
    reg = registry()
    ok, why = [], {}
    for name in wanted:
        info = reg.infos.get(name)
        if info is None:
            why[name] = "not installed"
        elif not info.available:
            why[name] = info.reason
        else:
            ok.append(name)
    return ok, why


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--backends", default=",".join(GPU_BACKENDS))
    ap.add_argument("--precision", choices=("fp32", "tf32"), default="fp32")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--host-fed", action="store_true", help="also time steps from a host batch")
    ap.add_argument("--profile", action="store_true",
                    help="per-layer forward/backward times at the largest batch")
    ap.add_argument("--kernels", action="store_true",
                    help="top CUDA kernels of one step at the largest batch (torch.profiler)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", dest="json_path")
    ap.add_argument("--csv", dest="csv_path")
    args = ap.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if args.precision == "tf32":
        os.environ["CUPY_TF32"] = "1"       # read by CuPy at its first float32 matmul

    names, why = available_gpu_backends([b for b in args.backends.split(",") if b])
    if not names:
        print("error: no GPU backend is available here ("
              + "; ".join(f"{k}: {v}" for k, v in why.items())
              + "); run this on a machine with CUDA and CuPy or PyCUDA", file=sys.stderr)
        return 2
    for k, v in why.items():
        print(f"note: skipping {k}: {v}")

    torch_dev = None
    if not args.no_torch:
        try:
            import torch
            if torch.cuda.is_available():
                torch_dev = "cuda"
                torch.backends.cudnn.benchmark = True
                tf32 = args.precision == "tf32"
                torch.backends.cudnn.allow_tf32 = tf32
                torch.backends.cuda.matmul.allow_tf32 = tf32
                print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, "
                      f"cuDNN {torch.backends.cudnn.version()}")
            else:
                print("note: PyTorch sees no CUDA GPU; no PyTorch column")
        except ImportError:
            print("note: PyTorch is not installed; no PyTorch column")

    rng = np.random.default_rng(0)
    results = []
    for b in batches:
        x = rng.normal(size=(b, *INPUT)).astype(DTYPE)
        y = rng.integers(0, CLASSES, b).astype(np.int32)
        reps = max(args.reps, 30) if b == 1 else args.reps
        ref_loss = None
        if torch_dev:
            import torch
            net0, _ = make_genrecnn("numpy")
            model, topt = make_torch(net0, torch_dev)
            xt, yt = torch.from_numpy(x).to(torch_dev), torch.from_numpy(y).long().to(torch_dev)
            ref_loss = torch_step(model, topt, xt, yt)
            ms = median_ms(lambda: torch_step(model, topt, xt, yt), torch.cuda.synchronize,
                           args.warmup, reps)
            if args.kernels and b == max(batches):
                kernel_table("torch", lambda: torch_step(model, topt, xt, yt))
            row = {"backend": "torch", "batch": b, "precision": args.precision, "ms": ms}
            if args.host_fed:
                row["host_fed_ms"] = median_ms(
                    lambda: torch_step(model, topt, torch.from_numpy(x).to(torch_dev), yt),
                    torch.cuda.synchronize, 1, max(3, reps // 3))
            results.append(row)
            del model, topt, xt, yt
            torch.cuda.empty_cache()
        for name in names:
            net, opt = make_genrecnn(name)
            be = net.backends[0]
            xd, yd = be.from_host(x), net.backends[-1].from_host(y)
            loss0 = device_step(net, opt, xd, yd)
            if ref_loss is not None and abs(loss0 - ref_loss) > 1e-3 * max(1.0, abs(ref_loss)):
                print(f"WARNING: {name} first loss {loss0:.6f} != torch {ref_loss:.6f} (batch {b})")
            ms = median_ms(lambda: device_step(net, opt, xd, yd), be.synchronize,
                           args.warmup, reps)
            row = {"backend": name, "batch": b, "precision": args.precision, "ms": ms,
                   "first_loss": loss0, "torch_first_loss": ref_loss}
            if args.host_fed:
                def host_step():
                    net.loss_and_grads(x, y)
                    opt.step(net)
                row["host_fed_ms"] = median_ms(host_step, be.synchronize, 1, max(3, reps // 3))
            if args.profile and b == max(batches):
                row["profile"] = profile_layers(net, xd, yd)
            if args.kernels and b == max(batches):
                kernel_table(name, lambda: device_step(net, opt, xd, yd))
            results.append(row)
            del net, opt, xd, yd
            _free(name)

    _report(results, args)
    return 0


def _free(name):
    if name == "cupy":
        import cupy
        cupy.get_default_memory_pool().free_all_blocks()


def _report(results, args):
    torch_ms = {r["batch"]: r["ms"] for r in results if r["backend"] == "torch"}
    torch_host = {r["batch"]: r.get("host_fed_ms") for r in results if r["backend"] == "torch"}
    for r in results:
        r["examples_per_s"] = r["batch"] / (r["ms"] / 1e3)
        t = torch_ms.get(r["batch"])
        r["vs_torch"] = (t / r["ms"]) if t else None
        if r.get("host_fed_ms"):
            r["host_fed_examples_per_s"] = r["batch"] / (r["host_fed_ms"] / 1e3)
            th = torch_host.get(r["batch"])
            r["host_fed_vs_torch"] = (th / r["host_fed_ms"]) if th else None
    for r in results:
        if "profile" in r:
            print(f"\nper-layer medians, {r['backend']}, batch {r['batch']} (ms, synchronised):")
            print(f"  {'layer':<9} {'forward':>9} {'backward':>9}")
            for name, f, bk in r["profile"]:
                print(f"  {name:<9} {f:>9.3f} {bk:>9.3f}")
    print(f"\ntraining throughput, {ARCH} {INPUT[0]}x{INPUT[1]}, {DTYPE}, precision "
          f"{args.precision}, Adam, batch on the GPU (median of {args.reps}+ steps)")
    head = f"{'backend':<8} {'batch':>5} {'step ms':>9} {'examples/s':>11} {'vs torch':>9}"
    if args.host_fed:
        head += f" {'host-fed ex/s':>14} {'vs torch':>9}"
    print(head)
    for r in sorted(results, key=lambda r: (r["batch"], r["backend"] != "torch", r["backend"])):
        line = (f"{r['backend']:<8} {r['batch']:>5} {r['ms']:>9.3f} {r['examples_per_s']:>11.1f} "
                f"{_ratio(r['vs_torch']):>9}")
        if args.host_fed:
            line += (f" {r.get('host_fed_examples_per_s', float('nan')):>14.1f} "
                     f"{_ratio(r.get('host_fed_vs_torch')):>9}")
        print(line)
    big = max(r["batch"] for r in results)
    for name, target in (("cupy", 1.0), ("pycuda", 0.5)):
        r = next((r for r in results if r["backend"] == name and r["batch"] == big), None)
        if r and r["vs_torch"]:
            verdict = "met" if r["vs_torch"] >= target else "MISSED"
            print(f"target {name} >= {target:.2f} x torch at batch {big}: "
                  f"{r['vs_torch']:.2f} x -> {verdict}")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(results, f, indent=2)
    if args.csv_path:
        cols = ["backend", "precision", "batch", "ms", "examples_per_s", "vs_torch",
                "host_fed_ms", "host_fed_examples_per_s", "host_fed_vs_torch"]
        with open(args.csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(results)


def _ratio(v):
    return f"{v:.2f}x" if v else "-"


if __name__ == "__main__":
    sys.exit(main())
