"""genrecnn.engine.bench timings and the `genrecnn bench` command (small, CPU-only runs)."""
from __future__ import annotations

import csv
import time

import numpy as np
import pytest

from genrecnn.engine import bench, sweeps
from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.errors import GenrecnnError
from genrecnn.engine.layers import KINDS, LAYER_TYPES
from plugins import needs_example
from badinput import run_cli


class CountingSync(NumpyBackend):
    """NumPy that counts synchronize() calls, to show timings bracket every call."""

    name = "counting"

    def __init__(self):
        self.syncs = 0

    def synchronize(self):
        self.syncs += 1


class NoConv(NumpyBackend):
    name = "noconv"
    ops = frozenset({"transfer", "maxpool1d", "global_pool", "dense", "activation", "softmax"})


def test_time_call_warms_up_repeats_and_stops_at_the_budget():
    calls, syncs = [], []
    t = bench.time_call(lambda: calls.append(1), lambda: syncs.append(1), reps=4, warmup=2,
                        target=0.0)
    assert len(calls) == 6 and t.reps == 4 and len(syncs) == 1 + 2 + 4
    calls.clear(), syncs.clear()
    # fast calls: runs of several calls per sync, the time per call
    t = bench.time_call(lambda: calls.append(1), lambda: syncs.append(1), reps=3, warmup=1,
                        target=1.0)
    assert len(calls) == 1 + 1 + 3 * bench.MAX_INNER and len(syncs) == 1 + 1 + 1 + 3
    assert t.reps == 3 and t.median < 1e-3
    slow = bench.time_call(lambda: time.sleep(0.02), lambda: None, reps=10, warmup=0,
                           budget=0.01)
    assert slow.reps == 1 and slow.median >= 0.02
    assert slow.p25 <= slow.median <= slow.p75
    gone = bench.time_call(lambda: time.sleep(0.02), lambda: None, reps=5, warmup=1,
                           abandon_after=0.005)
    assert gone.abandoned and gone.reps == 1
    kept = bench.time_call(lambda: None, lambda: None, reps=3, abandon_after=0.5)
    assert not kept.abandoned and kept.reps == 3


@pytest.mark.parametrize("kind", KINDS)
def test_measure_layer_times_every_kind_with_syncs(kind):
    be = CountingSync()
    cfg, shape, batch = sweeps.sweep_case(kind, 2 ** 10)
    t = bench.measure_layer(be, cfg, shape, batch, "float32", optimizer="adam", reps=2)
    assert t.backend == "counting" and t.forward.reps == 2 and t.backward.reps == 2
    assert (t.update is not None) == (kind in ("conv", "fc", "norm"))
    assert t.total > 0 and be.syncs >= 2 * (1 + 1 + 2)


class SlowBackward(NumpyBackend):
    name = "slow-backward"

    def conv1d_backward(self, x, w, dy):
        time.sleep(0.05)
        return super().conv1d_backward(x, w, dy)


def test_measure_layer_stops_where_forward_or_backward_passes_the_bound():
    cfg, shape, batch = sweeps.sweep_case("conv", 2 ** 10)
    fast = bench.measure_layer(NumpyBackend(), cfg, shape, batch, "float32", optimizer="adam",
                               reps=2, abandon_after=0.04)
    assert not fast.pruned and fast.update is not None
    slow = bench.measure_layer(SlowBackward(), cfg, shape, batch, "float32", optimizer="adam",
                               reps=2, abandon_after=0.04)
    assert slow.pruned and slow.backward.abandoned and slow.update is None
    assert slow.total >= 0.05                         # a lower bound of the whole layer


def test_measure_transfer_host_and_between_backends():
    a, b = NumpyBackend(), CountingSync()
    for src, dst in [(None, a), (a, None), (a, b), (b, a)]:
        t = bench.measure_transfer(src, dst, (4, 8, 16), "float64", reps=2)
        assert t.reps == 2 and t.median >= 0
    assert b.syncs > 0
    with pytest.raises(GenrecnnError):
        bench.measure_transfer(None, None, (4,), "float32")
    pairs = sweeps.transfer_pairs([a, b])
    assert len(pairs) == 6 and (None, None) not in pairs


def test_sweep_cases_and_size_parsing():
    for kind in KINDS:
        for k in (5, 12, 20):
            cfg, shape, batch = sweeps.sweep_case(kind, 2 ** k)
            elements = batch * int(np.prod(shape))
            assert 0.6 * 2 ** k <= elements <= 2 ** k and LAYER_TYPES[cfg["type"]].kind == kind
    assert sweeps.parse_sizes("5:8") == [32, 64, 128, 256]
    assert sweeps.parse_sizes("5:24:6") == [2 ** 5, 2 ** 11, 2 ** 17, 2 ** 23]
    assert sweeps.parse_sizes("10,12") == [1024, 4096]
    for bad in ("x", "3:8", "5:40", "8:5", "5:9:0"):
        with pytest.raises(GenrecnnError, match="size"):
            sweeps.parse_sizes(bad)


def test_sweep_skips_backends_without_the_op():
    rows = sweeps.sweep_layers([NumpyBackend(), NoConv()], ["conv", "act"], [64, 256], "float32",
                              reps=1)
    assert {(r["kind"], r["backend"]) for r in rows} == {
        ("conv", "numpy"), ("act", "numpy"), ("act", "noconv")}
    assert {r["phase"] for r in rows} == {"forward", "backward"}
    limits = sweeps.SweepLimits(max_call_s=0.0)          # everything counts as too slow
    rows = sweeps.sweep_layers([NumpyBackend()], ["act"], [64, 256, 1024], "float32", reps=1,
                              limits=limits)
    assert {r["elements"] for r in rows} == {64} and limits.skipped


def test_bench_sweep_writes_csv_and_png(tmp_path, capsys):
    out = tmp_path / "b"
    code, text, err = run_cli(["bench", "--backends", "numpy", "--sizes", "5:9:2",
                               "--layers", "conv,fc", "--reps", "1", "--out", str(out)], capsys)
    assert code == 0, err
    assert "conv" in text and "numpy -> host" in text
    with open(out / "layers.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["kind"] for r in rows} == {"conv", "fc"} and len(rows) == 2 * 3 * 2
    assert float(rows[0]["median_s"]) > 0
    for name in ("layers_conv.png", "layers_fc.png", "transfers.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "transfers.csv").stat().st_size > 0


def test_bench_arch_json_and_errors(tmp_path, capsys, strict_json):
    code, text, err = run_cli(["bench", "--backends", "numpy", "--arch", "small",
                               "--mels", "16", "--frames", "64", "--batch-size", "4", "--reps", "1",
                               "--out", str(tmp_path), "--json"], capsys)
    assert code == 0, err
    data = strict_json(text)
    layers = {r["layer"] for r in data["layers"]}
    assert {"conv1", "fc1", "softmax"} <= layers
    assert any(r["phase"] == "update" and r["layer"] == "conv1" for r in data["layers"])
    assert (tmp_path / "arch_layers.png").exists()
    code, _, err = run_cli(["bench", "--layers", "conv,bogus"], capsys)
    assert code == 2 and err.startswith("error:") and "bogus" in err
    code, _, err = run_cli(["bench", "--backends", "nosuch"], capsys)
    assert code == 2 and "nosuch" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["bench", "--sizes", "1:3"], capsys)
    assert code == 2 and "size" in err


@pytest.mark.parametrize("backends", ["numpy", "numpy,example"])
def test_bench_compare_auto_small_run(tmp_path, capsys, monkeypatch, backends):
    if "example" in backends:
        needs_example()
    monkeypatch.setenv("GENRECNN_CACHE", str(tmp_path / "cache"))
    code, text, err = run_cli(["bench", "--compare-auto", "--backends", backends,
                               "--arch", "small", "--mels", "16", "--frames", "64",
                               "--batch-size", "4", "--reps", "2", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    with open(tmp_path / "compare_auto.csv") as fh:
        rows = [r["placement"] for r in csv.DictReader(fh)]
    if backends == "numpy":
        # auto's plan is numpy only: one placement, timed once
        assert "auto chose numpy only: the same placement, timed once" in text
        assert rows == ["auto"]
    else:
        assert "auto / best single" in text
        assert rows[0] == "auto" and rows[1:] and set(rows[1:]) <= {"numpy only", "example only"}
