"""Feature extraction speed on real music: clips/s cold (decode + mel) and from the cache.

    python bench/features_speed.py [--data ../shared/data/gtzan-sample] [--jobs 1 2]
                                   [--repeats 3]

For each worker count it loads the whole folder into a fresh cache (cold) and
then again from that cache (warm), and prints clips/s for both (the median of
``--repeats`` runs; each cold run uses a new empty cache). The first cold run
also pays librosa's import and warm-up in the workers, as a user's first run does.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from genrecnn.music.loading import load_dataset
from genrecnn.music.features import FeatureCache

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan-sample"


def timed_load(data, cache, jobs) -> tuple[float, int]:
    start = time.perf_counter()
    ds = load_dataset(data, cache=cache, jobs=jobs, progress=False)
    return time.perf_counter() - start, len(ds.clip_ids) + len(ds.skipped)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SAMPLE), help="a folder of genre folders "
                    "(default: the shared GTZAN sample beside the checkout)")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"# {args.data}, {os.cpu_count()} CPU cores, median of {args.repeats} runs")
    print(f"{'jobs':>4}  {'clips':>5}  {'cold clips/s':>12}  {'cached clips/s':>14}  speed-up")
    for jobs in args.jobs:
        cold, warm = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="genrecnn-bench-") as tmp:
                cache = FeatureCache(tmp)
                t, n = timed_load(args.data, cache, jobs)
                cold.append(t)
                t, n = timed_load(args.data, cache, jobs)
                warm.append(t)
                assert cache.hits == n, "the second load should read every clip from the cache"
        c, w = n / statistics.median(cold), n / statistics.median(warm)
        print(f"{jobs:>4}  {n:>5}  {c:>12.1f}  {w:>14.1f}  {w / c:>7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
