"""photobatch's plugin API: ``from photobatch.plugins import hookimpl`` is all an author imports."""

import pluggy

PROJECT_NAME = "photobatch"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

__all__ = ["hookimpl", "hookspec", "PROJECT_NAME"]
