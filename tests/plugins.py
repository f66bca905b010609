"""Backend classes a test defines, registered beside the installed plugins through the
same pluggy hook (``genrecnn_backends``) a plugin package implements."""
from __future__ import annotations

import pytest

from genrecnn.engine.hookspecs import hookimpl
from genrecnn.engine.registry import Registry, build_registry, registry


class ClassesPlugin:
    """A plugin object whose hook returns ``classes``."""

    def __init__(self, *classes):
        self.classes = list(classes)

    @hookimpl
    def genrecnn_backends(self):
        return self.classes


def registry_with(*classes) -> Registry:
    """The installed plugins' registry plus ``classes``."""
    return build_registry(extra_plugins=[ClassesPlugin(*classes)])


def needs_example() -> None:
    """Skip, saying how to install it, where the example third-party backend is not."""
    info = registry().infos.get("example")
    if info is None or not info.available:
        pytest.skip("genrecnn-example-backend not installed: "
                    "pip install -e examples/genrecnn-example-backend")
