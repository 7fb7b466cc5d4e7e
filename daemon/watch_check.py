"""``photobatch watch --check``: what the daemon would start with, checked without starting it
(as ``nginx -t`` checks a server's configuration before a restart)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# An output disk with less free space than this is worth a word before a shoot comes in.
LOW_SPACE_BYTES = 2 * 1024 ** 3


def check_watch(service) -> tuple[list[str], list[str]]:
    """(lines, problems) for a WatchService: its config, catalog, folders, outputs and the
    recipes and models each folder runs. The recipes, plugins and models are loaded exactly as
    ``watch`` loads them (a problem there raises ConfigError, as it would at start)."""
    from photobatch.daemon.service import CatalogLock
    from photobatch.plugins.diffusion.loading import ModelError, resolve_model

    config = service.config
    app = service.build_app(config)
    try:
        lines = [f"config   {config.source}"]
        files = app.catalog.db["files"].count
        lines.append(f"catalog  {Path(app.catalog_path).absolute()} ({files} file(s))")
        problems = []
        if CatalogLock(app.catalog_path).held_by_other():
            lines.append("         a daemon is running on it now: `photobatch status` says what it does")
        lines.append(_backups_text(config, app.catalog_path))
        if config.rights:
            lines.append(f"rights   {_rights_text(config.rights)}")
        notify = config.notify
        if notify:
            lines.append("notify   " + ", ".join(filter(None, (notify.url, " ".join(notify.command))))
                         + " (when a shoot is done, or an output disk is full)")
        for folder in config.watch:
            there = folder.path.is_dir()
            lines.append(f"folder   {folder.path}" + ("" if there else
                         " (not there: watched once it appears; a card or share not mounted?)"))
            lines.append(f"  output {folder.output}{_space(folder.output, problems)}")
            if folder.rights:
                lines.append(f"  rights {_rights_text(folder.rights)}")
            if folder.archive:
                lines.append(f"  archive {folder.archive} (each photo once done)")
            for name in folder.recipes:
                recipe = app.recipes[name]
                model = recipe.model or folder.model or config.model
                try:
                    shown = resolve_model(model).model_id
                except ModelError as exc:  # build_app saw it; its disk may have gone since
                    shown = model
                    problems.append(f"{name}: {exc}")
                lines.append(f"  recipe {name} on {shown}")
            for spec in folder.exports:
                lines.append(f"  {spec.describe()} (after each shoot){_space(spec.out, problems)}")
        return lines, problems
    finally:
        app.close()


def _backups_text(config, catalog_path: Path) -> str:
    """How the daemon backs the catalog up, and when the last backup was taken."""
    from photobatch.catalog.backup import backup_folder, list_backups

    if not config.backup_every_days:
        said = "none by the daemon ([backups] every_days = 0)"
    else:
        said = (f"every {config.backup_every_days:g} day(s), the last {config.backup_keep} kept, "
                f"in {backup_folder(catalog_path)}")
    found = list_backups(catalog_path)
    return f"backups  {said}" + (f"; the last {found[-1].taken.astimezone():%Y-%m-%d %H:%M}"
                                 if found else "; none yet")


def _rights_text(rights) -> str:
    """A copyright preset in a line: who, the notice, and where it is written."""
    said = ", ".join(v for v in (rights.creator, rights.notice) if v) or rights.url or rights.usage_terms
    return f"{said} (" + ("over what cameras wrote" if rights.replace
                          else "where the camera left it empty") + ")"


def _space(output: Path, problems: list[str]) -> str:
    """", 120 GB free" for the disk ``output`` is (or will be) on; a problem when it cannot be
    written or is nearly full."""
    existing = next((p for p in (output, *output.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        problems.append(f"{output} cannot be made: {existing} is a file")
        return " (cannot be made)"
    if existing is None or not os.access(existing, os.W_OK):
        problems.append(f"{output} cannot be written (no permission)")
        return " (cannot be written)"
    free = shutil.disk_usage(existing).free
    text = f", {free / 1024 ** 3:.0f} GB free" if free >= 1024 ** 3 else f", {free / 1024 ** 2:.0f} MB free"
    if free < LOW_SPACE_BYTES:
        problems.append(f"{output}: only {text[2:]}")
    return text
