"""Entry-point module: registers the NumPy backend through the plugin hook."""
from genrecnn.engine.hookspecs import hookimpl


@hookimpl
def genrecnn_backends():
    from .backend import NumpyBackend
    return [NumpyBackend]
