"""What ``photobatch status`` reports, read from the catalog and the daemon's lock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from photobatch.catalog.queue import DaemonState, RunQueue
from photobatch.catalog.store import Catalog
from photobatch.daemon.paths import default_catalog_path

STALE_HEARTBEAT_SECONDS = 30


def collect_status(catalog_path: Path | None) -> dict:
    """Daemon up/down, queue counts, current files, throughput, and the last errors."""
    from photobatch.daemon.service import CatalogLock

    path = Path(catalog_path) if catalog_path else default_catalog_path()
    catalog = Catalog(path)
    state = DaemonState(catalog).read()
    up = CatalogLock(path).held_by_other()
    now = datetime.now(timezone.utc)
    throughput = {}
    for minutes in (5, 15, 60):
        since = (now - timedelta(minutes=minutes)).isoformat(timespec="seconds")
        done = catalog.db.execute(
            "SELECT count(*) FROM runs WHERE status = 'done' AND finished_at >= ?", [since]).fetchone()[0]
        throughput[f"{minutes} min"] = round(done / minutes, 2)
    errors = [dict(zip(("file", "recipe", "error", "at"), row)) for row in catalog.db.execute(
        "SELECT f.path, r.recipe, r.error, r.finished_at FROM runs r JOIN files f ON f.id = r.file_id "
        "WHERE r.error IS NOT NULL AND r.status IN ('failed', 'queued') "
        "ORDER BY r.finished_at DESC LIMIT 5")]
    report = {
        "catalog": str(path),
        "daemon": "up" if up else "down",
        "pid": state["pid"] if state else None,
        "since": state["started_at"] if state else None,
        "heartbeat": state["heartbeat_at"] if state else None,
        "current": json.loads(state["current"]) if state and up else [],
        "folders": json.loads(state["folders"]) if state else [],
        "queue": RunQueue(catalog).counts(),
        "per_minute": throughput,
        "last_errors": errors,
    }
    catalog.close()
    return report


def format_status(report: dict) -> str:
    """The report as a few readable lines."""
    lines = [f"daemon   {report['daemon']}" + (f" (pid {report['pid']}, since {report['since']})"
                                                if report["daemon"] == "up" else "")]
    lines.append(f"catalog  {report['catalog']}")
    if report["folders"]:
        lines.append("folders  " + ", ".join(report["folders"]))
    counts = report["queue"]
    order = ("queued", "running", "done", "failed", "skipped")
    lines.append("runs     " + (", ".join(f"{counts.get(k, 0)} {k}" for k in order) if counts else "none yet"))
    if report["current"]:
        lines.append("working  " + ", ".join(report["current"]))
    lines.append("speed    " + ", ".join(f"{v}/min over {k}" for k, v in report["per_minute"].items()))
    if report["last_errors"]:
        lines.append("last errors:")
        for err in report["last_errors"]:
            lines.append(f"  {Path(err['file']).name} [{err['recipe']}]: {err['error']}")
    return "\n".join(lines)
