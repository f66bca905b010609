"""pluggy hook specifications: the one interface a backend plugin implements.

A plugin is a module (named by an entry point in the ``genrecnn`` group) with::

    from genrecnn.engine.hookspecs import hookimpl

    @hookimpl
    def genrecnn_backends():
        return [MyBackend]          # subclasses of genrecnn.engine.ops.Backend
"""
import pluggy

PROJECT = "genrecnn"
ENTRY_POINT_GROUP = "genrecnn"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def genrecnn_backends():
    """Return a list of :class:`genrecnn.engine.ops.Backend` subclasses this plugin provides."""
