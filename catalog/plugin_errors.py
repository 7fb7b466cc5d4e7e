"""The catalog's record of plugin failures (table ``plugin_errors``, migration m003)."""

from __future__ import annotations

import logging
from typing import Callable, Iterable

log = logging.getLogger(__name__)

TABLE = "plugin_errors"


def record_plugin_failures(open_catalog: Callable[[], object], failures: Iterable,
                           run_id: int | None = None) -> None:
    """Append ``failures`` (PluginFailure records) to the catalog; never raises.

    ``open_catalog`` returns the Catalog: opening it may fail too, and a plugin's failure must
    not become the worker's.
    """
    try:
        db = open_catalog().db
        with db.atomic():
            db[TABLE].insert_all(
                {"at": f.at, "plugin": f.plugin, "hook": f.hook, "error": f.error,
                 "traceback": f.traceback, "run_id": run_id}
                for f in failures
            )
    except Exception:
        log.warning("could not record a plugin failure in the catalog", exc_info=True)


def recent_plugin_failures(db, limit: int = 20) -> list[dict]:
    """The latest ``limit`` recorded plugin failures, newest first."""
    if TABLE not in db.table_names():
        return []
    return list(db.query(f"SELECT * FROM {TABLE} ORDER BY id DESC LIMIT ?", [limit]))
