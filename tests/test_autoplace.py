"""--backend auto: the chain DP on fake tables, measured plans with test backends,
dtype/op support, the per-machine cache, and the path through place_by_option."""
from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pytest

from genrecnn.engine import autoplace, registry as registry_mod
from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.autoplace import auto_plan, cache as cache_mod, choose, \
    place_by_option
from genrecnn.engine.autoplace.compare import RegistryView
from genrecnn.engine.autoplace.choose import decide
from genrecnn.engine.autoplace.measure import Tables, candidates
from genrecnn.engine.autoplace.solve import greedy_plan, plan_cost, solve_chain
from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.errors import PlacementError
from genrecnn.engine.ops import OP_NAMES
from genrecnn.engine.placement import format_plan
from genrecnn.engine.registry import Registry
from plugins import registry_with

DELAY = 0.005   # seconds added to each delayed op of the test backends

CONV_OPS = ("conv1d", "conv1d_backward", "conv1d_backward_params")
OTHER_OPS = ("maxpool1d", "maxpool1d_backward", "global_pool", "global_pool_backward", "dense",
             "dense_backward", "activation", "activation_backward", "softmax",
             "softmax_cross_entropy", "softmax_cross_entropy_backward")


def _delayed(method):
    def slow(self, *args, **kwargs):
        time.sleep(DELAY)
        return getattr(NumpyBackend, method)(self, *args, **kwargs)
    return slow


class FastConv(NumpyBackend):
    """NumPy with every layer op but the convolution slowed down: best for conv only."""

    name = "fastconv"


class FastRest(NumpyBackend):
    """NumPy with the convolution slowed down: best for everything but conv."""

    name = "fastrest"


for _m in OTHER_OPS:
    setattr(FastConv, _m, _delayed(_m))
for _m in CONV_OPS:
    setattr(FastRest, _m, _delayed(_m))


class F64Conv(FastConv):
    """Fast conv too, but float64 only: never chosen for a float32 network."""

    name = "f64conv"
    dtypes = ("float64",)


class NoConv(NumpyBackend):
    """Declares every op group but conv1d."""

    name = "noconv"
    ops = frozenset({"transfer", "maxpool1d", "global_pool", "dense", "activation", "softmax",
                     "sgd_update", "adam_update"})


class Offline(NumpyBackend):
    name = "offline"

    @classmethod
    def availability(cls):
        return False, "test backend switched off"


def _registry(*classes):
    """The installed plugins plus ``classes``, seen through a view that keeps only
    ``classes``: plans then do not depend on which other backends are installed."""
    return RegistryView(registry_with(*classes),
                        [c.name for c in classes])


def _net(dtype="float32"):
    return build_network(load_architecture("small"), (16, 64), 10, dtype=dtype)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENRECNN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "autoplace.json"


# -- the DP on fake tables ----------------------------------------------------------------

def test_dp_differs_from_greedy_when_moves_cost():
    layers = [{"a": 1.0, "b": 5.0}, {"a": 5.0, "b": 4.0}, {"a": 1.0, "b": 5.0}]
    edges = [{("a", "b"): 10.0, ("b", "a"): 10.0}] * 2
    io = {"a": 0.0, "b": 0.0}
    plan, total = solve_chain(layers, edges, io, io)
    assert greedy_plan(layers) == ["a", "b", "a"]
    assert plan == ["a", "a", "a"] and total == pytest.approx(7.0)
    assert plan_cost(["a", "b", "a"], layers, edges, io, io) == pytest.approx(26.0)


def test_dp_switches_when_the_move_pays_and_counts_host_transfers():
    layers = [{"a": 1.0, "b": 100.0}, {"a": 100.0, "b": 1.0}]
    edges = [{("a", "b"): 5.0, ("b", "a"): 5.0}]
    plan, total = solve_chain(layers, edges, {"a": 0.0, "b": 0.0}, {"a": 0.0, "b": 0.0})
    assert plan == ["a", "b"] and total == pytest.approx(7.0)
    # b is slightly faster on layer 0, but getting the input onto b costs more
    layers = [{"a": 2.0, "b": 1.0}, {"a": 1.0, "b": 1.0}]
    plan, _ = solve_chain(layers, edges, {"a": 0.0, "b": 3.0}, {"a": 0.0, "b": 0.0})
    assert plan == ["a", "a"]
    plan, _ = solve_chain(layers, edges, {"a": 0.0, "b": 0.0}, {"a": 9.0, "b": 0.0})
    assert plan == ["b", "b"]


def test_dp_matches_brute_force_and_skips_backends_that_cannot_run_a_layer():
    rng = np.random.default_rng(1)
    names = ["a", "b", "c"]
    for _ in range(40):
        n = int(rng.integers(1, 7))
        layers = []
        for _ in range(n):
            ok = [b for b in names if rng.random() < 0.7] or ["a"]
            layers.append({b: float(rng.uniform(0, 10)) for b in ok})
        edges = [{(x, y): float(rng.uniform(0, 8)) for x in names for y in names if x != y}
                 for _ in range(n - 1)]
        ins = {b: float(rng.uniform(0, 3)) for b in names}
        outs = {b: float(rng.uniform(0, 3)) for b in names}
        plan, total = solve_chain(layers, edges, ins, outs)
        brute = min(plan_cost(list(p), layers, edges, ins, outs)
                    for p in itertools.product(*[list(c) for c in layers]))
        assert total == pytest.approx(brute)
        assert all(b in c for b, c in zip(plan, layers))


def test_nearly_equal_mixed_plan_gives_way_to_one_backend():
    net = _net()
    n = len(net.layers)
    layer_costs = [{"a": 1.0, "b": 1.001} for _ in range(n)]
    layer_costs[0] = {"a": 1.0, "b": 0.99}           # mixing saves about 0.1 %
    tables = Tables(layer_costs, [{} for _ in range(n)],
                              [{("a", "b"): 0.0, ("b", "a"): 0.0} for _ in range(n - 1)],
                              {"a": 0.0, "b": 0.0}, {"a": 0.0, "b": 0.0})
    report = decide(net, tables, ["a", "b"], batch_size=4)
    assert len(set(report.plan)) == 1 and report.notes
    report = decide(net, tables, ["a", "b"], batch_size=4, prefer_single_within=0.0)
    assert report.plan[0] == "b" and set(report.plan[1:]) == {"a"}


# -- measured plans -----------------------------------------------------------------------

def test_measured_plan_puts_conv_on_the_fast_conv_backend_only():
    reg = _registry(FastConv, FastRest)
    net = _net()
    lines = []
    report = auto_plan(net, 8, echo=lines.append, registry=reg)
    kinds = [layer.kind for layer in net.layers]
    assert report.plan == ["fastconv" if k == "conv" else "fastrest" for k in kinds]
    assert "measuring" in lines[0]
    text = report.format()
    assert "fastconv" in text and "predicted step" in text and "conv1" in text
    assert not report.cached
    assert set(report.layers[0].total_s) == {"fastconv", "fastrest"}
    assert report.predicted_s <= min(report.single_s.values())
    # the mixed plan was checked with real training steps against fastrest alone
    assert report.validation_s["mixed"] < report.validation_s["fastrest only"]
    json.dumps(report.as_dict())       # storable in model meta


class Plain(NumpyBackend):
    """NumPy with a convolution forward slowed down by DELAY: milliseconds, far above
    timing noise, that the flattering backend's memo seems to save."""

    name = "plain"


Plain.conv1d = _delayed("conv1d")


class Flattering(NumpyBackend):
    """Answers a repeated conv forward (same arrays, as a benchmark makes) from memory,
    but is four times slower than plain on new data: per-layer timings flatter it,
    real steps do not. Its other layer ops are slow, so the flattered plan is a mixed one."""

    name = "flattering"

    def _memo(self, key, args, compute):
        memo = self.__dict__.setdefault("memo", {})
        hit = memo.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], args)):
            return hit[1]
        time.sleep(4 * DELAY)
        memo[key] = (args, compute(*args))
        return memo[key][1]

    def conv1d(self, x, w, b):
        return self._memo("f", (x, w, b), super().conv1d)


for _m in OTHER_OPS:
    setattr(Flattering, _m, _delayed(_m))


def test_real_training_steps_overrule_a_flattering_mixed_plan():
    reg = _registry(Flattering, Plain)
    net = _net()
    report = auto_plan(net, 8, echo=lambda s: None, registry=reg, prefer_single_within=0.0)
    assert "mixed" in report.validation_s, report.format()   # layer by layer, mixing looked best
    assert report.plan == ["plain"] * len(net.layers)
    assert report.validation_s["mixed"] > report.validation_s["plain only"]
    assert any("keeping plain" in n for n in report.notes)


@pytest.mark.parametrize("b_predicted, validated", [(1.1, True), (2.0, False)])
def test_close_single_plans_are_decided_by_real_steps(monkeypatch, b_predicted, validated):
    from genrecnn.engine import bench
    from genrecnn.engine.bench import LayerTiming, Timing

    def fake_layer(be, config, input_shape, batch, dtype, **kw):
        t = Timing([b_predicted if be.name == "plain" else 1.0])
        return LayerTiming(be.name, t, Timing([0.0]), Timing([0.0]))

    timed = []

    def fake_steps(make_network, plans, *a, **k):
        timed.append(set(plans))
        return {label: [2.0 if label == "flattering" else 1.0] * 3 for label in plans}

    monkeypatch.setattr(bench, "measure_layer", fake_layer)
    monkeypatch.setattr(bench, "measure_transfer", lambda *a, **k: Timing([1e-4]))
    monkeypatch.setattr(choose, "time_plans", fake_steps)
    net = _net()
    report = auto_plan(net, 4, echo=lambda s: None, registry=_registry(Flattering, Plain),
                       use_cache=False)
    if validated:       # per-layer sums favour flattering by 10 %, real steps favour plain
        assert timed == [{"flattering", "plain"}] and set(report.plan) == {"plain"}
        assert any("keeping plain" in n for n in report.notes)
    else:
        assert timed == [] and set(report.plan) == {"flattering"}


def test_a_whole_measured_plan_bounds_every_other_candidate(monkeypatch):
    """Moves between the two backends cost 10 s, so the per-layer bound (best
    time plus the dearest moves) rules nothing out; the whole numpy plan,
    measured first, rules out every layer of the slow backend: after its forward,
    or (activations: 12 ms, within the 30 ms plan) once the fastest plan through
    it, every other layer at its best, would exceed the measured plan."""
    from genrecnn.engine import bench
    from genrecnn.engine.bench import LayerTiming, Timing
    seen = []

    def fake_layer(be, config, input_shape, batch, dtype, *, abandon_after=None, **kw):
        slow = be.name == "slow"
        fwd = 1.0 if slow and config["type"] != "act" else 0.001
        if batch == 1:                                   # the first layer's probe
            return LayerTiming(be.name, Timing([fwd / 10]), None, None)
        seen.append((be.name, abandon_after))
        if abandon_after is not None and fwd > abandon_after:
            return LayerTiming(be.name, Timing([fwd], abandoned=True), None, pruned=True)
        return LayerTiming(be.name, Timing([fwd]), Timing([0.01 if slow else 0.001]),
                           Timing([0.001]))

    copies = []

    def fake_transfer(src, dst, *a, **k):
        copies.append((src and src.name, dst and dst.name))
        return Timing([10.0 if src and dst else 1e-4])

    monkeypatch.setattr(bench, "measure_layer", fake_layer)
    monkeypatch.setattr(bench, "measure_transfer", fake_transfer)
    reg = Registry()
    reg.add(NumpyBackend, "test")
    reg.add(Slow, "test")
    net = _net()
    n = len(net.layers)
    report = auto_plan(net, 4, echo=lambda s: None, registry=reg, use_cache=False)
    assert report.plan == ["numpy"] * n
    upper = 2e-4 + n * 3 * 0.001                         # in + out + every layer's f+b+u
    assert seen[:n] == [("numpy", None)] * n             # the whole numpy plan first
    assert seen[n:] == [("slow", pytest.approx(2 * upper))] * n
    for layer, lc in zip(net.layers, report.layers):
        assert lc.pruned == ([] if layer.kind == "act" else ["slow"])
    # no move between the backends (only the host ends, for the single-plan sums)
    assert {c for c in copies if None not in c} == set()


def test_plan_respects_dtype_op_support_and_availability():
    reg = _registry(FastRest, F64Conv, NoConv, Offline)
    assert "offline" not in reg.available_names()
    net32, net64 = _net("float32"), _net("float64")
    c32 = candidates(net32, reg, "adam")
    assert all("f64conv" not in c and "offline" not in c for c in c32)
    for layer, c in zip(net32.layers, c32):
        assert ("noconv" in c) == (layer.kind != "conv")
    plan32 = auto_plan(net32, 4, echo=lambda s: None, registry=reg).plan
    assert [b for b, layer in zip(plan32, net32.layers) if layer.kind == "conv"] == ["fastrest"] * 2
    assert "f64conv" not in plan32 and "offline" not in plan32
    plan64 = auto_plan(net64, 4, echo=lambda s: None, registry=reg).plan
    assert [b for b, layer in zip(plan64, net64.layers) if layer.kind == "conv"] == ["f64conv"] * 2


def test_no_backend_for_a_layer_is_one_clear_error():
    reg = Registry()
    reg.add(NoConv, "test")
    with pytest.raises(PlacementError, match="no available backend runs layer 'conv1'"):
        candidates(_net(), reg, "adam")


class Slow(NumpyBackend):
    name = "slow"


class NoDense(NumpyBackend):
    """Fast, but without the dense op: no single-backend plan of its own."""
    name = "nodense"
    ops = frozenset(OP_NAMES - {"dense"})


def test_hopeless_candidates_are_timed_on_the_forward_only(monkeypatch):
    from genrecnn.engine import bench
    from genrecnn.engine.bench import LayerTiming, Timing
    seen = []

    def fake_layer(be, config, input_shape, batch, dtype, *, abandon_after=None, **kw):
        fwd = 1.0 if (be.name == "slow" and config["type"] == "conv") else 0.001
        seen.append((be.name, config["type"], batch, abandon_after))
        if abandon_after is not None and fwd > abandon_after:
            return LayerTiming(be.name, Timing([fwd], abandoned=True), None, pruned=True)
        return LayerTiming(be.name, Timing([fwd]), Timing([fwd]), Timing([fwd]))

    monkeypatch.setattr(bench, "measure_layer", fake_layer)
    monkeypatch.setattr(bench, "measure_transfer", lambda *a, **k: Timing([1e-4]))
    reg = Registry()
    reg.add(NoDense, "test")
    reg.add(Slow, "test")
    net = _net()
    # (no real-step check: both backends are plain NumPy, a coin toss)
    report = auto_plan(net, 4, echo=lambda s: None, registry=reg, use_cache=False,
                       validate_steps=0)
    plan = report.plan
    conv = [i for i, layer in enumerate(net.layers) if layer.kind == "conv"]
    assert [plan[i] for i in conv] == ["nodense", "nodense"]
    for i, lc in enumerate(report.layers):
        assert lc.pruned == (["slow"] if i in conv else [])
        if i in conv:
            assert set(lc.phases_s["slow"]) == {"forward"}
            assert lc.total_s["slow"] == pytest.approx(1.0)
    # with no whole plan on one backend, the bound is twice the best time so far plus
    # its dearest moves in and out (the first layer's one-example probes come first)
    assert {(b, n) for b, _, n, _ in seen[:2]} == {("nodense", 1), ("slow", 1)}
    first_slow = next(a for b, k, n, a in seen if b == "slow" and n == 4)
    assert first_slow is not None and first_slow == pytest.approx(2 * (0.003 + 1e-4 + 2e-4))
    assert ">1000.00" in report.format()


# -- cache --------------------------------------------------------------------------------

def test_second_call_is_a_cache_hit(monkeypatch, _cache):
    calls = []
    real = autoplace.measure_tables
    monkeypatch.setattr(autoplace, "measure_tables",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    reg = _registry(FastConv, FastRest)
    first = auto_plan(_net(), 8, echo=lambda s: None, registry=reg)
    lines = []
    second = auto_plan(_net(), 8, echo=lines.append, registry=reg)
    assert first.plan == second.plan and len(calls) == 1 and lines == []
    assert second.cached and "cached plan" in second.format().splitlines()[0]
    data = json.loads(_cache.read_text())
    (key,) = data["entries"]
    assert "batch 8" in key and "float32" in key and "fastconv,fastrest" in key
    auto_plan(_net(), 4, echo=lambda s: None, registry=reg)         # another batch size
    auto_plan(_net(), 8, echo=lambda s: None, registry=reg, refresh=True)
    assert len(calls) == 3 and len(json.loads(_cache.read_text())["entries"]) == 2


def test_a_streamed_training_set_charges_each_upload_and_is_cached_apart(_cache):
    reg = _registry(FastRest)
    resident = auto_plan(_net(), 8, echo=lambda s: None, registry=reg)
    streamed = auto_plan(_net(), 8, echo=lambda s: None, registry=reg, streamed=True)
    assert not streamed.cached
    assert resident.input_s["fastrest"] == 0.0 < streamed.input_s["fastrest"]
    assert any("--resident-mb" in n for n in streamed.notes)
    keys = list(json.loads(_cache.read_text())["entries"])
    assert len(keys) == 2 and sum(k.endswith("|streamed") for k in keys) == 1


def test_corrupt_cache_is_measured_over(_cache):
    _cache.parent.mkdir(parents=True)
    _cache.write_text("{not json")
    report = auto_plan(_net(), 4, echo=lambda s: None, registry=_registry(FastRest))
    assert report.plan == ["fastrest"] * len(_net().layers)
    assert json.loads(_cache.read_text())["version"] == cache_mod.CACHE_VERSION


# -- through the CLI's entry point --------------------------------------------------------

def test_backend_auto_dry_run_prints_a_mixed_plan(monkeypatch):
    monkeypatch.setattr(registry_mod, "_default", _registry(FastConv, FastRest))
    net = _net()
    lines = []
    plan, report = place_by_option(net, "auto", 8, dry_run=True, echo=lines.append)
    assert lines[-1] == format_plan(net.layers, plan)
    assert "conv1=fastconv" in lines[-1] and "fc1=fastrest" in lines[-1]
    assert net.backend_names == ["numpy"] * len(net.layers)     # dry run: nothing placed
    placed, again = place_by_option(net, "auto", 8, echo=lines.append)   # cached, then placed
    assert placed == plan and net.backend_names == plan and again.cached and report.plan == plan
    x = np.random.default_rng(0).standard_normal((8, 16, 64)).astype("float32")
    loss, probs = net.loss_and_grads(x, np.arange(8) % 10)
    assert np.isfinite(loss) and probs.shape == (8, 10)
