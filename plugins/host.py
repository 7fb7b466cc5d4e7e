"""The plugin host: pluggy's manager plus where each plugin came from and what failed."""

from __future__ import annotations

import difflib
from collections import deque
from dataclasses import dataclass

import pluggy

from photobatch.plugins import PROJECT_NAME, hookspecs
from photobatch.plugins.failures import LOAD, REGISTER, PluginFailure, one_line, record_failure

SOURCES = ("built-in", "package", "drop-in", "extra")
# A daemon with a listener failing on every photo must not grow without bound.
MAX_KEPT_FAILURES = 1000


@dataclass(frozen=True)
class PluginOrigin:
    """Where a plugin came from: its source (one of SOURCES), version and location."""

    name: str
    source: str
    version: str | None
    location: str  # module name, "distribution (entry point value)", or file path


class PluginHost(pluggy.PluginManager):
    """A pluggy manager for photobatch's hooks that remembers origins, disabled names and failures."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, PluginOrigin] = {}
        self.disabled: dict[str, PluginOrigin] = {}
        self.failures: deque[PluginFailure] = deque(maxlen=MAX_KEPT_FAILURES)

    def add(self, plugin: object, origin: PluginOrigin) -> bool:
        """Register ``plugin`` as ``origin.name``; a refusal is logged and recorded, not raised."""
        if self.is_blocked(origin.name):
            self.disabled[origin.name] = origin
            return False
        if self.has_plugin(origin.name):
            earlier = self.origins.get(origin.name)
            where = f" from {earlier.location}" if earlier else ""
            return self._refuse(origin, f"a plugin called {origin.name!r} is already loaded{where}")
        try:
            self.register(plugin, name=origin.name)
        except pluggy.PluginValidationError as exc:
            return self._refuse(origin, f"invalid hook implementation: {exc}")
        except ValueError as exc:  # the same object registered under another name
            return self._refuse(origin, str(exc))
        self.origins[origin.name] = origin
        self._warn_unknown_hooks(plugin, origin.name)
        return True

    def refuse(self, origin: PluginOrigin, exc: BaseException) -> None:
        """Record that the plugin at ``origin`` could not be imported."""
        record_failure(self, PluginFailure.from_exception(origin.name, LOAD, exc), log_traceback=exc)

    def hooks_of(self, name: str) -> list[str]:
        """The photobatch hooks the plugin called ``name`` implements, sorted."""
        plugin = self.get_plugin(name)
        callers = self.get_hookcallers(plugin) if plugin is not None else None
        return sorted(caller.name for caller in callers or ())

    def _refuse(self, origin: PluginOrigin, reason: str) -> bool:
        record_failure(self, PluginFailure(origin.name, LOAD, one_line(reason)))
        return False

    def _warn_unknown_hooks(self, plugin: object, name: str) -> None:
        # pluggy accepts implementations of hooks that do not exist; here a typo means a
        # listener that never fires, so say so (the plugin stays loaded).
        known = [caller.name for caller in self.hook.__dict__.values()
                 if isinstance(caller, pluggy.HookCaller) and caller.spec is not None]
        for caller in self.get_hookcallers(plugin) or ():
            if caller.spec is not None or all(
                    impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin):
                continue
            close = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            record_failure(self, PluginFailure(
                name, REGISTER, f"implements {caller.name}, which is not a photobatch hook{hint}"))
