"""`genrecnn filters`: what the first-layer filters respond to (the dissertation's section 4.5).

Draws a clip's log-mel spectrogram above the outputs of chosen first-layer
filters over time. The outputs come from the first layer's own forward pass on
its backend (the conv1d op of whatever backend the layer is placed on), run
over the whole clip, on the input the network sees (normalised as in training).
"""
from __future__ import annotations

from pathlib import Path

import click

from genrecnn.cli.cmd_predict import load_inference_model
from genrecnn.errors import GenrecnnError, ModelFileError


def parse_filters(text: str, n_filters: int) -> list[int]:
    try:
        chosen = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise GenrecnnError(f"--filters {text!r} is not a comma list of integers; "
                            f"write e.g. 0,1,2") from None
    bad = [f for f in chosen if not 0 <= f < n_filters]
    if not chosen or bad:
        raise GenrecnnError(f"--filters {text!r}: the first layer has {n_filters} filters; "
                            f"choose indices from 0 to {n_filters - 1}")
    return chosen


def first_layer_outputs(net, x):
    """Outputs [F, W-K+1] of the network's first layer on one input [n_mels, W], on its backend."""
    layer, be = net.layers[0], net.backends[0]
    if x.shape[1] < layer.width:
        raise GenrecnnError(f"the clip has {x.shape[1]} frames, fewer than the filter width "
                            f"{layer.width}; use a longer clip")
    y = layer.forward(be, be.from_host(x[None].astype(net.dtype)), train=False)
    return be.to_host(y)[0]


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--filters", "filters_text", default="0,1,2", show_default=True,
              help="Comma list of first-layer filter indices to draw.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("filters.png"),
              show_default=True, help="PNG to write.")
@click.option("--backend", "backend_spec", default="numpy", show_default=True,
              help="Placement: a backend name, kind=backend,... or auto.")
def filters(model, file, filters_text, out, backend_spec):
    """Spectrogram of FILE beside chosen first-layer filter outputs of MODEL over time."""
    from genrecnn.music.features import FeatureCache, load_features
    from genrecnn.run.plots import filter_outputs

    net, params, normalizer, _ = load_inference_model(model, backend_spec)
    if net.layers[0].kind != "conv":
        raise ModelFileError(f"{model}: the first layer is {net.layers[0].kind!r}, not a "
                             f"convolution; filters needs a network that starts with one")
    chosen = parse_filters(filters_text, net.layers[0].filters)
    spec = load_features(file, params, cache=FeatureCache())
    x = normalizer.transform(spec) if normalizer is not None else spec
    outputs = first_layer_outputs(net, x)[chosen]
    filter_outputs(spec, outputs, chosen, out, params.hop_length / params.sr,
                   title=f"{file.name}: first-layer filters {', '.join(map(str, chosen))}")
    click.echo(f"wrote {out} ({spec.shape[1]} frames, filters {', '.join(map(str, chosen))} "
               f"on {net.backend_names[0]})")
