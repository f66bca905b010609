"""Entry-point module: registers the PyCUDA backend through the plugin hook.

Importing it needs neither PyCUDA nor a GPU; the backend's ``availability()``
says whether it can run here and why not.
"""
from genrecnn.engine.hookspecs import hookimpl


@hookimpl
def genrecnn_backends():
    from .backend import PycudaBackend
    return [PycudaBackend]
