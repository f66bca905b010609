"""Proof for ``--backend auto``: one full training step (forward, loss, backward,
optimiser step) of the same network under the measured auto plan and under
every single-backend placement, timed in interleaved rounds on this machine.

    python bench/auto_vs_single.py [--arch cangea2016] [--batch-size 32]
        [--frames 1292] [--backends numpy,pycuda,cupy] [--reps 5] [--streamed]

Prints the auto plan with its measured per-layer times, then the step times
and the ratio of each placement to auto. Exits 1 if auto is slower than the
best single placement beyond the measured noise (or 5 %).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.autoplace.compare import compare_with_single
from genrecnn.errors import GenrecnnError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="small", help="architecture name or file (default small)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--mels", type=int, default=128)
    ap.add_argument("--frames", type=int, default=1292, help="1292 = a 30 s GTZAN clip")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    ap.add_argument("--backends", help="comma list (default: every available backend)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--streamed", action="store_true",
                    help="as for a training set over --resident-mb: each batch uploaded")
    ap.add_argument("--json", metavar="FILE", help="also write the result as JSON here")
    args = ap.parse_args(argv)

    try:
        cfg = load_architecture(args.arch)
        make = lambda: build_network(cfg, (args.mels, args.frames), args.classes,  # noqa: E731
                                     dtype=args.dtype)
        print(f"auto vs single placements: {args.arch}, input {args.mels}x{args.frames}, "
              f"batch {args.batch_size}, {args.dtype}, {os.cpu_count()} CPU cores, "
              f"load average {os.getloadavg()[0]:.1f} (timings need an idle machine)")
        backends = args.backends.split(",") if args.backends else None
        result = compare_with_single(make, args.batch_size, backends=backends,
                                     optimizer=args.optimizer, reps=args.reps,
                                     streamed=args.streamed)
    except GenrecnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 1 if result["verdict"] == "slower" else 0


if __name__ == "__main__":
    sys.exit(main())
