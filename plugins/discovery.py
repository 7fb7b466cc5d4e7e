"""Find plugins: built-in modules, the ``photobatch`` entry-point group, and a drop-in folder.

Every plugin is imported in its own try/except: a broken one is logged, recorded on the host
and skipped, and the host still starts. A disabled name is never imported at all.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import sys
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterable

from photobatch.plugins.host import PluginHost, PluginOrigin

log = logging.getLogger("photobatch.plugins")

ENTRY_POINT_GROUP = "photobatch"


def photobatch_version() -> str | None:
    """The installed photobatch version, the version every built-in plugin reports."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("photobatch")
    except PackageNotFoundError:
        return None


def register_builtins(host: PluginHost, module_names: Iterable[str]) -> None:
    """Import and register photobatch's own plugins, exactly as a third party's would be."""
    version = photobatch_version()
    for module_name in module_names:
        origin = PluginOrigin(module_name, "built-in", version, module_name)
        _import_and_add(host, origin, lambda: importlib.import_module(module_name))


def load_entrypoints(host: PluginHost, group: str = ENTRY_POINT_GROUP) -> None:
    """Register the plugins installed packages declare in the ``photobatch`` entry-point group."""
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "unknown distribution"
        origin = PluginOrigin(ep.name, "package", dist.version if dist is not None else None,
                              f"{dist_name} ({ep.value})")
        _import_and_add(host, origin, ep.load)


def load_dropins(host: PluginHost, folder: Path) -> None:
    """Register each ``*.py`` file in ``folder`` as a plugin named after the file (``name.py``).

    Files starting with ``_`` or ``.`` are skipped (helpers, editor backups). A missing folder
    is not an error: the default folder only exists once a user creates it.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        log.debug("no drop-in plugin folder at %s", folder)
        return
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith(("_", ".")) or not path.is_file():
            continue
        origin = PluginOrigin(path.name, "drop-in", None, str(path.resolve()))
        _import_and_add(host, origin, lambda path=path: _import_file(path))


def _import_and_add(host: PluginHost, origin: PluginOrigin, load) -> None:
    if host.is_blocked(origin.name):
        host.disabled[origin.name] = origin  # not even imported: a broken plugin can be disabled
        return
    if host.has_plugin(origin.name):
        host.add(None, origin)  # refused with a reason naming the one already loaded; not imported
        return
    try:
        plugin = load()
    except (Exception, SystemExit) as exc:
        host.refuse(origin, exc)
        return
    version = getattr(plugin, "__version__", None)
    if origin.version is None and isinstance(version, str):
        origin = replace(origin, version=version)
    host.add(plugin, origin)


def _import_file(path: Path):
    # A private module name per file path: two folders may both hold a "watermark.py".
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"_photobatch_dropin_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # In sys.modules while it runs, as a normal import: dataclasses and pickle look it up there.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
