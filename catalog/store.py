"""The Catalog: the single source of truth for files and runs, over sqlite-utils."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from photobatch.catalog.migrations import mark_earlier_versions, migrations, unknown_migrations
from photobatch.catalog.workers import worker_id

RUN_STATUSES = ("queued", "running", "done", "failed", "skipped")
# Runs that are not one of several takes (rerun --takes N): takes are tries in files of their
# own beside the photo's output, so the photo's output, seed and state come from the others.
NOT_A_TAKE = "seed_source IS NOT 'take'"
# The stand-in hash prefix of a file that could not be opened (its content is unknown).
UNREADABLE = "unreadable:"
# Why the queued runs of a file replaced at its path were skipped.
REPLACED = "replaced by a newer version of the file at the same path"
# The error of a run cut short by Ctrl-C (`photobatch run` again redoes it).
INTERRUPTED = "interrupted (Ctrl-C) before it finished"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run_identity(*, file_id: int, recipe: str, fingerprint: str, params: dict,
                  seed: int | None, model_id: str, runner: str, seed_source: str | None = None) -> dict:
    """The columns that say what a run is: file, recipe version, parameters, seed, model."""
    return {
        "seed_source": seed_source,
        "file_id": file_id,
        "recipe": recipe,
        "recipe_fingerprint": fingerprint,
        "params": json.dumps(params, sort_keys=True),
        "seed": seed,
        "model_id": model_id,
        "runner": runner,
    }


class CatalogError(Exception):
    """The catalog file cannot be opened, or is not a photobatch catalog (one line: which, why)."""


class Catalog:
    """Intention-revealing operations on the catalog database (one writer, WAL mode)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit at the driver level and explicit BEGIN IMMEDIATE for writes: a deferred
            # transaction that reads and then writes fails at once with "database is locked"
            # when another thread committed in between (WAL snapshot), busy timeout or not.
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self.db = sqlite_utils.Database(conn)
            self._refuse_a_foreign_database()
            # WAL lets readers (the CLI) look while the daemon writes.
            self.db.enable_wal()
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA busy_timeout = 10000")
            self._upgrade()
        except sqlite3.DatabaseError as exc:
            reason = "it is not a database" if "not a database" in str(exc) else str(exc)
            raise CatalogError(f"cannot open the catalog {self.path}: {reason}") from None
        except OSError as exc:
            raise CatalogError(f"cannot open the catalog {self.path}: "
                               f"{exc.strerror or exc}") from None

    def _upgrade(self, backup: bool = True) -> None:
        """Bring the tables up to this version's, after a backup of the catalog as it was; refuse
        a catalog a newer photobatch upgraded (this one would not know its new columns)."""
        from photobatch.catalog.backup import BackupError, backup_path, write_backup

        applied = [m.name for m in migrations.applied(self.db)]
        newer = unknown_migrations(applied)
        if newer:
            self.db.close()
            raise CatalogError(f"the catalog {self.path} was upgraded by a newer photobatch (it "
                               f"has {newer[0]}, which this one does not know): upgrade photobatch, "
                               "or restore a backup taken before (photobatch catalog backups)")
        if backup and applied and migrations.pending(self.db):
            try:
                write_backup(self.db.conn, backup_path(self.path, "before-upgrade"))
            except BackupError as exc:
                self.db.close()
                raise CatalogError(f"the catalog {self.path} needs upgrading to this version of "
                                   f"photobatch, and is not upgraded without a backup: {exc}") from None
        migrations.apply(self.db)

    def backup(self, kind: str = "", dest: Path | None = None) -> Path:
        """Write a checked copy of the catalog (to ``dest``, else a new file in its backup
        folder named for ``kind``); BackupError saying why not."""
        from photobatch.catalog.backup import backup_path, write_backup

        return write_backup(self.db.conn, Path(dest) if dest else backup_path(self.path, kind))

    def restore_from(self, source) -> None:
        """Replace the catalog's whole content with that of ``source`` (an sqlite3 connection to
        a checked backup, see catalog.backup.open_backup), then upgrade it to this version."""
        source.backup(self.db.conn)
        self._upgrade(backup=False)  # the backup it came from is the copy as it was

    def _refuse_a_foreign_database(self) -> None:
        # Another program's database (a Lightroom .lrcat is SQLite too) must not get our tables.
        tables = set(self.db.table_names())
        if tables and "files" not in tables and "_sqlite_migrations" not in tables:
            shown = ", ".join(sorted(tables)[:4]) + (", ..." if len(tables) > 4 else "")
            self.db.close()
            raise CatalogError(f"{self.path} is another program's database (tables {shown}), "
                               "not a photobatch catalog; it was left as it is")

    @contextmanager
    def transaction(self):
        """A write transaction that takes the write lock up front (nested ones are savepoints)."""
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield self
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    # files -----------------------------------------------------------------

    def register_file(self, *, sha256: str, path: Path, size: int, mtime: float,
                      fmt: str | None = None, width: int | None = None,
                      height: int | None = None, metadata: dict | None = None) -> int:
        """Record a file by content hash (same content under a new path is the same file)."""
        metadata = metadata or {}
        row = {
            "sha256": sha256,
            "path": str(path),
            "size": size,
            "mtime": mtime,
            "last_seen": _now(),
        }
        optional = {
            "format": fmt,
            "width": width,
            "height": height,
            "camera_make": metadata.get("make"),
            "camera_model": metadata.get("model"),
            "lens": metadata.get("lens"),
            "date_taken": metadata.get("date_taken"),
            "exif": json.dumps(metadata, sort_keys=True, default=str) if metadata else None,
        }
        row.update({k: v for k, v in optional.items() if v is not None})
        with self.transaction():
            file_id = self._file_row(sha256, path, row)
            self._took_the_path(file_id)
            return file_id

    def _file_row(self, sha256: str, path: Path, row: dict) -> int:
        existing = self.file_by_sha(sha256)
        if existing:
            self.db["files"].update(existing["id"], row)
            return existing["id"]
        if not sha256.startswith(UNREADABLE):
            # The file could not be opened before (recorded under a stand-in hash): now its
            # content is known, that row becomes the file's, with its failed runs.
            placeholder = next(self.db["files"].rows_where(
                "path = ? AND sha256 LIKE ?", [str(path), UNREADABLE + "%"], limit=1), None)
            if placeholder:
                self.db["files"].update(placeholder["id"], row)
                return placeholder["id"]
        row["first_seen"] = row["last_seen"]
        return self.db["files"].insert(row).last_pk

    def moved(self, file_id: int, path: Path) -> None:
        """Record that the file ``file_id`` now lives at ``path`` (archived: the same bytes)."""
        with self.transaction():
            self.db.execute("UPDATE files SET path = ? WHERE id = ?", [str(path), file_id])

    def _took_the_path(self, file_id: int) -> None:
        """``file_id`` is what its path holds now: it is nobody's earlier version, and the rows
        it replaced there (see migrations.m013) are its own earlier versions, whose queued runs
        have nothing left to run on."""
        self.db.execute("UPDATE files SET replaced_by = NULL WHERE id = ? AND replaced_by IS NOT NULL",
                        [file_id])
        self.skip_queued_runs(mark_earlier_versions(self.db, file_id), REPLACED)

    def skip_queued_runs(self, file_ids: list[int], reason: str) -> int:
        """Mark these files' queued runs skipped with ``reason`` (a running one goes on);
        return how many were."""
        if not file_ids:
            return 0
        marks = ",".join("?" * len(file_ids))
        with self.transaction():
            return self.db.execute(
                "UPDATE runs SET status = 'skipped', error = ?, finished_at = ?, worker = NULL "
                f"WHERE status = 'queued' AND file_id IN ({marks})",
                [reason, _now(), *file_ids]).rowcount

    def versions(self, file_id: int) -> list[dict]:
        """The file and the earlier versions it replaced at its path, newest first."""
        return list(self.db["files"].rows_where("id = ? OR replaced_by = ?", [file_id, file_id],
                                                order_by="last_seen DESC, id DESC"))

    def unchanged_file(self, path: Path, size: int, mtime: float) -> dict | None:
        """The file row for ``path`` if the catalog saw it with this size and mtime (no need to
        hash or read its metadata again), else None."""
        rows = list(self.db["files"].rows_where(
            "path = ? AND size = ? AND mtime = ? AND replaced_by IS NULL",
            [str(path), size, mtime], limit=1))
        return rows[0] if rows else None

    def file_by_sha(self, sha256: str) -> dict | None:
        """The file row with this content hash, or None."""
        rows = list(self.db["files"].rows_where("sha256 = ?", [sha256], limit=1))
        return rows[0] if rows else None

    def find_file(self, ref: str) -> dict | None:
        """Find a file by path (absolute or as given), sha256, sha256 prefix, or file name
        (``IMG_0420.JPG``, as ``catalog ls`` shows it) when only one catalogued file has it."""
        for where, arg in (("path = ?", str(Path(ref).expanduser().resolve())),
                           ("path = ?", ref), ("sha256 = ?", ref)):
            # A path names what it holds now, not an earlier version replaced there.
            rows = list(self.db["files"].rows_where(where, [arg], limit=1,
                                                    order_by="replaced_by IS NOT NULL, id DESC"))
            if rows:
                return rows[0]
        if len(ref) >= 8:
            rows = list(self.db["files"].rows_where("sha256 LIKE ?", [ref + "%"], limit=2))
            if len(rows) == 1:
                return rows[0]
        named = self.files_named(ref)
        return named[0] if len(named) == 1 else None

    def files_named(self, name: str) -> list[dict]:
        """The catalogued files called ``name`` in any folder (none when ``name`` is a path),
        earlier versions replaced at their path left out."""
        if not name or "/" in name or os.sep in name:
            return []
        # LIKE narrows the rows in SQL; the exact, case-sensitive
        # comparison is Python's (LIKE ignores ASCII case and treats _ and % as wildcards).
        pattern = "%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.db["files"].rows_where("path LIKE ? ESCAPE '\\' AND replaced_by IS NULL",
                                           [pattern], order_by="path")
        return [row for row in rows if Path(row["path"]).name == name]

    # runs ------------------------------------------------------------------

    def finished_run(self, file_id: int, fingerprint: str, model_id: str,
                     recipe: str | None = None, output_dir: str | None = None) -> dict | None:
        """The latest successful run of this recipe version and model on the file, if any;
        with ``output_dir``, one whose output went to that folder (a run recorded before
        catalogs kept the folder counts as any folder's)."""
        where = "file_id = ? AND recipe_fingerprint = ? AND model_id = ? AND status = 'done'"
        args = [file_id, fingerprint, model_id]
        if recipe is not None:
            where += " AND recipe = ?"
            args.append(recipe)
        if output_dir is not None:
            where += " AND (output_dir = ? OR output_dir IS NULL)"
            args.append(output_dir)
        rows = list(self.db["runs"].rows_where(where, args, order_by="id DESC", limit=1))
        return rows[0] if rows else None

    def latest_done_run(self, file_id: int, recipe: str) -> dict | None:
        """The latest successful run of ``recipe`` on the file, whatever came after it (takes
        last: they are tries beside the photo's output)."""
        rows = list(self.db["runs"].rows_where("file_id = ? AND recipe = ? AND status = 'done'",
                                               [file_id, recipe],
                                               order_by=f"{NOT_A_TAKE} DESC, id DESC",
                                               limit=1))
        return rows[0] if rows else None

    def start_run(self, *, file_id: int, recipe: str, fingerprint: str, params: dict,
                  seed: int | None, model_id: str, runner: str, seed_source: str | None = None,
                  output_dir: str | None = None) -> int:
        """Record a run as started and return its id; ``output_dir``: the folder its output
        goes to (a rerun of a failed run goes there too)."""
        now = _now()
        return self.db["runs"].insert({
            **_run_identity(file_id=file_id, recipe=recipe, fingerprint=fingerprint,
                            params=params, seed=seed, model_id=model_id, runner=runner,
                            seed_source=seed_source),
            "status": "running",
            "attempts": 1,
            "output_dir": output_dir,
            "queued_at": now,
            "started_at": now,
            # Whose it is: a daemon starting meanwhile leaves a live `photobatch run`'s alone.
            "worker": worker_id(),
        }).last_pk

    def interrupt_runs(self, error: str = INTERRUPTED) -> int:
        """Record this process's runs still under way as failed with ``error`` (by default:
        interrupted by Ctrl-C before they finished). Return how many."""
        with self.transaction():
            return self.db.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished_at = ?, worker = NULL "
                "WHERE status = 'running' AND worker = ?",
                [error, _now(), worker_id()]).rowcount

    def update_claimed_run(self, run_id: int, *, file_id: int, recipe: str, fingerprint: str,
                           params: dict, seed: int | None, model_id: str, runner: str,
                           seed_source: str | None = None) -> None:
        """Fill in what a queued run turned out to be once its file has been identified."""
        self.db["runs"].update(run_id, _run_identity(
            file_id=file_id, recipe=recipe, fingerprint=fingerprint, params=params, seed=seed,
            model_id=model_id, runner=runner, seed_source=seed_source))

    def requested_seed(self, run_id: int) -> tuple[int | None, str | None]:
        """The (seed, seed_source) a queued run was asked to use (``rerun --seed``), else
        (None, None)."""
        row = self.db.execute("SELECT seed, seed_source FROM runs WHERE id = ?", [run_id]).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def chosen_seed(self, file_id: int, recipe: str, before_run: int | None = None) -> int | None:
        """The seed picked for this photo (or an earlier version of it) and recipe by ``rerun
        --seed``, when the latest run that says where its seed came from was given one
        (``--seed recipe`` ends the choice).
        Takes (``--takes N``) are tries beside the photo's output: they choose nothing until
        one is picked with ``--seed`` and its number."""
        # A photo exported again over itself keeps the seed picked for its earlier version.
        where = (f"file_id IN (SELECT id FROM files WHERE id = ? OR replaced_by = ?) "
                 f"AND recipe = ? AND seed_source IS NOT NULL AND {NOT_A_TAKE}")
        args: list = [file_id, file_id, recipe]
        if before_run is not None:
            where += " AND id < ?"
            args.append(before_run)
        row = self.db.execute(f"SELECT seed, seed_source FROM runs WHERE {where} "
                              "ORDER BY id DESC LIMIT 1", args).fetchone()
        return int(row[0]) if row and row[1] == "chosen" and row[0] is not None else None

    def skip_run(self, run_id: int, *, reason: str) -> None:
        """Mark a run skipped (nothing to do), with the reason."""
        self.db["runs"].update(run_id, {"status": "skipped", "error": reason,
                                        "finished_at": _now()})

    def finish_run(self, run_id: int, *, output_path: Path, output_sha256: str,
                   timings: dict[str, float], model_hash: str | None = None,
                   device: str | None = None, precision: str | None = None,
                   adapters_hash: str | None = None, working_size: str | None = None,
                   prompt: str | None = None, mask_sha256: str | None = None,
                   model_config: str | None = None,
                   ran_as: tuple[str, dict] | None = None) -> None:
        """Mark a run done with its output and per-stage timings; ``ran_as`` (fingerprint,
        params) replaces the recipe version it was started with, when what ran showed only
        then (a model whose family was known once it loaded)."""
        ran = {} if ran_as is None else {"recipe_fingerprint": ran_as[0],
                                          "params": json.dumps(ran_as[1], sort_keys=True)}
        self.db["runs"].update(run_id, {
            **ran,
            "status": "done",
            "output_path": str(output_path),
            "output_sha256": output_sha256,
            "timings": json.dumps({k: round(v, 4) for k, v in timings.items()}),
            "model_hash": model_hash,
            "device": device,
            "precision": precision,
            "adapters_hash": adapters_hash,
            "working_size": working_size,
            "prompt": prompt,
            "mask_sha256": mask_sha256,
            "model_config": model_config,
            "error": None,
            "finished_at": _now(),
        })

    def fail_run(self, run_id: int, *, error: str, timings: dict[str, float]) -> None:
        """Mark a run failed with a one-line reason."""
        self.db["runs"].update(run_id, {
            "status": "failed",
            "error": error,
            "timings": json.dumps({k: round(v, 4) for k, v in timings.items()}),
            "finished_at": _now(),
        })

    # queries ---------------------------------------------------------------

    def runs_for_file(self, file_id: int) -> list[dict[str, Any]]:
        """All runs on a file, oldest first."""
        return list(self.db["runs"].rows_where("file_id = ?", [file_id], order_by="id"))
