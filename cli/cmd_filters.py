"""`genrecnn filters`: what the first-layer filters respond to (the dissertation's section 4.5).

Draws a clip's log-mel spectrogram above the outputs of chosen first-layer
filters over time. The outputs come from the first layer's own forward pass on
its backend, on the input the network sees (normalised as in training), over
at most the clip's first minute: memory stays bounded on long input, and a
longer plot could not be read. Audio is drawn on a time axis; an image or
array has no sample rate, so it is drawn by frame.
"""
from __future__ import annotations

from pathlib import Path

import click

from genrecnn.cli.options import backend_option
from genrecnn.errors import ModelFileError

# the most of a clip that is drawn (and run through the first layer)
DRAWN_SECONDS = 60


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--filters", "filters_text", default="0,1,2", show_default=True,
              help="Comma list of first-layer filter indices to draw.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("filters.png"),
              show_default=True, help="PNG to write.")
@backend_option()
def filters(model, file, filters_text, out, backend_spec):
    """Spectrogram of FILE beside chosen first-layer filter outputs of MODEL over time."""
    from genrecnn.music.features import FeatureCache, load_features
    from genrecnn.music.input_kinds import check_input_kind, kind_of
    from genrecnn.run.ensemble import members_of
    from genrecnn.run.inference import first_layer_outputs, load_inference_model, parse_filters
    from genrecnn.run.plots import filter_outputs

    m = load_inference_model(model, backend_spec, echo=lambda s: click.echo(s, err=True))
    net = members_of(m.net)[0]
    if m.ensemble > 1:
        click.echo(f"note: {model} is an ensemble of {m.ensemble} networks; drawing the "
                   f"first one's filters", err=True)
    if net.layers[0].kind != "conv":
        raise ModelFileError(f"{model}: the first layer is {net.layers[0].kind!r}, not a "
                             f"convolution; filters needs a network that starts with one")
    chosen = parse_filters(filters_text, net.layers[0].filters)
    spec = load_features(file, m.params, cache=FeatureCache())
    check_input_kind(m.input_kind, file)
    spec = _first_minute(spec, m.params)
    x = m.normalizer.transform(spec) if m.normalizer is not None else spec
    outputs = first_layer_outputs(net, x)[chosen]
    audio = kind_of(file) == "audio"
    filter_outputs(spec, outputs, chosen, out,
                   m.params.hop_length / m.params.sr if audio else 1.0,
                   title=f"{file.name}: first-layer filters {', '.join(map(str, chosen))}",
                   time_label="time (s)" if audio else "frame (an image or array has no "
                                                       "sample rate)")
    click.echo(f"wrote {out} ({spec.shape[1]} frames, filters {', '.join(map(str, chosen))} "
               f"on {net.backend_names[0]})")


def _first_minute(spec, params):
    """The first ``DRAWN_SECONDS`` of a clip's features, with a note when it was longer."""
    most = params.frames_for(DRAWN_SECONDS * params.sr)
    if spec.shape[1] > most:
        click.echo(f"note: drawing the first {most} of {spec.shape[1]} frames (the first "
                   f"{DRAWN_SECONDS} s of audio)", err=True)
    return spec[:, :most]
