"""Build the plugin manager and collect plugin contributions into name-keyed registries."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Iterable

import pluggy

from photobatch.plugins import PROJECT_NAME, hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "photobatch"

# Built-in features are plugins, registered exactly like third-party ones.
BUILTIN_PLUGINS = (
    "photobatch.plugins.builtin.pillow_reader",
    "photobatch.plugins.builtin.jpeg_writer",
    "photobatch.plugins.builtin.img2img_runner",
    "photobatch.plugins.builtin.builtin_recipes",
    "photobatch.plugins.builtin.commands",
)


class PluginError(Exception):
    """A plugin contributed something unusable (a duplicate name, a missing attribute)."""


@dataclass
class Registry:
    """Objects contributed by plugins, keyed by their ``name``; a duplicate name is an error."""

    kind: str
    items: dict[str, Any] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)

    def add(self, item: Any, owner: str) -> None:
        """Add one contribution; refuse a second object with the same name."""
        name = getattr(item, "name", None)
        if not name:
            raise PluginError(f"plugin {owner!r} contributed a {self.kind} without a name")
        if name in self.items:
            raise PluginError(
                f"{self.kind} {name!r} is contributed by both {self.owners[name]!r} and {owner!r}"
            )
        self.items[name] = item
        self.owners[name] = owner

    def get(self, name: str) -> Any:
        """Return the item called ``name`` or raise a KeyError naming what exists."""
        try:
            return self.items[name]
        except KeyError:
            known = ", ".join(sorted(self.items)) or "none"
            raise KeyError(f"no {self.kind} called {name!r} (known: {known})") from None

    def __iter__(self):
        return iter(self.items.values())

    def __len__(self) -> int:
        return len(self.items)


def build_plugin_manager(
    builtins: bool = True, entrypoints: bool = True, extra: Iterable[object] = ()
) -> pluggy.PluginManager:
    """Return a plugin manager with the built-ins, installed entry points and ``extra`` plugins."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if builtins:
        for module_name in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(module_name), name=module_name)
    if entrypoints:
        _load_entrypoints(pm)
    for plugin in extra:
        pm.register(plugin)
    return pm


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    # Each plugin on its own: one broken package is logged and the host still starts.
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception:
            log.exception("plugin %r (%s) failed to load and was skipped", ep.name, ep.value)


def collect(pm: pluggy.PluginManager, hook_name: str, kind: str) -> Registry:
    """Call a contribution hook on every plugin and gather the results into a Registry."""
    registry = Registry(kind)
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        owner = pm.get_name(impl.plugin) or repr(impl.plugin)
        for item in impl.function() or ():
            registry.add(item, owner)
    return registry


def notify(pm: pluggy.PluginManager, event: str, **kwargs: Any) -> None:
    """Send an event to every listener; a listener that raises is logged, never propagated."""
    hook = getattr(pm.hook, event)
    for impl in hook.get_hookimpls():
        try:
            impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
        except Exception:
            log.exception("plugin %r failed while handling %s", pm.get_name(impl.plugin), event)
