"""The job queue, kept in the catalog's runs table: enqueue, atomic claim, retry, crash recovery."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Callable

from photobatch.catalog.store import Catalog
from photobatch.catalog.workers import pid_alive, worker_id

# The daemon's state (DaemonState) while an output disk is full and it waits for room.
WAITING_FOR_SPACE = "waiting for space"
ACTIVE = ("queued", "running", "done")
PENDING = ("queued", "running")


def now_text(offset_seconds: float = 0.0) -> str:
    """Now (plus ``offset_seconds``) as the catalog writes times: ISO 8601, UTC, to the second."""
    moment = datetime.now(timezone.utc) + timedelta(seconds=offset_seconds)
    return moment.isoformat(timespec="seconds")


class RunQueue:
    """Queue operations over a Catalog; each claim is one atomic UPDATE ... RETURNING."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.db = catalog.db

    def enqueue(self, *, file_id: int, recipe: str, fingerprint: str, model_id: str,
                output_dir: str, force: bool = False, seed: int | None = None,
                seed_source: str | None = None, failed_since: str | None = None,
                failed_by: str | None = None) -> int | None:
        """Queue (file, recipe version, model) for ``output_dir`` unless queued, running or done
        already for that folder; return the id (None: not queued). The same photo dropped into
        another watch folder, or run with another ``--out``, gets an output there too.

        ``force`` (``photobatch rerun``) queues it even when done: the run is then redone rather
        than skipped; one already queued or running is still not queued twice. ``seed`` with
        ``seed_source`` "chosen" (or "take", one of several), or ``seed_source`` "recipe"
        alone, is what ``rerun --seed`` asks the run to use. ``failed_since`` (a time as the catalog writes it): a run that
        failed then or later, by the worker ``failed_by`` when given, counts as done (the
        daemon's scans do not retry what failed while it ran; ``rerun --failed`` does).
        """
        blocking = PENDING if force else ACTIVE
        # Takes with seeds of their own (rerun --seed new --takes N) are different runs.
        same_seed, seed_args = (("AND seed = ? ", [seed]) if seed_source in ("chosen", "take")
                                else ("", []))
        failed, failed_args = "", []
        if failed_since:
            # Times are to the second: the worker tells this daemon from one that stopped
            # in the same second (`watch --once` twice in a row).
            by = " AND worker = ?" if failed_by else ""
            failed = f"OR (status = 'failed' AND finished_at >= ?{by})"
            failed_args = [failed_since, *([failed_by] if failed_by else [])]
        with self.catalog.transaction():
            existing = self.db.execute(
                "SELECT id FROM runs WHERE file_id = ? AND recipe = ? AND recipe_fingerprint = ? "
                f"AND model_id = ? {same_seed}AND (output_dir = ? OR output_dir IS NULL) "
                f"AND (status IN ({','.join('?' * len(blocking))}) {failed}) LIMIT 1",
                [file_id, recipe, fingerprint, model_id, *seed_args, output_dir, *blocking,
                 *failed_args]).fetchone()
            if existing:
                return None
            cur = self.db.execute(
                "INSERT INTO runs (file_id, recipe, recipe_fingerprint, model_id, status, attempts, "
                "output_dir, queued_at, force, seed, seed_source) "
                "VALUES (?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?)",
                [file_id, recipe, fingerprint, model_id, output_dir, now_text(), int(force), seed,
                 seed_source])
            return cur.lastrowid

    def is_forced(self, run_id: int) -> bool:
        """True when the run was queued to be redone even if an identical run is done."""
        row = self.db.execute("SELECT force FROM runs WHERE id = ?", [run_id]).fetchone()
        return bool(row and row[0])

    def claim(self, worker: str | None = None,
              accept: Callable[[str | None], bool] | None = None) -> dict | None:
        """Take the oldest runnable queued run, mark it running, and return it with its file path.

        ``accept``: whether a run writing into this output folder may be taken now (the daemon
        leaves those of a full disk waiting while other disks' go on)."""
        with self.catalog.transaction():
            within, args = "", []
            if accept is not None:
                folders = [row[0] for row in self.db.execute(
                    "SELECT DISTINCT output_dir FROM runs WHERE status = 'queued' AND "
                    "(available_at IS NULL OR available_at <= ?)", [now_text()])]
                allowed = [folder for folder in folders if accept(folder)]
                if not allowed:
                    return None
                known = [folder for folder in allowed if folder is not None]
                within = (f"AND (output_dir IN ({','.join('?' * len(known))})"
                          + (" OR output_dir IS NULL)" if None in allowed else ")"))
                args = known
            row = self.db.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, started_at = ?, "
                "worker = ? WHERE id = (SELECT id FROM runs WHERE status = 'queued' AND "
                f"(available_at IS NULL OR available_at <= ?) {within} ORDER BY id LIMIT 1) "
                "RETURNING id, file_id, recipe, output_dir, attempts, model_id",
                [now_text(), worker or worker_id(), now_text(), *args]).fetchone()
        if row is None:
            return None
        run = dict(zip(("id", "file_id", "recipe", "output_dir", "attempts", "model_id"), row))
        run["path"] = self.db.execute("SELECT path FROM files WHERE id = ?", [run["file_id"]]).fetchone()[0]
        return run

    def requeue_orphans(self, alive: Callable[[str | None], bool] = pid_alive) -> int:
        """Put runs left 'running' by a dead process back in the queue; return how many."""
        rows = self.db.execute("SELECT id, worker FROM runs WHERE status = 'running'").fetchall()
        orphans = [run_id for run_id, worker in rows if not alive(worker)]
        with self.catalog.transaction():
            for run_id in orphans:
                self.db.execute(
                    "UPDATE runs SET status = 'queued', worker = NULL, available_at = NULL, "
                    "error = 'requeued after the process working on it stopped' WHERE id = ?",
                    [run_id])
        return len(orphans)

    def release(self, run_id: int) -> None:
        """Give a claimed run back (shutdown): queued again, this attempt not counted."""
        with self.catalog.transaction():
            self.db.execute(
                "UPDATE runs SET status = 'queued', worker = NULL, "
                "attempts = MAX(attempts - 1, 0) WHERE id = ? AND status = 'running'", [run_id])

    def skip_queued(self, file_id: int, reason: str) -> int:
        """Mark the file's queued runs skipped with ``reason`` (a running one goes on); return
        how many were."""
        # A read first: the daemon's scans ask this of every photo, and most have none queued.
        if self.db.execute("SELECT 1 FROM runs WHERE file_id = ? AND status = 'queued' LIMIT 1",
                           [file_id]).fetchone() is None:
            return 0
        return self.catalog.skip_queued_runs([file_id], reason)

    def schedule_retry(self, run_id: int, delay_seconds: float, counted: bool = True) -> None:
        """Queue a failed run again after ``delay_seconds`` (its error stays visible); an
        attempt not ``counted`` (it never had its chance: the disk was full) is given back."""
        with self.catalog.transaction():
            self.db.execute(
                "UPDATE runs SET status = 'queued', worker = NULL, available_at = ?, "
                f"attempts = {'attempts' if counted else 'MAX(attempts - 1, 0)'} WHERE id = ?",
                [now_text(delay_seconds), run_id])

    def pending(self, include_delayed: bool = True) -> int:
        """How many runs are queued (optionally only those runnable now)."""
        if include_delayed:
            sql, args = "SELECT count(*) FROM runs WHERE status = 'queued'", []
        else:
            sql = ("SELECT count(*) FROM runs WHERE status = 'queued' AND "
                   "(available_at IS NULL OR available_at <= ?)")
            args = [now_text()]
        return self.db.execute(sql, args).fetchone()[0]

    def counts(self) -> dict[str, int]:
        """Runs per status."""
        return {status: n for status, n in self.db.execute(
            "SELECT status, count(*) FROM runs GROUP BY status").fetchall()}


class DaemonState:
    """The one row where a running daemon says what it is doing (read by ``photobatch status``)."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.db = catalog.db

    def started(self, folders: list[str]) -> None:
        """Record that this process is the daemon now."""
        with self.catalog.transaction():
            self.db["daemon_state"].upsert({
                "id": 1, "pid": os.getpid(), "host": socket.gethostname(), "started_at": now_text(),
                "heartbeat_at": now_text(), "state": "running", "current": "[]",
                "folders": json.dumps(folders)}, pk="id")

    def heartbeat(self, current: list[str], state: str = "running") -> None:
        """Refresh the heartbeat and the files being worked on."""
        with self.catalog.transaction():
            self.db.execute("UPDATE daemon_state SET heartbeat_at = ?, current = ?, state = ? "
                            "WHERE id = 1", [now_text(), json.dumps(current), state])

    def read(self) -> dict | None:
        """The last state a daemon wrote, or None if none ever ran on this catalog."""
        rows = list(self.db["daemon_state"].rows_where("id = 1"))
        return rows[0] if rows else None
