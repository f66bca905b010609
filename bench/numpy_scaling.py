"""How the NumPy backend's passes scale with threads: the dissertation's first
convolution (forward and weight gradient), leaky ReLU forward and backward, and a
21 MB copy, each timed at 1, 2, 4, ... threads up to the cores this process may use.

    python bench/numpy_scaling.py            # taskset -c 0-15 ... on a larger machine

Every pass still caps itself at ``parallel.MAX_THREADS`` and by its work
(``parallel.MIN_WORK``); the table shows what those limits are chosen from.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from genrecnn.backends.numpy_backend import conv, parallel
from genrecnn.backends.numpy_backend.sequence import _gate_backward, _leaky_relu


def median_ms(fn, reps: int = 9) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((32, 128, 1292), dtype=np.float32)
    w = rng.random((32, 128, 4), dtype=np.float32)
    b = np.zeros(32, np.float32)
    dy = rng.random((32, 32, 1289), dtype=np.float32)
    h = rng.random((32, 32, 1289), dtype=np.float32) - 0.5
    passes = {"conv1d fwd": lambda: conv.forward(x, w, b),
              "conv1d dw": lambda: conv.backward(x, w, dy, need_dx=False),
              "leaky fwd": lambda: _leaky_relu(h, 0.01),
              "leaky bwd": lambda: _gate_backward(h, dy, 0.01),
              "copy 21 MB": lambda: parallel.copy(x)}
    print("ms, median of 9\nthreads" + "".join(f"{k:>13}" for k in passes))
    n, counts = parallel.cores(), []
    t = 1
    while t < n:
        counts.append(t)
        t *= 2
    for t in counts + [n]:
        parallel.set_threads(t)
        with threadpool_limits(t, user_api="blas"):
            print(f"{t:>7}" + "".join(f"{median_ms(fn):13.2f}" for fn in passes.values()),
                  flush=True)


if __name__ == "__main__":
    main()
