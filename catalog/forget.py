"""``catalog forget``: remove files and their run history from the catalog (never from disk)."""

from __future__ import annotations

from dataclasses import dataclass

from photobatch.catalog.store import Catalog
from photobatch.catalog.workers import pid_alive


class ForgetRefused(Exception):
    """A file cannot be forgotten now (a daemon is working on it)."""


@dataclass(frozen=True)
class Forgotten:
    """What a forget removed."""

    files: int
    runs: int


def forget_files(catalog: Catalog, file_ids: list[int]) -> Forgotten:
    """Delete these files, their earlier versions and all their runs in one transaction;
    refuse if one is being worked on."""
    if not file_ids:
        return Forgotten(0, 0)
    with catalog.transaction():
        # A photo's earlier versions (replaced at its path) go with it.
        file_ids = sorted({v["id"] for fid in file_ids for v in catalog.versions(fid)})
        marks = ",".join("?" * len(file_ids))
        # A run left "running" by a process that is gone (killed) holds nothing up.
        busy = [path for path, worker in catalog.db.execute(
            f"SELECT f.path, r.worker FROM runs r JOIN files f ON f.id = r.file_id "
            f"WHERE r.status = 'running' AND r.file_id IN ({marks})", file_ids).fetchall()
            if pid_alive(worker)]
        if busy:
            raise ForgetRefused(f"{busy[0]} is being processed right now; try again when it is done")
        runs = catalog.db.execute(f"DELETE FROM runs WHERE file_id IN ({marks})", file_ids).rowcount
        files = catalog.db.execute(f"DELETE FROM files WHERE id IN ({marks})", file_ids).rowcount
    return Forgotten(files, runs)
