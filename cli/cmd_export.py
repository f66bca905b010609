"""`genrecnn export`: a trained model as an ONNX graph for onnxruntime anywhere.

The graph takes the log-mel features `genrecnn features` computes
([batch, mel bands, frames], not normalised: it normalises them itself) and
gives class probabilities; feature parameters and class names are in its
metadata. `genrecnn predict OUT.onnx ...` runs it through onnxruntime.
"""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
def export(model, out):
    """Write MODEL (from `genrecnn train`) as the ONNX graph OUT (.onnx)."""
    from genrecnn.errors import GenrecnnError
    from genrecnn.run.onnx_export import export_onnx

    if out.suffix != ".onnx":
        raise GenrecnnError(f"{out} does not end in .onnx; name the output e.g. model.onnx")
    export_onnx(model, out, echo=click.echo)
