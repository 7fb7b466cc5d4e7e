"""Send events to plugin listeners; a listener that raises is logged and recorded, never propagated."""

from __future__ import annotations

from typing import Any

import pluggy

from photobatch.plugins.failures import PluginFailure, record_failure

EVENTS = (
    "photobatch_file_discovered",
    "photobatch_run_started",
    "photobatch_output_written",
    "photobatch_run_failed",
    "photobatch_daemon_started",
    "photobatch_caught_up",
    "photobatch_needs_attention",
    "photobatch_daemon_stopping",
)


def notify(pm: pluggy.PluginManager, event: str, **kwargs: Any) -> list[PluginFailure]:
    """Call every listener of ``event`` with the arguments it asks for; return their failures.

    Each listener runs on its own so one that raises neither stops the others nor the worker
    that sent the event. SystemExit is caught too: a plugin must not end the service.
    """
    if event not in EVENTS:
        raise ValueError(f"{event!r} is not a photobatch event (events: {', '.join(EVENTS)})")
    failures = []
    for impl in getattr(pm.hook, event).get_hookimpls():
        try:
            impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
        except (Exception, SystemExit) as exc:
            failure = PluginFailure.from_exception(pm.get_name(impl.plugin) or repr(impl.plugin),
                                                   event, exc)
            record_failure(pm, failure, log_traceback=exc)
            failures.append(failure)
    return failures
