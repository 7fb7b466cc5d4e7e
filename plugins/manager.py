"""Build the plugin host: built-ins, installed packages, a drop-in folder; minus what is disabled."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from photobatch.plugins.discovery import (
    ENTRY_POINT_GROUP,
    load_dropins,
    load_entrypoints,
    register_builtins,
)
from photobatch.plugins.events import EVENTS, notify
from photobatch.plugins.failures import PluginFailure
from photobatch.plugins.host import PluginHost, PluginOrigin
from photobatch.plugins.registry import PluginError, Registry, collect, contributions

log = logging.getLogger("photobatch.plugins")

# Built-in features are plugins, registered exactly like third-party ones.
BUILTIN_PLUGINS = (
    "photobatch.plugins.builtin.pillow_reader",
    "photobatch.plugins.builtin.raw_reader",
    "photobatch.plugins.builtin.heif_reader",
    "photobatch.plugins.builtin.jpeg_writer",
    "photobatch.plugins.builtin.tiff_writer",
    "photobatch.plugins.builtin.png_writer",
    "photobatch.plugins.builtin.img2img_runner",
    "photobatch.plugins.builtin.face_detector",
    "photobatch.plugins.builtin.gallery",
    "photobatch.plugins.builtin.files_export",
    "photobatch.plugins.builtin.auto_export",
    "photobatch.plugins.builtin.notifications",
    "photobatch.plugins.builtin.builtin_recipes",
    "photobatch.plugins.builtin.commands",
)


def build_plugin_manager(
    builtins: bool = True,
    entrypoints: bool = True,
    extra: Iterable[object] = (),
    plugins_dir: Path | str | None = None,
    disabled_plugins: Iterable[str] = (),
) -> PluginHost:
    """Return a plugin host with the built-ins, installed packages, drop-ins and ``extra`` plugins.

    ``disabled_plugins`` are names as ``photobatch plugins`` lists them (a module path for a
    built-in, the entry-point name for a package, the file name for a drop-in); a disabled
    plugin is not imported. ``extra`` objects (tests, embedding) register under their
    ``__name__`` or class name.
    """
    host = PluginHost()
    disabled = [name for name in disabled_plugins if name]
    for name in disabled:
        host.set_blocked(name)
    if builtins:
        register_builtins(host, BUILTIN_PLUGINS)
    if entrypoints:
        load_entrypoints(host, ENTRY_POINT_GROUP)
    if plugins_dir is not None:
        load_dropins(host, Path(plugins_dir))
    for plugin in extra:
        host.add(plugin, _extra_origin(host, plugin))
    for name in disabled:
        if name not in host.disabled:
            log.warning("disabled_plugins names %r, but no plugin of that name was found", name)
    return host


def _extra_origin(host: PluginHost, plugin: object) -> PluginOrigin:
    base = getattr(plugin, "__name__", None) or type(plugin).__name__
    name, n = base, 2
    while host.has_plugin(name):
        name, n = f"{base}#{n}", n + 1
    module = getattr(plugin, "__module__", None) or getattr(plugin, "__name__", "")
    return PluginOrigin(name, "extra", getattr(plugin, "__version__", None), module or "")


__all__ = [
    "BUILTIN_PLUGINS", "ENTRY_POINT_GROUP", "EVENTS", "PluginError", "PluginFailure", "PluginHost",
    "PluginOrigin", "Registry", "build_plugin_manager", "collect", "contributions", "notify",
]
