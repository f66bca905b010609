"""`genrecnn backends`: what is installed, what runs here, and why not."""
import click

from genrecnn.cli.options import json_option
from genrecnn.engine.registry import registry
from genrecnn.fsutil import json_text


@click.command()
@json_option
def backends(as_json):
    """List every backend plugin: device, dtypes, ops, and availability here."""
    infos = [registry().infos[n] for n in registry().names()]
    if as_json:
        click.echo(json_text([i.as_dict() for i in infos]))
        return
    for i in infos:
        state = "available" if i.available else f"unavailable: {i.reason}"
        click.echo(f"{i.name:<10} {i.device:<5} {','.join(i.dtypes):<16} {state}")
        click.echo(f"{'':<10} ops: {', '.join(i.ops) or '-'}   (plugin {i.plugin})")
