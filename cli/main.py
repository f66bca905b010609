"""The ``genrecnn`` command group; each subcommand lives in its own module.

Any :class:`genrecnn.errors.GenrecnnError` ends as one line on stderr and exit
status 2; click's own usage errors keep their exit status 2 too. Library warnings
are not shown (``-W`` / ``PYTHONWARNINGS`` shows them).
"""
from __future__ import annotations

import importlib
import sys
import time
import warnings

import click

from genrecnn import __version__
from genrecnn.errors import GenrecnnError

# command name -> "module:function" (imported only when that command runs)
COMMANDS = {
    "backends": "genrecnn.cli.cmd_backends:backends",
    "features": "genrecnn.cli.cmd_features:features",
    "synth": "genrecnn.cli.cmd_synth:synth",
    "train": "genrecnn.cli.cmd_train:train",
    "evaluate": "genrecnn.cli.cmd_evaluate:evaluate",
    "predict": "genrecnn.cli.cmd_predict:predict",
    "filters": "genrecnn.cli.cmd_filters:filters",
    "bench": "genrecnn.cli.cmd_bench:bench_cmd",
    "conformance": "genrecnn.cli.cmd_conformance:conformance",
    "convert": "genrecnn.cli.cmd_convert:convert",
    "export": "genrecnn.cli.cmd_export:export",
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when it is used, so --help stays fast."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="genrecnn")
def cli():
    """Music-genre classification with a ConvNet whose layers run on pluggable backends."""


def _fail(exc: GenrecnnError) -> int:
    """One line and exit status 2; under mpirun the run's other ranks end too (they may be
    waiting for this one in a collective). Rank 0 speaks for the run; another rank speaks
    only if rank 0 has not ended the run by then (its own failure, not a shared one)."""
    from genrecnn.world import launched_size, world

    if launched_size() <= 1:
        click.echo(f"error: {exc}", err=True)
        return 2
    w = world()
    if not w.is_root:
        time.sleep(2.0)
    click.echo(f"error{'' if w.is_root else f' (rank {w.rank})'}: {exc}", err=True)
    sys.stderr.flush()
    time.sleep(0.5)    # the launcher forwards the line before the abort tears its pipes down
    w.abort(2)
    return 2


def main(argv=None) -> int:
    for stream in (sys.stdout, sys.stderr):     # file names that are not UTF-8 print escaped
        if callable(getattr(stream, "reconfigure", None)):
            stream.reconfigure(errors="backslashreplace")
    try:
        with warnings.catch_warnings():
            # library warnings (NumPy overflow, librosa, sklearn) would come before our
            # own line and say less; genrecnn checks the results instead. -W or
            # PYTHONWARNINGS brings them back.
            if not sys.warnoptions:
                warnings.simplefilter("ignore")
            # without standalone mode click returns a command's exit status (e.g. a failed
            # conformance run's 1) instead of raising SystemExit
            status = cli.main(args=argv, standalone_mode=False)
    except GenrecnnError as exc:
        return _fail(exc)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
