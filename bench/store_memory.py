"""Training from a feature store in bounded memory, measured: peak private memory of
``genrecnn train STORE`` with NumPy, and a step from the store against the same step
with the data in memory.

    python bench/store_memory.py [--clips 3000,50000] [--seconds 30] [--dir /tmp/stores]
        [--arch small] [--batch-size 32] [--keep]

For each size it writes a synthetic store (``genrecnn synth``, timed), trains one
epoch from it (``genrecnn train STORE --backend numpy``) while sampling every process
of the run every 0.1 s, and prints the peak of RssAnon summed over them: private
memory only, since the store's pages are page cache (shared, evictable) and not the
run's own. Then, on a part that fits in memory (``--fit-clips``, 30-s clips), it times
NumPy training steps reading crops from the store's memory map (the stream path)
against the same steps from one in-memory array (the device path), and prints the
ratio (in-memory time / store time: above 0.8 is the target).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _children(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo.extend(int(k) for k in kids)
    return out


def _rss_anon_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_with_peak(cmd: list[str], env=None) -> tuple[int, float, float, str]:
    """(exit status, peak summed RssAnon in MiB, seconds, output tail) of ``cmd``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    peak = [0]
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        peak[0] = max(peak[0], sum(_rss_anon_kb(p) for p in _children(proc.pid)))
        time.sleep(0.1)
    reader.join()
    return proc.returncode, peak[0] / 1024, time.perf_counter() - t0, "".join(lines[-4:])


def _genrecnn() -> list[str]:
    return [sys.executable, "-m", "genrecnn"]


def memory_row(clips: int, seconds: float, root: Path, args) -> dict:
    store = root / f"synth-{clips}x{seconds:g}s"
    if not (store / "index.json").exists():
        t0 = time.perf_counter()
        done = subprocess.run(_genrecnn() + ["synth", str(store), "--clips", str(clips),
                                             "--seconds", str(seconds)],
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"synth failed: {done.stderr.strip()}")
        made = time.perf_counter() - t0
        print(f"synth {clips} clips of {seconds:g} s: {made:.1f} s "
              f"({clips / made * 60:,.0f} clips/min)", flush=True)
    size = sum(p.stat().st_size for p in store.iterdir()) / 2 ** 30
    out = root / f"run-{clips}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = _genrecnn() + ["train", str(store), "--backend", "numpy", "--arch", args.arch,
                         "--epochs", "1", "--batch-size", str(args.batch_size),
                         "--out", str(out)]
    status, peak, secs, tail = run_with_peak(cmd)
    if status:
        raise SystemExit(f"train failed ({status}): {tail}")
    print(f"{clips} clips ({size:.1f} GiB of features): train one epoch in {secs:.0f} s, peak "
          f"private memory {peak:,.0f} MiB (RssAnon summed over its processes)", flush=True)
    return {"clips": clips, "store_gib": size, "seconds": secs, "peak_rss_anon_mib": peak}


def step_ratio(root: Path, args) -> dict:
    """NumPy steps from the store's memory map against the same from memory."""
    from genrecnn.engine.architectures import build_network, load_architecture
    from genrecnn.engine.batches import epoch_rng, plan_epoch
    from genrecnn.engine.items import ArrayItems
    from genrecnn.engine.steps import StepRunner
    from genrecnn.music.store import open_store
    from genrecnn.run.settings import TrainSettings
    from genrecnn.run.store_items import StoreItems

    store = root / f"synth-{args.fit_clips}x{args.seconds:g}s"
    if not (store / "index.json").exists():
        subprocess.run(_genrecnn() + ["synth", str(store), "--clips", str(args.fit_clips),
                                      "--seconds", str(args.seconds)], check=True)
    st = open_store(store)
    width = 256
    items = StoreItems(st, normalizer=None)
    dense = ArrayItems(np.stack([st.clip(i)[:, :int(st.frames.min())]
                                 for i in range(len(st))]), st.labels)
    settings = TrainSettings(arch=args.arch, batch_size=args.batch_size, optimizer="adam",
                             lr=1e-3, crop=width)
    result = {}
    for name, source in (("memory", dense), ("store", items)):
        net = build_network(load_architecture(args.arch), (st.n_mels, width), len(st.class_names),
                            seed=0)
        net.place("numpy")
        runner = StepRunner(net, settings.make_optimizer(), source, settings)
        times = []
        for r in range(args.rounds + 1):
            plans = plan_epoch(len(source), source.n_mels, dense.frames, width, settings,
                               epoch_rng(0, r))[:args.steps]
            t0 = time.perf_counter()
            runner.run_epoch(plans, [1e-3] * len(plans))
            if r:
                times.append((time.perf_counter() - t0) / len(plans))
        runner.close()
        result[name] = statistics.median(times) * 1e3
    ratio = result["memory"] / result["store"]
    print(f"NumPy step ({args.arch}, batch {args.batch_size}, 128x{width} crops): memory "
          f"{result['memory']:.1f} ms, store {result['store']:.1f} ms; store speed "
          f"{ratio:.2f}x memory's (target >= 0.8)", flush=True)
    return dict(result, ratio=ratio)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default="3000,50000")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--arch", default="small")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--fit-clips", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    args = ap.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="genrecnn-stores-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        for n in (int(c) for c in args.clips.split(",") if c):
            memory_row(n, args.seconds, root, args)
        step_ratio(root, args)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
