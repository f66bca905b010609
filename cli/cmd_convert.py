"""`genrecnn convert`: rewrite an old ``.npz`` model as ``.safetensors``, the format
`genrecnn train` writes now (the old file is kept)."""
from __future__ import annotations

from pathlib import Path

import click

from genrecnn.errors import GenrecnnError


@click.command()
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", required=False, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace NEW if it exists.")
def convert(old, new, force):
    """Write the .npz model OLD as safetensors to NEW (default: OLD with .safetensors)."""
    from genrecnn.run.model_io import convert_model

    new = new or old.with_suffix(".safetensors")
    if new.exists() and not force:
        raise GenrecnnError(f"{new} already exists; pass --force to replace it or name "
                            f"another output")
    click.echo(f"wrote {convert_model(old, new)}")
