"""Entry-point module: registers the CuPy backend (importable without CuPy or a GPU)."""
from genrecnn.engine.hookspecs import hookimpl


@hookimpl
def genrecnn_backends():
    from .backend import CupyBackend
    return [CupyBackend]
