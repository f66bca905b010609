"""`genrecnn conformance`: run the op-contract suite against one backend.

Exit 0 only if every declared op passes, 1 if any check fails; an unknown or
unavailable backend is the registry's one-line error (exit 2), and so is a choice
of --dtype/--op/--precision under which no check applies. One summary line per
precision run.
"""
import sys

import click

from genrecnn.engine.ops import OP_GROUPS, PRECISIONS
from genrecnn.errors import GenrecnnError


@click.command()
@click.option("--backend", "backend", required=True, metavar="NAME",
              help="Backend to test (see `genrecnn backends`).")
@click.option("--dtype", "dtypes", multiple=True,
              type=click.Choice(["float32", "float64", "int32"]),
              help="Only this dtype (repeatable; int32 covers transfers). Default: all declared.")
@click.option("--op", "ops", multiple=True, metavar="OP",
              help=f"Only this op group (repeatable): {', '.join(g.name for g in OP_GROUPS)}.")
@click.option("--precision", "precisions", multiple=True, type=click.Choice(PRECISIONS),
              help="Only this precision of the products (repeatable; tf32 and bf16 cover "
                   "conv1d, conv2d and dense in float32). Default: every one the backend "
                   "offers.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Also list every failed case.")
def conformance(backend, dtypes, ops, precisions, as_json, verbose):
    """Check a backend against the float64 reference: values, gradients, dtypes, in-place rules."""
    from genrecnn.conformance import run_conformance

    report = run_conformance(backend, dtypes=dtypes or None, ops=ops or None,
                             precisions=precisions or None)
    if not any(r.checks for r in report.rows):     # "0/0 passed" would be a false success
        why = "; ".join(sorted({r.detail for r in report.rows if r.detail})) or \
            "no case covers that op group and dtype"
        asked = " ".join([f"--dtype {d}" for d in dtypes] + [f"--op {o}" for o in ops]
                         + [f"--precision {p}" for p in precisions])
        raise GenrecnnError(f"no conformance check applies to backend {backend!r}"
                            f"{' with ' + asked if asked else ''} ({why}); choose other "
                            f"--dtype/--op/--precision values (see `genrecnn backends`)")
    if as_json:
        click.echo(report.to_json())
    else:
        from rich.console import Console
        # sys.stdout looked up now, so that click.testing.CliRunner captures it
        console = Console(file=sys.stdout, width=160, soft_wrap=False)
        console.print(report.table())
        if verbose:
            for case in report.failures:
                console.print(f"[red]FAIL[/] {case.id}: {case.detail}", highlight=False)
        console.print(report.summary(), highlight=False, markup=False)
    if not report.ok:
        raise click.exceptions.Exit(1)
