"""Name-keyed registries of what plugins contribute, and the contract each kind must meet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import pluggy

from photobatch.plugins.failures import PluginFailure, one_line, record_failure


class PluginError(Exception):
    """A plugin contributed something unusable (a duplicate name, a missing method)."""


# hook -> (kind, the callables every contribution of that kind must have)
CONTRIBUTION_HOOKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "photobatch_readers": ("reader", ("accept", "read")),
    "photobatch_writers": ("writer", ("write",)),
    "photobatch_runners": ("runner", ("run",)),
    "photobatch_steps": ("step", ("apply",)),
    "photobatch_exporters": ("exporter", ("export",)),
    "photobatch_face_detectors": ("face detector", ("detect",)),
    "photobatch_commands": ("command", ("main",)),
}


@dataclass
class Registry:
    """Objects contributed by plugins, keyed by their ``name``; a duplicate name is an error."""

    kind: str
    required: tuple[str, ...] = ()
    items: dict[str, Any] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)

    def add(self, item: Any, owner: str) -> None:
        """Add one contribution; refuse a nameless one, one without its methods, or a second name."""
        name = getattr(item, "name", None)
        if not name or not isinstance(name, str):
            raise PluginError(f"plugin {owner!r} contributed a {self.kind} without a name: {item!r}")
        for method in self.required:
            if not callable(getattr(item, method, None)):
                raise PluginError(
                    f"{self.kind} {name!r} from plugin {owner!r} has no {method}() method")
        if name in self.items:
            raise PluginError(
                f"{self.kind} {name!r} is contributed by both {self.owners[name]!r} and {owner!r} "
                "(uninstall or disable one of them)"
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

    def owner(self, name: str) -> str:
        """The name of the plugin that contributed ``name``."""
        return self.owners[name]

    def __contains__(self, name: object) -> bool:
        return name in self.items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items.values())

    def __len__(self) -> int:
        return len(self.items)


def contributions(pm: pluggy.PluginManager, hook_name: str) -> Iterator[tuple[str, list]]:
    """Yield (plugin name, its returned list) for a contribution hook, plugin by plugin.

    A plugin whose hook raises is logged, recorded and skipped: one broken plugin must not stop
    the host from starting.
    """
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        owner = pm.get_name(impl.plugin) or repr(impl.plugin)
        try:
            result = impl.function()
        except Exception as exc:
            record_failure(pm, PluginFailure.from_exception(owner, hook_name, exc), log_traceback=exc)
            continue
        if result is None:
            continue
        if isinstance(result, (str, bytes)) or not hasattr(result, "__iter__"):
            raise PluginError(f"plugin {owner!r}: {hook_name} must return a list, got {one_line(repr(result))}")
        yield owner, list(result)


def collect(pm: pluggy.PluginManager, hook_name: str, kind: str | None = None) -> Registry:
    """Call a contribution hook on every plugin and gather the results into a Registry."""
    default_kind, required = CONTRIBUTION_HOOKS.get(hook_name, (hook_name, ()))
    registry = Registry(kind or default_kind, required)
    for owner, items in contributions(pm, hook_name):
        for item in items:
            registry.add(item, owner)
    return registry
