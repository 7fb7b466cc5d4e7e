"""Catalog backups: consistent copies of the catalog taken while it is in use, and restoring one.

The catalog is the single source of truth for what was done, so it is copied before anything
that could lose it: before an upgrade changes its tables (as Lightroom copies a catalog it
upgrades, and darktable keeps a "pre" snapshot), every week (the config's ``[backups]``) while the
daemon runs (darktable's snapshots), on request, and before a restore replaces it. Copies go through SQLite's online
backup API, so one taken while the daemon writes is whole, and each is checked
(``PRAGMA integrity_check``) before it takes its final name: a backup that exists is good.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from photobatch.catalog.migrations import unknown_migrations

# Beside the catalog, so a backup is on the same disk the user already backs up with it.
FOLDER = "backups"
# Why a backup was taken, as its name ends: "" for one asked for.
KINDS = ("", "before-upgrade", "before-restore", "auto")
# The daemon's own backups: how often, and how many are kept (the others stay until the user
# removes them), unless the config's [backups] says otherwise.
EVERY_DAYS = 7.0
KEEP = 4
_STAMP = "%Y%m%d-%H%M%S"


class BackupError(Exception):
    """A backup that cannot be taken or used (one line: which file, why)."""


@dataclass(frozen=True)
class Backup:
    """One backup file of a catalog: where, when it was taken (UTC), why, and its size."""

    path: Path
    taken: datetime
    kind: str
    size: int


def backup_folder(catalog_path: Path) -> Path:
    """Where the backups of the catalog at ``catalog_path`` go."""
    return Path(catalog_path).parent / FOLDER


def backup_path(catalog_path: Path, kind: str = "", when: datetime | None = None,
                folder: Path | None = None) -> Path:
    """A new backup's path: ``<stem>-<UTC time>[-<kind>].db`` in ``folder`` (default: the
    backups folder beside the catalog)."""
    when = when or datetime.now(timezone.utc)
    name = f"{Path(catalog_path).stem}-{when.strftime(_STAMP)}" + (f"-{kind}" if kind else "")
    path = (folder or backup_folder(catalog_path)) / f"{name}.db"
    n = 1
    while path.exists():  # two in one second (a restore right after a backup)
        n += 1
        path = path.with_name(f"{name}-{n}.db")
    return path


def list_backups(catalog_path: Path) -> list[Backup]:
    """The catalog's backups, oldest first."""
    stem = re.escape(Path(catalog_path).stem)
    pattern = re.compile(rf"{stem}-(\d{{8}}-\d{{6}})(?:-([a-z-]+?))?(?:-\d+)?\.db")
    found = []
    folder = backup_folder(catalog_path)
    for path in folder.glob("*.db") if folder.is_dir() else ():
        match = pattern.fullmatch(path.name)
        if not match or (match.group(2) or "") not in KINDS:
            continue
        taken = datetime.strptime(match.group(1), _STAMP).replace(tzinfo=timezone.utc)
        found.append(Backup(path, taken, match.group(2) or "", path.stat().st_size))
    return sorted(found, key=lambda b: (b.taken, b.path.name))


def write_backup(conn: sqlite3.Connection, dest: Path) -> Path:
    """Copy the database open on ``conn`` to ``dest`` (a single file, checked); return ``dest``.

    Raises BackupError saying why (a full disk, a folder that cannot be written)."""
    dest = Path(dest)
    temp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(str(temp), isolation_level=None)
        try:
            conn.backup(target)
            # One self-contained file, not a database and its -wal beside it.
            target.execute("PRAGMA journal_mode = DELETE")
            verdict = target.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            target.close()
        if verdict != "ok":
            raise BackupError(f"the copy of the catalog in {dest} failed its integrity check "
                              f"({verdict})")
        os.replace(temp, dest)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot write the catalog backup {dest}: {_reason(exc)}") from None
    except OSError as exc:
        raise BackupError(f"cannot write the catalog backup {dest}: "
                          f"{exc.strerror or exc}") from None
    finally:
        for leftover in (temp, Path(f"{temp}-journal"), Path(f"{temp}-wal"), Path(f"{temp}-shm")):
            try:
                leftover.unlink(missing_ok=True)
            except OSError:
                pass  # its folder could not be made: nothing was left there
    return dest


def prune_auto(catalog_path: Path, keep: int = KEEP) -> list[Path]:
    """Delete all but the ``keep`` newest of the daemon's own backups; return what was deleted."""
    auto = [b for b in list_backups(catalog_path) if b.kind == "auto"]
    removed = [b.path for b in auto[:-keep]] if keep else [b.path for b in auto]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def scheduled_backup(catalog_path: Path, every_days: float = EVERY_DAYS, keep: int = KEEP,
                     now: datetime | None = None) -> Path | None:
    """Back up the catalog at ``catalog_path`` when its newest backup (of any kind) is
    ``every_days`` old or there is none, keeping the last ``keep`` of these; return the new
    file, or None when one was recent enough. BackupError saying why one could not be written."""
    now = now or datetime.now(timezone.utc)
    found = list_backups(catalog_path)
    if found and now - found[-1].taken < timedelta(days=every_days):
        return None
    # A connection of its own: a reader in WAL mode sees one moment and holds up no writer.
    conn = sqlite3.connect(str(catalog_path), timeout=30)
    try:
        path = write_backup(conn, backup_path(catalog_path, "auto", now))
    finally:
        conn.close()
    prune_auto(catalog_path, keep)
    return path


def open_backup(path: Path) -> sqlite3.Connection:
    """A read-only connection to the backup at ``path`` after checking that it is a whole
    photobatch catalog; BackupError saying why not."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "files" not in tables or "runs" not in tables:
                raise BackupError(f"{path} is not a photobatch catalog")
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise BackupError(f"{path} is damaged (integrity check: {verdict})")
            applied = [row[0] for row in conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = 'photobatch'")
            ] if "_sqlite_migrations" in tables else []
            newer = unknown_migrations(applied)
            if newer:
                raise BackupError(f"{path} was written by a newer photobatch (it has {newer[0]}, "
                                  "which this one does not know)")
        except BaseException:
            conn.close()
            raise
    except sqlite3.Error as exc:
        raise BackupError(f"{path} cannot be read as a catalog: {_reason(exc)}") from None
    return conn


def _reason(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "not a database" in text:
        return "it is not a database"
    if "disk is full" in text or "database or disk is full" in text:
        return "the disk is full"
    return text
