"""`genrecnn backends`: what is installed, what runs here, and why not."""
import click

from genrecnn.cli.options import json_option
from genrecnn.engine.registry import registry
from genrecnn.fsutil import json_text

# what to install for a built-in backend whose library is missing (pyproject's extras)
PIP_HINTS = {"cupy": "pip install 'genrecnn[cupy]'", "pycuda": "pip install 'genrecnn[pycuda]'"}


def _reason(info) -> str:
    """Why a backend is unavailable, with the pip command where a missing library is why."""
    hint = PIP_HINTS.get(info.name)
    if hint and "not installed" in info.reason and "pip install" not in info.reason:
        return f"{info.reason} ({hint})"
    return info.reason


@click.command()
@json_option
def backends(as_json):
    """List every backend plugin: device, dtypes, ops, precisions, and availability here."""
    infos = [registry().infos[n] for n in registry().names()]
    if as_json:
        click.echo(json_text([i.as_dict() for i in infos]))
        return
    for i in infos:
        state = "available" if i.available else f"unavailable: {_reason(i)}"
        click.echo(f"{i.name:<10} {i.device:<5} {','.join(i.dtypes):<16} {state}")
        click.echo(f"{'':<10} ops: {', '.join(i.ops) or '-'}   (plugin {i.plugin})")
        click.echo(f"{'':<10} precisions: {', '.join(i.precisions) or '-'}")
