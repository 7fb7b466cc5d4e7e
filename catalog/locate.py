"""``catalog locate``: find the originals and outputs the catalog lost (a shoot's folder moved or
renamed outside photobatch, a disk mounted elsewhere) by their content, as Lightroom's "Find
Missing Photos" does, and record where they are now.

A file is taken for a missing one only when its sha256 is the recorded one: same size first
(originals; outputs by name, whose size is not recorded), then the content. Nothing on disk is
touched; only the catalog's paths change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from photobatch.catalog.hashing import file_sha256
from photobatch.catalog.verify import planned_checks


@dataclass
class Located:
    """What a search found: (catalogued path, where it is now) pairs, and what it did not."""

    originals: list[tuple[str, str, int]] = field(default_factory=list)  # ..., file id
    outputs: list[tuple[str, str]] = field(default_factory=list)
    still_missing: list[str] = field(default_factory=list)


def locate_missing(catalog, candidates: Iterable[Path]) -> Located:
    """Look among the files ``candidates`` (absolute paths: the photos of the folders searched)
    for the catalog's missing originals and outputs; return what was found where (nothing is
    recorded yet: see ``record``)."""
    missing_originals: dict[int, list] = {}  # size -> checks
    missing_outputs: dict[str, list] = {}  # file name -> checks
    for check in planned_checks(catalog.db):
        if check.sha256 is None or os.path.exists(check.path):
            continue
        if check.kind == "original":
            missing_originals.setdefault(check.size, []).append(check)
        else:
            missing_outputs.setdefault(Path(check.path).name, []).append(check)
    located = Located()
    if not (missing_originals or missing_outputs):
        return located
    found: dict[tuple, str] = {}  # (kind, file or run id) -> new path
    for path in candidates:
        by_size = missing_originals.get(_size(path), [])
        by_name = missing_outputs.get(path.name, [])
        if not (by_size or by_name):
            continue
        sha = _sha(path)
        for check in (*by_size, *by_name):
            key = (check.kind, check.run_id or check.file_id)
            if sha == check.sha256 and key not in found:
                found[key] = str(path)
                if check.kind == "original":
                    located.originals.append((check.path, str(path), check.file_id))
                else:
                    located.outputs.append((check.path, str(path)))
    for checks in (*missing_originals.values(), *missing_outputs.values()):
        for check in checks:
            if (check.kind, check.run_id or check.file_id) not in found:
                located.still_missing.append(check.path)
    return located


def record(catalog, located: Located) -> None:
    """Record the new paths ``locate_missing`` found (outputs: every run that wrote that file)."""
    with catalog.transaction():
        for _, new, file_id in located.originals:
            catalog.db.execute("UPDATE files SET path = ? WHERE id = ?", [new, file_id])
        for old, new in located.outputs:
            catalog.db.execute("UPDATE runs SET output_path = ?, output_dir = ? "
                               "WHERE output_path = ?", [new, str(Path(new).parent), old])


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _sha(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None
