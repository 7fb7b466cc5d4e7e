"""Catalog backups: taken while the catalog is written, before an upgrade, by the daemon on schedule,
on request, and restored; a catalog a newer photobatch upgraded is refused."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from photobatch.catalog.backup import BackupError, list_backups, open_backup, scheduled_backup
from photobatch.catalog.store import Catalog, CatalogError
from photobatch.daemon.cli import main


def _photo(cat, n: int, tmp_path):
    return cat.register_file(sha256=f"{n:02d}" * 32, path=tmp_path / "in" / f"IMG_{n:04d}.JPG",
                             size=n, mtime=float(n))


def _cli(catalog, *args):
    return CliRunner().invoke(main, ["--catalog", str(catalog), *map(str, args)])


def _paths(db_path) -> list[str]:
    conn = sqlite3.connect(str(db_path))
    try:
        return sorted(row[0] for row in conn.execute("SELECT path FROM files"))
    finally:
        conn.close()


def test_a_backup_taken_while_another_process_writes_is_whole_and_holds_what_was_committed(tmp_path):
    path = tmp_path / "catalog.db"
    cat = Catalog(path)
    _photo(cat, 1, tmp_path)
    # The daemon in the middle of a write: a transaction open, its row not committed yet.
    cat.db.conn.execute("BEGIN IMMEDIATE")
    cat.db.execute("INSERT INTO files (sha256, path, size, mtime) VALUES (?, ?, 1, 1.0)",
                   ["ff" * 32, str(tmp_path / "in" / "uncommitted.jpg")])
    done = subprocess.run([sys.executable, "-m", "photobatch.daemon.cli", "--catalog", str(path),
                           "catalog", "backup"], capture_output=True, text=True, timeout=120)
    cat.db.conn.execute("COMMIT")
    cat.close()
    assert done.returncode == 0, done.stderr
    [backup] = list_backups(path)
    assert done.stdout.startswith(f"backed up {path} to {backup.path} (")
    assert backup.kind == "" and backup.path.parent == tmp_path / "backups"
    # One file on its own (no -wal beside it), checked, and a catalog photobatch opens.
    assert not list(backup.path.parent.glob("*-wal")) and not list(backup.path.parent.glob(".*"))
    assert _paths(backup.path) == [str(tmp_path / "in" / "IMG_0001.JPG")]
    open_backup(backup.path).close()
    assert _paths(path) == sorted([str(tmp_path / "in" / "IMG_0001.JPG"),
                                   str(tmp_path / "in" / "uncommitted.jpg")])


def test_backup_to_a_folder_or_file_and_never_over_an_existing_file(tmp_path):
    path = tmp_path / "catalog.db"
    Catalog(path).close()
    usb = tmp_path / "usb"
    usb.mkdir()
    into = _cli(path, "catalog", "backup", "--to", usb)
    assert into.exit_code == 0, into.output
    [made] = usb.iterdir()
    assert made.name.startswith("catalog-") and made.suffix == ".db"
    again = _cli(path, "catalog", "backup", "--to", made)
    assert again.exit_code == 1 and f"{made} exists already: name a new file" in again.output
    onto = _cli(path, "catalog", "backup", "--to", path)
    assert onto.exit_code == 1 and "exists already" in onto.output
    assert Catalog(path).db["files"].count == 0  # the catalog is still one


def test_restore_puts_a_backup_back_and_keeps_the_catalog_it_replaced(tmp_path):
    path = tmp_path / "catalog.db"
    cat = Catalog(path)
    for n in (1, 2, 3):
        _photo(cat, n, tmp_path)
    backup = cat.backup()
    cat.db.execute("DELETE FROM files WHERE id > 1")  # a forget the photographer regrets
    _photo(cat, 4, tmp_path)
    cat.close()
    shown = _cli(path, "catalog", "backups")
    assert shown.exit_code == 0 and str(backup) in shown.output and "asked for" in shown.output

    restored = _cli(path, "catalog", "restore", backup)
    assert restored.exit_code == 0, restored.output
    assert f"restored {path} from {backup}: 3 file(s), 0 run(s)" in restored.output
    assert _paths(path) == [str(tmp_path / "in" / f"IMG_000{n}.JPG") for n in (1, 2, 3)]
    safety = [b for b in list_backups(path) if b.kind == "before-restore"]
    assert len(safety) == 1 and f"the catalog as it was is in {safety[0].path}" in restored.output
    assert _paths(safety[0].path) == [str(tmp_path / "in" / f"IMG_000{n}.JPG") for n in (1, 4)]
    # The restored catalog works: a new photo is added to it as to any other.
    cat = Catalog(path)
    assert _photo(cat, 5, tmp_path) and cat.db["files"].count == 4
    cat.close()
    undo = _cli(path, "catalog", "restore", safety[0].path)
    assert undo.exit_code == 0 and len(_paths(path)) == 2


def test_restore_is_refused_while_the_daemon_runs_and_for_a_file_that_is_no_catalog(tmp_path):
    from photobatch.daemon.service import CatalogLock

    path = tmp_path / "catalog.db"
    cat = Catalog(path)
    _photo(cat, 1, tmp_path)
    backup = cat.backup()
    cat.close()
    lock = CatalogLock(path)
    lock.acquire()  # as `photobatch watch` holds it
    try:
        busy = _cli(path, "catalog", "restore", backup)
    finally:
        lock.release()
    assert busy.exit_code == 1
    assert "already using the catalog" in busy.output and "stop it before restoring" in busy.output
    junk = tmp_path / "notes.db"
    junk.write_text("my notes")
    refused = _cli(path, "catalog", "restore", junk)
    assert refused.exit_code == 1 and f"{junk} cannot be read as a catalog: it is not a database" in refused.output
    other = tmp_path / "other.db"
    sqlite3.connect(str(other)).execute("CREATE TABLE notes (x)").connection.close()
    foreign = _cli(path, "catalog", "restore", other)
    assert foreign.exit_code == 1 and f"{other} is not a photobatch catalog" in foreign.output
    itself = _cli(path, "catalog", "restore", path)
    assert itself.exit_code == 1 and "is the catalog itself" in itself.output
    assert not [b for b in list_backups(path) if b.kind == "before-restore"]  # nothing was done
    assert _paths(path) == [str(tmp_path / "in" / "IMG_0001.JPG")]


def _older_catalog(path, tmp_path):
    """A catalog as a version before m013 left it."""
    cat = Catalog(path)
    _photo(cat, 1, tmp_path)
    cat.db.execute("DROP INDEX idx_files_replaced_by")
    cat.db["files"].transform(drop={"replaced_by"})
    cat.db.execute("DELETE FROM _sqlite_migrations WHERE migration_set = 'photobatch' "
                   "AND name = 'm013_file_replaced_by'")
    cat.close()


def test_an_upgrade_backs_the_catalog_up_first_and_does_not_go_ahead_without_one(tmp_path):
    path = tmp_path / "catalog.db"
    _older_catalog(path, tmp_path)
    (tmp_path / "backups").write_text("a file where the backups folder goes")
    with pytest.raises(CatalogError, match=r"needs upgrading to this version of photobatch, and "
                                           r"is not upgraded without a backup: cannot write"):
        Catalog(path)
    conn = sqlite3.connect(str(path))
    assert "replaced_by" not in [row[1] for row in conn.execute("PRAGMA table_info(files)")]
    conn.close()
    (tmp_path / "backups").unlink()
    Catalog(path).close()
    [before] = list_backups(path)
    assert before.kind == "before-upgrade"
    conn = sqlite3.connect(str(before.path))
    assert "replaced_by" not in [row[1] for row in conn.execute("PRAGMA table_info(files)")]
    conn.close()
    Catalog(path).close()  # up to date now: no other backup
    assert len(list_backups(path)) == 1
    new = tmp_path / "new.db"
    Catalog(new).close()  # a new catalog has nothing to keep
    assert not list_backups(new)


def test_a_catalog_a_newer_photobatch_upgraded_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "catalog.db"
    cat = Catalog(path)
    backup = cat.backup()
    cat.db["_sqlite_migrations"].insert({"migration_set": "photobatch", "name": "m099_future",
                                         "applied_at": "2027-06-01 00:00:00+00:00"})
    newer = cat.backup()
    cat.close()
    with pytest.raises(CatalogError, match="was upgraded by a newer photobatch .*m099_future"):
        Catalog(path)
    listed = _cli(path, "catalog", "ls")
    assert listed.exit_code == 1 and "upgrade photobatch" in listed.output
    assert "Traceback" not in listed.output
    with pytest.raises(BackupError, match="written by a newer photobatch"):
        open_backup(newer)
    # Going back to the backup from before is the way out, as the message says.
    restored = _cli(path, "catalog", "restore", backup)
    assert restored.exit_code == 1 and "upgraded by a newer photobatch" in restored.output
    sqlite3.connect(str(path)).execute(
        "DELETE FROM _sqlite_migrations WHERE name = 'm099_future'").connection.commit()
    Catalog(path).close()


def test_scheduled_backups_are_taken_when_the_last_is_a_week_old_and_the_last_four_kept(tmp_path):
    path = tmp_path / "catalog.db"
    Catalog(path).close()
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first = scheduled_backup(path, now=start)
    assert first == tmp_path / "backups" / "catalog-20260101-000000-auto.db" and first.is_file()
    assert scheduled_backup(path, now=start + timedelta(days=6)) is None
    for week in range(1, 6):
        assert scheduled_backup(path, now=start + timedelta(days=7 * week)) is not None
    auto = [b for b in list_backups(path) if b.kind == "auto"]
    assert [b.taken for b in auto] == [start + timedelta(days=7 * w) for w in (2, 3, 4, 5)]
    # Daily, keeping two (the config's [backups] every_days = 1, keep = 2).
    later = start + timedelta(days=40)
    for day in range(3):
        assert scheduled_backup(path, 1, 2, now=later + timedelta(days=day)) is not None
    assert [b.taken for b in list_backups(path) if b.kind == "auto"] == [
        later + timedelta(days=1), later + timedelta(days=2)]
    # A backup taken by hand counts as the week's: no second copy of the same day's catalog.
    made = Catalog(path)
    made.backup()
    made.close()
    assert scheduled_backup(path) is None


def test_status_says_when_the_catalog_was_last_backed_up(tmp_path):
    path = tmp_path / "catalog.db"
    cat = Catalog(path)
    cat.close()
    none = _cli(path, "status")
    assert "backup   none yet (`photobatch catalog backup`" in none.output
    made = Catalog(path)
    backup = made.backup()
    made.close()
    assert re.search(rf"backup   [0-9] s ago: {re.escape(str(backup))}", _cli(path, "status").output)


def test_the_config_sets_how_often_the_daemon_backs_up_and_how_many_it_keeps():
    from photobatch.daemon.config import ConfigError, parse_config

    assert (parse_config({}).backup_every_days, parse_config({}).backup_keep) == (7.0, 4)
    daily = parse_config({"backups": {"every_days": 1, "keep": 10}})
    assert (daily.backup_every_days, daily.backup_keep) == (1.0, 10)
    assert parse_config({"backups": {"every_days": 0}}).backup_every_days == 0  # never
    with pytest.raises(ConfigError, match=r"backups.keep must be at least 1, got 0"):
        parse_config({"backups": {"keep": 0}})
    with pytest.raises(ConfigError, match=r"unknown key keep; it belongs in \[backups\]"):
        parse_config({"keep": 3})


def test_a_daemon_told_never_takes_no_scheduled_backup(tmp_path):
    from photobatch.daemon.config import parse_config
    from photobatch.daemon.service import WatchService

    catalog = tmp_path / "catalog.db"
    for every, expected in ((0, 0), (7, 1)):
        service = WatchService(None, catalog, config=parse_config({"backups": {"every_days": every}}))
        service.app = service.build_app(service.config)
        try:
            service._scheduled_backup()
        finally:
            service.app.close()
        assert len(list_backups(catalog)) == expected
