"""The step runner's stream path (a training set over the resident budget, batches uploaded
through the ``staging`` ops while the previous step computes): the same numbers as the
device path, the upload order the double buffering needs, and when it is chosen."""
import threading

import numpy as np
import pytest

from genrecnn.backends.numpy_backend import NumpyBackend
from genrecnn.engine.batches import epoch_rng, plan_epoch
from genrecnn.engine.feed import BatchFeed
from genrecnn.engine.items import ArrayItems
from genrecnn.engine.registry import registry
from genrecnn.engine.steps import StepRunner
from genrecnn.run.settings import TrainSettings, new_network
from plugins import needs_example, registry_with

BIG = 1 << 40
# masks, mixup, crops narrower than the items, AdamW, and a short last batch (37 = 4 x 8 + 5)
SETTINGS = TrainSettings(arch="small", batch_size=8, crop=20, mixup=0.4, freq_mask=3,
                         time_mask=5, optimizer="adamw", weight_decay=0.01, lr=3e-3, seed=3)


def _data(n=37, n_mels=12, frames=31):
    rng = np.random.default_rng(5)
    return rng.normal(size=(n, n_mels, frames)).astype(np.float32), rng.integers(0, 3, n)


class Recording(NumpyBackend):
    """NumPy with its staging calls and gathers logged; tokens number the uploads."""

    name = "recording"

    def __init__(self):
        super().__init__()
        self.log = []
        self.threads = set()          # the threads that asked whether an upload finished

    def upload_async(self, host, dst):
        super().upload_async(host, dst)
        n = sum(1 for e in self.log if e[0] == "upload")
        self.log.append(("upload", n, id(dst), id(host)))
        return n

    def await_upload(self, token):
        self.log.append(("await", token))

    def upload_finished(self, token):
        self.log.append(("finished", token))
        self.threads.add(threading.get_ident())

    def gather_batch(self, data, labels, index, start, width):
        self.log.append(("gather", id(data)))
        return super().gather_batch(data, labels, index, start, width)


class NoStaging(NumpyBackend):
    """Resident batches and the on-device loss, but no streamed uploads."""

    name = "nostaging"
    ops = NumpyBackend.declared_ops() - {"staging"}


@pytest.fixture(scope="module")
def reg():
    return registry_with(Recording, NoStaging)


def _train(budget, backend="numpy", reg=None, epochs=2, graphs=True, **changes):
    settings = TrainSettings.from_dict(dict(SETTINGS.as_dict(), **changes))
    x, y = _data()
    net = new_network(settings, x.shape[1], x.shape[2], 3)
    net.place(backend, registry=reg)
    runner = StepRunner(net, settings.make_optimizer(), ArrayItems(x, y), settings,
                        graphs=graphs, resident_budget=budget)
    rows = []
    for epoch in range(1, epochs + 1):
        plans = plan_epoch(len(x), x.shape[1], x.shape[2], net.input_shape[1], settings,
                           epoch_rng(settings.seed, epoch))
        rows.append(runner.run_epoch(plans, [settings.lr] * len(plans)))
    path = runner.path
    assert runner.graphs == (graphs and net.backends[0].device == "cuda")
    runner.close()
    return path, rows, net


def test_stream_path_gives_exactly_the_device_paths_numbers():
    path_d, rows_d, net_d = _train(BIG)
    path_s, rows_s, net_s = _train(0)
    assert (path_d, path_s) == ("device", "stream")
    assert rows_s == rows_d                                   # loss and accuracy, bit for bit
    want = net_d.host_params()
    for key, value in net_s.host_params().items():
        assert np.array_equal(value, want[key]), key
    assert net_s.steps == net_d.steps == 2 * 5


def test_uploads_are_double_buffered_in_the_order_the_steps_need(reg):
    """Upload 0 before the first step; before step i the compute waits for upload i and
    upload i + 1 starts into the other slot; step i then gathers from slot i % 2. Every
    staging buffer is rewritten only after its last upload finished. Nothing uploads the
    whole training set: every gather reads a slot."""
    path, _, net = _train(0, backend="recording", reg=reg)
    be, steps = net.backends[0], 5
    assert path == "stream"
    uploads = [e for e in be.log if e[0] == "upload"]
    slots, hosts = [u[2] for u in uploads[:2]], [u[3] for u in uploads[:2]]
    assert slots[0] != slots[1] and hosts[0] != hosts[1]
    expected = []
    for base in (0, steps):                                   # two epochs, numbered uploads
        expected.append(("upload", base, slots[0], hosts[0]))
        for i in range(steps):
            expected.append(("await", base + i))
            if i + 1 < steps:
                k = (i + 1) % 2
                expected.append(("upload", base + i + 1, slots[k], hosts[k]))
            expected.append(("gather", slots[i % 2]))
    assert [e for e in be.log if e[0] != "finished"] == expected
    for n, upload in enumerate(uploads):
        earlier = [u for u in uploads[:n] if u[3] == upload[3]]
        if earlier:                                           # its buffer's last upload
            between = be.log[be.log.index(earlier[-1]):be.log.index(upload)]
            assert ("finished", earlier[-1][1]) in between, (n, between)


def test_crops_are_cut_ahead_off_the_thread_that_drives_the_backend(reg, monkeypatch):
    """Each epoch's first batch is cut before its first step; every later one by the
    prefetch thread while earlier steps run; the backend hears only the driving thread."""
    on_main = []
    cut = BatchFeed._cut

    def spy(self, plan, out):
        on_main.append(threading.current_thread() is threading.main_thread())
        return cut(self, plan, out)

    monkeypatch.setattr(BatchFeed, "_cut", spy)
    path, _, net = _train(0, backend="recording", reg=reg)
    assert path == "stream"
    assert on_main == [True, False, False, False, False] * 2      # 2 epochs of 5 steps
    assert net.backends[0].threads == {threading.get_ident()}


@pytest.mark.parametrize("backend, budget, path", [
    ("numpy", 0, "stream"), ("numpy", BIG, "device"),
    ("nostaging", 0, "host"), ("nostaging", BIG, "device")])
def test_stream_path_needs_the_staging_ops(reg, backend, budget, path):
    assert _train(budget, backend=backend, reg=reg, epochs=1)[0] == path


def test_a_backend_without_batches_or_staging_stays_on_the_host():
    """The example third-party backend implements neither the batch nor the staging ops
    (nor the paired loss that mixup needs on any path)."""
    needs_example()
    assert _train(0, backend="example", epochs=1, optimizer="sgd", mixup=0.0)[0] == "host"


def _gpu_reason(name):
    info = registry().infos.get(name)
    return "" if info is not None and info.available else (
        f"{name} backend unavailable here: {info.reason if info else 'not installed'}")


@pytest.mark.gpu
@pytest.mark.parametrize("graphs", [True, False], ids=["graphs", "no-graphs"])
@pytest.mark.parametrize("name", ["cupy", "pycuda"])
def test_gpu_stream_path_matches_the_resident_set(name, graphs):
    """On a CUDA backend the streamed batches (two slots, one graph each) train what the
    resident set trains (the loss sums with atomics, so to rounding, not bit for bit)."""
    why = _gpu_reason(name)
    if why:
        pytest.skip(why)
    path_d, rows_d, net_d = _train(BIG, backend=name, graphs=graphs, epochs=3)
    path_s, rows_s, net_s = _train(0, backend=name, graphs=graphs, epochs=3)
    assert path_d == ("graph" if graphs else "device") and path_s == "stream"
    np.testing.assert_allclose(np.array(rows_s), np.array(rows_d), rtol=1e-4, atol=1e-6)
    want = net_d.host_params()
    for key, value in net_s.host_params().items():
        np.testing.assert_allclose(value, want[key], rtol=1e-3, atol=1e-5, err_msg=key)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cupy", "pycuda"])
def test_gpu_auto_times_streamed_steps_beside_their_uploads(name, monkeypatch):
    """Auto placement's measured steps for a streamed set are the step runner's: each
    cuts the next batch on the host and starts its upload beside the replay, as training
    does, so a step is shorter than the step, the cut and the upload one after the other."""
    why = _gpu_reason(name)
    if why:
        pytest.skip(why)
    import time

    from genrecnn.engine.autoplace.timing import CAPTURE_STEPS, time_plans
    from genrecnn.engine.batches import StepOptions
    from genrecnn.engine.feed import BatchFeed
    be = registry().get(name)
    uploads = []
    real = type(be).upload_async
    monkeypatch.setattr(type(be), "upload_async",
                        lambda self, host, dst: uploads.append(host.shape) or real(self, host, dst))
    settings = TrainSettings(arch="small", optimizer="adam")        # no crop: 64 x 400 a batch
    make = lambda: new_network(settings, 64, 400, 3)                # noqa: E731
    plan = {name: [name] * len(make().layers)}
    resident = min(time_plans(make, plan, registry(), 256, "adam", reps=5, warmup=1)[name])
    assert uploads == []
    streamed = min(time_plans(make, plan, registry(), 256, "adam", reps=5, warmup=1,
                              streamed=True)[name])
    assert uploads == [(256, 64, 400)] * (CAPTURE_STEPS + 1 + 5)   # untimed + 5 timed
    items = ArrayItems(np.zeros((256, 64, 400), np.float32), np.zeros(256, int))
    batch = plan_epoch(256, 64, 400, 400, StepOptions(256), epoch_rng(0, 1))[0]

    def cut_and_upload():
        feed = BatchFeed(be, items, 256, 400, "float32")
        try:
            t0 = time.perf_counter()
            feed.start(0, batch)
            feed.wait(0)
            be.synchronize()
            return time.perf_counter() - t0
        finally:
            feed.close()
    assert streamed < resident + min(cut_and_upload() for _ in range(3))


@pytest.mark.parametrize("streamed", [False, True])
def test_auto_times_the_training_step_runner(monkeypatch, streamed):
    """Auto placement's timed steps are the step runner's: on NumPy (which has the
    staging ops) a streamed set uploads one batch per step, a resident one none, and
    every step, untimed or timed, is a training step of the network."""
    from genrecnn.engine.autoplace.timing import CAPTURE_STEPS, time_plans
    uploads, made = [], []
    real = NumpyBackend.upload_async
    monkeypatch.setattr(NumpyBackend, "upload_async",
                        lambda self, host, dst: uploads.append(host.shape) or real(self, host, dst))

    def make():
        made.append(new_network(TrainSettings(arch="small"), 16, 24, 3))
        return made[-1]
    plan = {"numpy": ["numpy"] * len(make().layers)}
    made.clear()
    samples = time_plans(make, plan, registry(), 4, "adam", reps=3, warmup=1,
                         streamed=streamed)
    steps = CAPTURE_STEPS + 1 + 3
    assert len(samples["numpy"]) == 3 and all(t > 0 for t in samples["numpy"])
    assert [net.steps for net in made] == [steps]
    assert uploads == ([(4, 16, 24)] * steps if streamed else [])
