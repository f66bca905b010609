"""--precision end to end on the CPU: NumPy trains at tf32 and bf16 (operands rounded as
tensor cores round them), the model file records it and predicts at fp32, a resume keeps
it, and every way to ask for a precision where it cannot be had ends in one clear line."""
import numpy as np
import pytest

from badinput import one_error_line, run_cli as run
from genrecnn.backends.numpy_backend import NumpyBackend
from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.autoplace.measure import candidates
from genrecnn.engine.registry import build_registry
from genrecnn.errors import PlacementError, ShapeError
from genrecnn.run.settings import TrainingError, TrainSettings
from plugins import needs_example, registry_with
from steps import TOLERANCE, cnn2d_step, gradient_gaps


@pytest.mark.parametrize("precision, recipe", [("bf16", "cnn2d"), ("tf32", "small")])
def test_numpy_trains_at_the_precision_and_the_model_predicts(precision, recipe, npy_data,
                                                              tmp_path, capsys, strict_json):
    from genrecnn.run.model_io import load_model
    out = tmp_path / "run"
    code, text, err = run(["train", npy_data, "--recipe", recipe, "--epochs", "2",
                           "--precision", precision, "--test-fraction", "0.34", "--out", out,
                           "--json"], capsys)
    assert code == 0, err
    m = strict_json(text)
    assert m["settings"]["precision"] == precision and m["test_clip_acc"] == 1.0
    assert f"({precision} products)" in err
    net, meta, _ = load_model(out / "model.safetensors")
    assert meta["settings"]["precision"] == precision
    assert net.precision == "fp32"                      # predict runs fp32
    assert all(v.dtype == np.float32 for v in net.host_params().values())
    code, text, _ = run(["predict", out / "model.safetensors",
                         npy_data / "high" / "high.00000.npy", "--json"], capsys)
    assert code == 0 and strict_json(text)[0]["top"][0]["genre"] == "high"
    code, text, err = run(["train", npy_data, "--resume", "--epochs", "3", "--out", out], capsys)
    assert code == 0 and "resuming at epoch 3" in text and f"({precision} products)" in text


def test_resume_refuses_another_precision(trained, npy_data, capsys):
    code, _, err = run(["train", npy_data, "--resume", "--out", trained, "--precision", "bf16"],
                       capsys)
    assert code == 2 and "--precision bf16 differs from fp32" in one_error_line(err)


def test_a_backend_without_the_precision_is_refused_in_one_line(npy_data, tmp_path, capsys):
    needs_example()
    code, _, err = run(["train", npy_data, "--recipe", "small", "--epochs", "1", "--precision",
                        "bf16", "--backend", "conv=example", "--out", tmp_path / "x"], capsys)
    line = one_error_line(err)
    assert code == 2 and line == (
        "error: backend 'example' does not offer precision 'bf16' for layer conv1 (it offers "
        "fp32); place that layer on numpy, or use --precision fp32")


def test_float64_refuses_tf32_and_bf16(tmp_path, capsys):
    with pytest.raises(ShapeError, match="rounds float32 operands, not float64"):
        build_network(load_architecture("small"), (8, 20), 3, dtype="float64", precision="bf16")
    code, _, err = run(["bench", "--dtype", "float64", "--precision", "tf32", "--layers", "fc",
                        "--out", tmp_path], capsys)
    assert code == 2 and "rounds float32 operands, not float64" in one_error_line(err)
    with pytest.raises(TrainingError, match="unknown precision 'fp16'"):
        TrainSettings(precision="fp16")


def test_auto_placement_considers_only_backends_offering_the_precision():
    needs_example()
    net = build_network(load_architecture("small"), (8, 20), 3, precision="tf32")
    reg = build_registry()
    for layer, names in zip(net.layers, candidates(net, reg, "adam")):
        if layer.op in ("conv1d", "dense"):
            assert "example" not in names and "numpy" in names, (layer.name, names)
        else:
            assert "example" in names
    net.precision = "fp32"
    assert all("example" in names for names in candidates(net, reg, "adam"))


class Recording(NumpyBackend):
    """NumPy, noting the keyword arguments every product receives."""

    name = "recording"
    calls: list = []

    def dense(self, x, w, b, **kw):
        self.calls.append(("dense", kw))
        return super().dense(x, w, b, **kw)

    def dense_backward(self, x, w, dy, **kw):
        self.calls.append(("dense_backward", kw))
        return super().dense_backward(x, w, dy, **kw)


def _grads(precision: str, be) -> dict:
    net = build_network([{"type": "gpool"}, {"type": "fc", "units": 5},
                         {"type": "act", "fn": "relu"}, {"type": "fc", "units": "classes"},
                         {"type": "softmax"}], (6, 12), 3, precision=precision)
    net.place([be.name] * len(net.layers), _registry_with(be))
    x = np.random.default_rng(1).standard_normal((4, 6, 12)).astype(np.float32)
    net.loss_and_grads(x, np.array([0, 1, 2, 0]))
    return {f"{layer.name}/{k}": be.to_host(g) for layer in net.layers
            for k, g in layer.grads.items()}


def _registry_with(be):
    return registry_with(type(be))


def test_layers_pass_precision_only_beyond_fp32_and_it_changes_the_arithmetic():
    be = Recording()
    Recording.calls.clear()
    fp32 = _grads("fp32", be)
    assert Recording.calls and all(kw == {} for _, kw in Recording.calls)
    Recording.calls.clear()
    bf16 = _grads("bf16", be)
    assert {m for m, _ in Recording.calls} == {"dense", "dense_backward"}
    assert all(kw == {"precision": "bf16"} for _, kw in Recording.calls)
    for k in fp32:
        assert bf16[k].dtype == np.float32
        scale = np.abs(fp32[k]).max()
        assert np.abs(bf16[k] - fp32[k]).max() <= 0.05 * scale, k
    assert any(not np.array_equal(bf16[k], fp32[k]) for k in fp32)


def test_setting_a_precision_on_a_placed_network_checks_the_placement():
    needs_example()
    net = build_network(load_architecture("small"), (8, 20), 3)
    net.place("example")
    with pytest.raises(PlacementError, match="does not offer precision 'tf32'"):
        net.precision = "tf32"
    assert net.precision == "fp32" and all(layer.precision == "fp32" for layer in net.layers)


def test_settings_record_a_precision_only_beyond_fp32():
    assert "precision" not in TrainSettings().as_dict()
    assert TrainSettings(precision="bf16").as_dict()["precision"] == "bf16"


@pytest.mark.parametrize("name", ["cupy", "pycuda"])
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_a_cuda_backend_trains_at_the_precision_as_numpy_does(name, precision):
    """GPU: gradients of a conv2d + dense network at tf32 / bf16 on a CUDA backend match
    NumPy's emulation up to the sums' order, which may also flip the rounding of an
    operand near a tie (skipped where the backend does not offer the precision)."""
    info = build_registry().infos[name]
    if not info.available:
        pytest.skip(f"backend {name!r} unavailable here: {info.reason}")
    if precision not in info.precisions:
        pytest.skip(f"backend {name!r} does not offer {precision} (it offers "
                    f"{', '.join(info.precisions)})")
    _, want = cnn2d_step("numpy", precision, fuse=False)
    _, got = cnn2d_step(name, precision, fuse=False)
    for k, gap in gradient_gaps(got, want).items():
        assert gap < TOLERANCE[precision], (k, gap)
