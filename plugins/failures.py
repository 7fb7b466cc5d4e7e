"""What went wrong inside a plugin: one record per failure, logged with its traceback."""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone

log = logging.getLogger("photobatch.plugins")

# The ``hook`` of failures outside hook calls: a plugin that could not be imported or
# registered (LOAD), or one that was registered with a problem, such as a misspelt hook (REGISTER).
LOAD = "load"
REGISTER = "register"


def one_line(text: str, limit: int = 300) -> str:
    """Collapse ``text`` to one line of at most ``limit`` characters."""
    flat = "; ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that raised: which one, in which hook (or ``load``), and why, in one line."""

    plugin: str
    hook: str
    error: str
    traceback: str = ""
    at: str = field(default_factory=_now)

    @classmethod
    def from_exception(cls, plugin: str, hook: str, exc: BaseException) -> "PluginFailure":
        """Describe ``exc`` raised by ``plugin`` in ``hook``."""
        return cls(plugin, hook, one_line(f"{type(exc).__name__}: {exc}"),
                   "".join(traceback.format_exception(exc)))

    def __str__(self) -> str:
        if self.hook == LOAD:
            return f"plugin {self.plugin!r} failed to load and was skipped: {self.error}"
        if self.hook == REGISTER:
            return f"plugin {self.plugin!r}: {self.error}"
        return f"plugin {self.plugin!r} failed in {self.hook}: {self.error}"


def record_failure(pm, failure: PluginFailure, log_traceback: BaseException | None = None) -> None:
    """Log ``failure`` (traceback to the log file) and keep it on the plugin manager, if it keeps any."""
    log.error("%s", failure, exc_info=log_traceback)
    kept = getattr(pm, "failures", None)
    if kept is not None:
        kept.append(failure)
