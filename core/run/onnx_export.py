"""A trained network as an ONNX graph, for onnxruntime anywhere (servers, phones, C++,
C#, Java, JavaScript).

The graph's input is what `genrecnn features` computes: log-mel features
``[batch, mel bands, frames]``, not yet normalised; the per-band normalisation is
its first nodes, then one group of nodes per layer (dropout is the identity at
inference and is left out), and its output the class probabilities. It computes
in float32 (onnxruntime's CPU convolutions take no float64): a float64 model's
weights are rounded to float32. The feature
parameters, class names and what predict needs to cut a clip into windows ride
in the model's ``metadata_props``. Built with ``onnx.helper`` and checked with
``onnx.checker``.

An ensemble is one graph: the normalisation, then each member's nodes (named
``m<i>/...``) side by side on it, and their softmax outputs' ``Mean``; its
metadata says ``ensemble: K``.

A model trained ``--with-baseline`` is exported as its network alone, with a note:
the baseline's MFCCs are no ONNX operators, and the network is a complete model.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genrecnn.errors import GenrecnnError

ONNX_FORMAT = "genrecnn-onnx"
ONNX_VERSION = 1
OPSET = 17          # Reduce* still take their axes as attributes
INPUT, OUTPUT = "features", "probabilities"


def _onnx():
    try:
        import onnx
    except ImportError:
        raise GenrecnnError("ONNX export needs the onnx package; install it with "
                            "`pip install genrecnn[onnx]`") from None
    return onnx


class _Graph:
    """Nodes and initialisers appended in order; each layer reads the last output."""

    def __init__(self, onnx):
        self.onnx, self.helper = onnx, onnx.helper
        self.nodes, self.inits = [], []
        self.last = INPUT
        self.prefix = ""            # an ensemble member's names: "m<i>/"

    def name(self, name: str) -> str:
        return self.prefix + name

    def const(self, name: str, value, dtype=None) -> str:
        array = np.asarray(value, dtype=dtype or np.float32)
        self.inits.append(self.onnx.numpy_helper.from_array(array, self.name(name)))
        return self.name(name)

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        """A node reading ``inputs``, which becomes the last output."""
        self.last = self.name(name)
        self.nodes.append(self.helper.make_node(op, inputs, [self.last], name=self.last,
                                                **attrs))
        return self.last

    def add(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        return self.node(op, [self.last, *inputs], name, **attrs)

    def reshape(self, name: str, shape) -> str:
        return self.add("Reshape", [self.const(f"{name}_shape", shape, np.int64)], name)


def _normalise(g: _Graph, normalizer) -> None:
    """(x - mean[band]) / std[band], as genrecnn's BandNormalizer does."""
    if normalizer is not None:
        g.add("Sub", [g.const("band_mean", normalizer.mean[:, None])], "centred")
        g.add("Div", [g.const("band_std", normalizer.std[:, None])], "normalised")


def _conv(g, layer, p):
    w, b = g.const(f"{layer.name}_w", p["w"]), g.const(f"{layer.name}_b", p["b"])
    if layer.type == "conv":       # spans every channel: a 1-D convolution over time
        return g.add("Conv", [w, b], layer.name, kernel_shape=[layer.width])
    (ph, pw), (sh, sw) = layer.padding, layer.stride
    return g.add("Conv", [w, b], layer.name, kernel_shape=list(layer.kernel),
                 strides=[sh, sw], pads=[ph, pw, ph, pw])


def _pool(g, layer, p):
    if layer.type == "pool":
        return g.add("MaxPool", [], layer.name, kernel_shape=[layer.size],
                     strides=[layer.stride])
    return g.add("MaxPool", [], layer.name, kernel_shape=list(layer.size),
                 strides=list(layer.stride))


def _global_pool(g, layer, p):
    """Mean, max and L2 norm over the last axis, side by side, as the op contract says."""
    if len(layer.input_shape) == 3:
        c, h, w = layer.input_shape
        g.reshape(f"{layer.name}_rows", [0, c * h, w] if layer.over == "time" else [0, c, h * w])
    source, parts = g.last, []
    for op in ("ReduceMean", "ReduceMax", "ReduceL2"):
        g.last = source
        parts.append(g.add(op, [], f"{layer.name}_{op[6:].lower()}", axes=[2], keepdims=0))
    return g.node("Concat", parts, layer.name, axis=1)


def _dense(g, layer, p):
    return g.add("Gemm", [g.const(f"{layer.name}_w", p["w"]), g.const(f"{layer.name}_b", p["b"])],
                 layer.name)


def _activation(g, layer, p):
    if layer.fn == "leaky_relu":
        return g.add("LeakyRelu", [], layer.name, alpha=layer.slope)
    op = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[layer.fn]
    return g.add(op, [], layer.name)


def _batchnorm(g, layer, p):
    names = [g.const(f"{layer.name}_{k}", p[k]) for k in
             ("gamma", "beta", "state/running_mean", "state/running_var")]
    return g.add("BatchNormalization", names, layer.name, epsilon=layer.eps)


def _softmax(g, layer, p):
    return g.add("Softmax", [], layer.name, axis=-1)


def _dropout(g, layer, p):
    return g.last                  # the identity at inference


NODES = {"conv": _conv, "conv2d": _conv, "pool": _pool, "pool2d": _pool,
         "gpool": _global_pool, "fc": _dense, "act": _activation, "batchnorm": _batchnorm,
         "softmax": _softmax, "dropout": _dropout}


def _layer_params(net, layer) -> dict:
    """The layer's host arrays keyed as the layer names them (state as ``state/...``)."""
    prefix = f"{layer.name}/"
    return {k[len(prefix):]: v for k, v in net.host_params().items() if k.startswith(prefix)}


def _network_nodes(g: _Graph, net) -> str:
    """``net``'s nodes, reading the last output; the name of its softmax output."""
    if len(net.layers[0].input_shape) == 3:          # 2-D maps of one channel
        g.reshape("maps", [0, 1, *net.input_shape])
    for layer in net.layers:
        if layer.type not in NODES:
            raise GenrecnnError(f"layer {layer.name!r} ({layer.type}) has no ONNX form yet; "
                                f"export a network of the built-in layer types")
        NODES[layer.type](g, layer, _layer_params(net, layer))
    if net.layers[-1].type != "softmax":
        g.add("Softmax", [], "softmax_out", axis=-1)
    return g.last


def build_graph(net, normalizer, metadata: dict):
    """The ONNX ModelProto of ``net`` (its output the softmax; an
    :class:`~genrecnn.run.ensemble.Ensemble`'s the mean of its members'), checked by
    onnx.checker."""
    onnx = _onnx()
    g = _Graph(onnx)
    _normalise(g, normalizer)
    members = getattr(net, "members", [net])
    if len(members) == 1:
        _network_nodes(g, net)
    else:
        source, outputs = g.last, []
        for i, member in enumerate(members):
            g.last, g.prefix = source, f"m{i}/"
            outputs.append(_network_nodes(g, member))
        g.prefix = ""
        g.node("Mean", outputs, "ensemble_mean")
    g.add("Identity", [], OUTPUT)
    graph = g.helper.make_graph(
        g.nodes, "genrecnn",
        [g.helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT,
                                         ["batch", *net.input_shape])],
        [g.helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT,
                                         ["batch", net.n_classes])],
        initializer=g.inits)
    model = g.helper.make_model(graph, opset_imports=[g.helper.make_opsetid("", OPSET)],
                                producer_name="genrecnn")
    model.ir_version = min(model.ir_version, 8)     # readable by older onnxruntime too
    onnx.helper.set_model_props(model, {k: json.dumps(v) for k, v in metadata.items()})
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(model_path, out: Path, echo=print) -> Path:
    """Write the model at ``model_path`` as the ONNX graph ``out`` (atomically)."""
    from genrecnn.fsutil import atomic_path
    from genrecnn.run.inference import load_inference_model

    m = load_inference_model(Path(model_path), "numpy", echo=lambda s: None)
    metadata = {"format": ONNX_FORMAT, "version": ONNX_VERSION, "class_names": m.names,
                "feature_params": m.params.as_dict(), "input_shape": list(m.net.input_shape),
                "windowed": m.windowed, "padded": m.padded,
                "normalised": m.normalizer is not None}
    if m.ensemble > 1:
        metadata["ensemble"] = m.ensemble
    model = build_graph(m.net, m.normalizer, metadata)
    with atomic_path(out, suffix=".onnx") as tmp:
        Path(tmp).write_bytes(model.SerializeToString())
    if m.baseline is not None:
        echo(f"note: the baseline of {model_path} (--with-baseline) is not in the ONNX graph: "
             f"{out} answers with the network alone; predict with {model_path} for the "
             f"combined answer")
    members = f" (the mean of {m.ensemble} networks')" if m.ensemble > 1 else ""
    echo(f"wrote {out}: input {INPUT} [batch, {m.net.input_shape[0]}, "
         f"{m.net.input_shape[1]}] log-mel features, output {OUTPUT}{members} "
         f"[batch, {m.net.n_classes}] over {', '.join(m.names)}")
    return out
