"""Entry-point module named in pyproject.toml: hands the backend class to genrecnn."""
from genrecnn.engine.hookspecs import hookimpl


@hookimpl
def genrecnn_backends():
    from .backend import ExampleBackend
    return [ExampleBackend]
