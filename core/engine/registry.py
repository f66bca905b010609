"""Finding backends: pluggy plugins loaded from the ``genrecnn`` entry-point group.

Built-in backends are entry points like any third-party one. A plugin that
fails to import, or returns something that is not a backend, is recorded as
broken with the reason and never stops the others from loading.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field

import pluggy

from . import hookspecs
from genrecnn.errors import BackendError
from genrecnn.engine.ops import Backend

# what a plugin's import or hook may raise without taking the command down: its own bugs,
# and exits (``sys.exit(3)`` at import time) that would end every command silently
PLUGIN_FAILURES = (Exception, SystemExit, KeyboardInterrupt, GeneratorExit)


@dataclass
class BackendInfo:
    """What ``genrecnn backends`` shows about one backend."""

    name: str
    plugin: str
    cls: type[Backend] | None = None
    available: bool = False
    reason: str = ""
    device: str = "?"
    dtypes: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"name": self.name, "plugin": self.plugin, "device": self.device,
                "dtypes": list(self.dtypes), "ops": list(self.ops),
                "precisions": list(self.precisions),
                "available": self.available, "reason": self.reason}


@dataclass
class Registry:
    """All backends known in this process, by name, with one instance each."""

    infos: dict[str, BackendInfo] = field(default_factory=dict)
    _instances: dict[str, Backend] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted(self.infos)

    def available_names(self) -> list[str]:
        return [n for n in self.names() if self.infos[n].available]

    def add(self, cls: type[Backend], plugin: str) -> None:
        """Register a backend class (plugins do this through the hook)."""
        name = getattr(cls, "name", "") or ""
        if not (isinstance(cls, type) and issubclass(cls, Backend)) or not name:
            self.infos[f"<broken:{plugin}>"] = BackendInfo(
                name=f"<broken:{plugin}>", plugin=plugin,
                reason=f"plugin {plugin!r} returned {cls!r}, not a named genrecnn.engine.ops.Backend subclass")
            return
        if name in self.infos and self.infos[name].cls is not cls:
            raise BackendError(
                f"two plugins register a backend named {name!r} ({self.infos[name].plugin} "
                f"and {plugin}); uninstall or rename one")
        info = BackendInfo(name=name, plugin=plugin, cls=cls, device=cls.device,
                           dtypes=tuple(cls.dtypes), precisions=tuple(cls.precisions))
        try:
            info.ops = tuple(sorted(cls.declared_ops()))
            info.available, info.reason = cls.availability()
        except PLUGIN_FAILURES as exc:  # a plugin's own bug: report, keep going
            info.available, info.reason = False, f"{type(exc).__name__}: {exc}"
        self.infos[name] = info

    def get(self, name: str) -> Backend:
        """The backend instance called ``name``; a clear error if unknown or unavailable."""
        if name in self._instances:
            return self._instances[name]
        info = self.infos.get(name) or self._broken_plugin(name)
        if info is None:
            working = [n for n in self.names() if self.infos[n].cls is not None]
            raise BackendError(
                f"unknown backend {name!r}; installed backends: {', '.join(working) or 'none'} "
                f"(see `genrecnn backends`)")
        if info.cls is None:
            raise BackendError(f"backend {name!r} comes from plugin {info.plugin}, which is "
                               f"broken: {info.reason}; fix or uninstall that plugin")
        if not info.available:
            raise BackendError(
                f"backend {name!r} is not available here: {info.reason}; "
                f"choose another with --backend (available: {', '.join(self.available_names())})")
        try:
            inst = info.cls()
        except Exception as exc:
            info.available, info.reason = False, f"failed to start: {type(exc).__name__}: {exc}"
            raise BackendError(f"backend {name!r} failed to start: {exc}") from exc
        self._instances[name] = inst
        return inst

    def _broken_plugin(self, name: str) -> BackendInfo | None:
        """The record of a broken plugin registered as ``name (module)``, if any."""
        for key, info in self.infos.items():
            if info.cls is None and key.split(" (")[0] == name:
                return info
        return None


def _plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def build_registry(extra_plugins: list | None = None) -> Registry:
    """Load every entry-point plugin (plus ``extra_plugins`` objects) into a Registry."""
    pm = _plugin_manager()
    reg = Registry()
    for ep in importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        label = f"{ep.name} ({ep.value})"
        try:
            module = ep.load()
            pm.register(module, name=label)
        except PLUGIN_FAILURES as exc:
            reg.infos[ep.name] = BackendInfo(
                name=ep.name, plugin=label,
                reason=f"plugin failed to load: {type(exc).__name__}: {exc}")
    for i, obj in enumerate(extra_plugins or []):
        pm.register(obj, name=f"extra-{i}")
    for impl in pm.hook.genrecnn_backends.get_hookimpls():
        try:
            classes = list(impl.function() or [])
        except PLUGIN_FAILURES as exc:
            reg.infos[impl.plugin_name] = BackendInfo(
                name=impl.plugin_name, plugin=impl.plugin_name,
                reason=f"genrecnn_backends() raised {type(exc).__name__}: {exc}")
            continue
        for cls in classes:
            reg.add(cls, impl.plugin_name)
    return reg


_default: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _default
    if _default is None:
        _default = build_registry()
    return _default


def get_backend(name: str) -> Backend:
    return registry().get(name)
