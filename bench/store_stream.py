"""Training steps fed from a feature store against the same steps with the training set
resident on the GPU, side by side in one run.

    python bench/store_stream.py [--backends cupy,pycuda] [--arch cnn2d] [--batch-size 32]
        [--clips 2000] [--seconds 30] [--width 256] [--steps 60] [--rounds 5] [--store DIR]

It writes a synthetic store (``genrecnn synth``) unless ``--store`` names one, reads it
once so its pages are in the page cache (warm), then times the step runner on each
backend: "resident" uploads every clip once (cut to the shortest clip's length) and
cuts crops on the device; "store" streams each batch's crops from the memory map through
page-locked buffers while the previous step runs (``genrecnn train STORE``'s path).
Both run the same plans of the same network (float32, TF32 off, each step one CUDA graph
replay). Printed: ms per step (median over rounds) and store / resident step rate
(the target is >= 0.9).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _steps_ms(backend, arch, items, width, batch, steps, rounds, frames) -> tuple[float, str]:
    from genrecnn.engine.architectures import build_network, load_architecture
    from genrecnn.engine.batches import epoch_rng, plan_epoch
    from genrecnn.engine.steps import StepRunner
    from genrecnn.run.settings import TrainSettings

    settings = TrainSettings(arch=arch, batch_size=batch, optimizer="adamw", lr=1e-3)
    net = build_network(load_architecture(arch), (items.n_mels, width), 4, seed=0)
    net.place(backend)
    runner = StepRunner(net, settings.make_optimizer(), items, settings)
    times = []
    for r in range(rounds + 1):
        plans = plan_epoch(len(items), items.n_mels, frames, width, settings,
                           epoch_rng(0, r))[:steps]
        t0 = time.perf_counter()
        runner.run_epoch(plans, [1e-3] * len(plans))       # ends reading the loss: a sync
        if r:
            times.append((time.perf_counter() - t0) * 1e3 / len(plans))
    path = runner.path + (" + graphs" if runner.path == "stream" and runner.graphs else "")
    runner.close()
    return statistics.median(times), path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="cupy,pycuda")
    ap.add_argument("--arch", default="cnn2d")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--store", type=Path, default=None)
    args = ap.parse_args(argv)
    from genrecnn.engine.items import ArrayItems
    from genrecnn.music.store import open_store
    from genrecnn.run.store_items import StoreItems, fit_normalizer

    store_path = args.store or Path(tempfile.mkdtemp(prefix="genrecnn-bench-")) / "store"
    if not (store_path / "index.json").exists():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "genrecnn", "synth", str(store_path), "--clips",
                        str(args.clips), "--seconds", str(args.seconds), "-q"], check=True)
        print(f"synth: {args.clips} clips of {args.seconds:g} s in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    store = open_store(store_path)
    norm = fit_normalizer(store, 0)
    shortest = int(store.frames.min())
    dense = np.stack([norm.transform(store.clip(i)[:, :shortest]) for i in range(len(store))])
    streamed = StoreItems(store, norm)
    resident = ArrayItems(dense, store.labels)
    print(f"{len(store)} clips, {args.arch} on 128 x {args.width} crops, batch "
          f"{args.batch_size}, float32; store pages warm (just read)", flush=True)
    for be in args.backends.split(","):
        row = {}
        for name, items, frames in (("resident", resident, shortest),
                                    ("store", streamed, store.frames)):
            row[name] = _steps_ms(be, args.arch, items, args.width, args.batch_size,
                                  args.steps, args.rounds, frames)
        (r_ms, r_path), (s_ms, s_path) = row["resident"], row["store"]
        print(f"{be}: resident ({r_path}) {r_ms:.3f} ms/step, store ({s_path}) {s_ms:.3f} "
              f"ms/step; store / resident step rate {r_ms / s_ms:.2f} (target >= 0.9)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
