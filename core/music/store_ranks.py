"""Steps that every rank of a run takes together, so one rank's failure stops them all.

Under ``mpirun`` a rank that raises while the others wait in a collective would
leave them waiting for ever; :func:`together` runs one step on every rank, then
agrees (one ``all_gather``) on whether it worked everywhere, and raises on every
rank when it did not: the failing rank its own error, the others a line naming it.
In a world of one it is a plain call.
"""
from __future__ import annotations

from genrecnn.errors import DataError, GenrecnnError


def together(world, step, *args):
    """``step(*args)`` on this rank; raises on every rank if it failed on any."""
    try:
        result, error = step(*args), None
    except Exception as exc:   # any failure, a bug included, must reach the other ranks
        result, error = None, exc
    if world.size == 1:
        if error is not None:
            raise error
        return result
    messages = world.all_gather(None if error is None else _line(error))
    if error is not None:
        raise error
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if failed:
        rank, message = failed[0]
        raise DataError(f"rank {rank} failed: {message}")
    return result


def root_step(world, step, *args):
    """``step(*args)`` on rank 0 alone, its result broadcast to every rank (a failure
    raises everywhere)."""
    result = together(world, step if world.is_root else (lambda *_: None), *args)
    return world.broadcast(result)


def _line(exc: Exception) -> str:
    return str(exc) if isinstance(exc, GenrecnnError) else f"{type(exc).__name__}: {exc}"


def on_every_rank(ranks, call, *args, **kwargs):
    """``call(*args, **kwargs)`` as a command's body under mpirun: rank 0 alone reports
    an error (the CLI's one line, after which it ends every rank with status 2); the
    other ranks wait quietly for that, so none ends first and takes rank 0 down with it
    before its line is out."""
    try:
        return call(*args, **kwargs)
    except GenrecnnError:
        if not ranks.is_root:
            ranks.barrier()                  # rank 0 never joins: it aborts the run
            raise SystemExit(2) from None
        raise
