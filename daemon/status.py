"""What ``photobatch status`` reports, read from the catalog and the daemon's lock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from photobatch.catalog.queue import WAITING_FOR_SPACE, DaemonState, RunQueue
from photobatch.catalog.store import Catalog
from photobatch.daemon.paths import default_catalog_path
from photobatch.daemon.tables import duration_text

STALE_HEARTBEAT_SECONDS = 30


def collect_status(catalog_path: Path | None) -> dict:
    """Daemon up/down, queue counts, current files, throughput, and the last errors."""
    from photobatch.daemon.service import CatalogLock

    path = Path(catalog_path) if catalog_path else default_catalog_path()
    catalog = Catalog(path)
    state = DaemonState(catalog).read()
    up = CatalogLock(path).held_by_other()
    now = datetime.now(timezone.utc)
    started = datetime.fromisoformat(state["started_at"]) if up and state else None
    throughput = {}
    for minutes in (5, 15, 60):
        throughput[f"{minutes} min"] = _per_minute(catalog, now - timedelta(minutes=minutes),
                                                   started, now)
    counts = RunQueue(catalog).counts()
    pending = counts.get("queued", 0) + counts.get("running", 0)
    since_start = _per_minute(catalog, started, None, now) if started else None
    # The pace that says most about what is left: the last 5 minutes (since the daemon
    # started, when that is more recent).
    pace = throughput["5 min"]
    # Failed runs queued again for later (the daemon's retries): queued, but not runnable yet.
    retries, next_retry = catalog.db.execute(
        "SELECT count(*), MIN(available_at) FROM runs WHERE status = 'queued' AND attempts > 0 "
        "AND error IS NOT NULL AND available_at > ?", [now.isoformat(timespec="seconds")]).fetchone()
    exports = [dict(zip(("name", "finished_at", "result", "error"), row)) for row in
               catalog.db.execute("SELECT name, finished_at, result, error FROM exports "
                                  "ORDER BY name")]
    # The latest error of each photo and recipe: a file that failed at every start is one line.
    # (SQLite takes the bare columns from the row with the MAX.)
    errors = [dict(zip(("file", "recipe", "error", "at"), row)) for row in catalog.db.execute(
        "SELECT f.path, r.recipe, r.error, MAX(r.finished_at) AS at FROM runs r "
        "JOIN files f ON f.id = r.file_id WHERE r.error IS NOT NULL "
        "AND r.status IN ('failed', 'queued') GROUP BY r.file_id, r.recipe "
        "ORDER BY at DESC LIMIT 5")]
    report = {
        "catalog": str(path),
        "daemon": "up" if up else "down",
        "pid": state["pid"] if state else None,
        "since": state["started_at"] if state else None,
        "heartbeat": state["heartbeat_at"] if state else None,
        "current": json.loads(state["current"]) if state and up else [],
        "state": state["state"] if state and up else None,
        "folders": json.loads(state["folders"]) if state else [],
        "queue": counts,
        "retries": {"waiting": retries, "next_at": next_retry} if retries else None,
        "exports": exports,
        "per_minute": throughput,
        "per_minute_since_start": since_start,
        "up_seconds": round((now - started).total_seconds()) if started else None,
        # Only a daemon that is up works the queue off.
        "eta_seconds": round(pending / pace * 60) if started and pending and pace else None,
        "last_errors": errors,
        "last_backup": _last_backup(path),
    }
    catalog.close()
    return report


def _last_backup(catalog_path: Path) -> dict | None:
    """The catalog's newest backup (file, when, why), or None."""
    from photobatch.catalog.backup import list_backups

    found = list_backups(catalog_path)
    if not found:
        return None
    last = found[-1]
    return {"file": str(last.path), "taken": last.taken.isoformat(timespec="seconds"),
            "kind": last.kind or "asked for"}


def _per_minute(catalog: Catalog, since: datetime, not_before: datetime | None,
                now: datetime) -> float:
    """Runs done per minute from ``since`` (or ``not_before`` when later: the daemon's start)
    to ``now``."""
    start = max(since, not_before) if not_before else since
    done = catalog.db.execute(
        "SELECT count(*) FROM runs WHERE status = 'done' AND finished_at >= ?",
        [start.isoformat(timespec="seconds")]).fetchone()[0]
    minutes = max((now - start).total_seconds(), 1.0) / 60
    return round(done / minutes, 2)


def format_status(report: dict) -> str:
    """The report as a few readable lines."""
    lines = [f"daemon   {report['daemon']}" + (f" (pid {report['pid']}, since {report['since']})"
                                                if report["daemon"] == "up" else "")]
    lines.append(f"catalog  {report['catalog']}")
    if report["folders"]:
        lines.append("folders  " + ", ".join(
            f if Path(f).is_dir() else f"{f} (not there: a card or share not mounted?)"
            for f in report["folders"]))
    counts = report["queue"]
    order = ("queued", "running", "done", "failed", "skipped")
    lines.append("runs     " + (", ".join(f"{counts.get(k, 0)} {k}" for k in order) if counts else "none yet"))
    if report["current"]:
        lines.append("working  " + ", ".join(report["current"]))
    if report.get("state") == WAITING_FOR_SPACE:
        lines.append("waiting  an output disk is full: the daemon tries one photo a while, and "
                     "goes on once there is room (nothing is lost)")
    up = report.get("up_seconds")
    # Windows longer than the daemon has been up would only dilute its pace.
    speeds = [f"{v}/min over {k}" for k, v in report["per_minute"].items()
              if up is None or int(k.split()[0]) * 60 <= up]
    if up is not None and up < 3600:
        speeds.append(f"{report['per_minute_since_start']}/min since it started "
                      f"{duration_text(up)} ago")
    lines.append("speed    " + ", ".join(speeds))
    pending = counts.get("queued", 0) + counts.get("running", 0)
    if pending and report.get("eta_seconds") is not None:
        lines.append(f"left     {pending} run(s), about {duration_text(report['eta_seconds'])} at this pace")
    elif counts.get("queued") and report["daemon"] == "down":
        # `rerun` queues for the daemon: without one nothing moves.
        lines.append(f"left     {counts['queued']} queued run(s) wait for `photobatch watch` "
                     "(or `photobatch rerun ... --now`)")
    retries = report.get("retries")
    if retries:
        wait = (datetime.fromisoformat(retries["next_at"]) - datetime.now(timezone.utc)).total_seconds()
        lines.append(f"retries  {retries['waiting']} failed run(s) to be tried again, the next "
                     f"in {duration_text(max(wait, 0))}")
    backup = report.get("last_backup")
    if backup:
        age = (datetime.now(timezone.utc) - datetime.fromisoformat(backup["taken"])).total_seconds()
        when = f"{age // 86400:.0f} days" if age >= 2 * 86400 else duration_text(max(age, 0))
        lines.append(f"backup   {when} ago: {backup['file']}")
    else:
        lines.append("backup   none yet (`photobatch catalog backup`; the daemon takes one weekly, [backups])")
    for export in report.get("exports") or []:
        age = (datetime.now(timezone.utc) - datetime.fromisoformat(export["finished_at"])).total_seconds()
        how = (f"failed: {export['error']}" if export["error"] else
               export["result"] or "done")
        lines.append(f"export   {export['name']}, {duration_text(max(age, 0))} ago: {how}")
    if report["last_errors"]:
        lines.append("last errors:")
        for err in report["last_errors"]:
            lines.append(f"  {Path(err['file']).name} [{err['recipe']}]: {err['error']}")
    return "\n".join(lines)
