"""``catalog verify``: compare the catalog with the disk, read-only.

Every original should still have the content hash it was catalogued with, and every output the
hash recorded when it was written. Nothing is changed: the findings are for the user to act on
(``rerun`` a missing output, ``catalog forget`` a deleted original).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from photobatch.catalog.hashing import file_sha256
from photobatch.catalog.migrations import SEEN_THERE_LATER
from photobatch.catalog.store import UNREADABLE

ORIGINAL_MISSING = "original missing"
ORIGINAL_CHANGED = "original changed"
OUTPUT_MISSING = "output missing"
OUTPUT_CHANGED = "output changed"



@dataclass(frozen=True)
class Finding:
    """One difference between the catalog and the disk."""

    kind: str
    path: str
    detail: str
    file_id: int
    run_id: int | None = None

    def as_dict(self) -> dict:
        """The finding as plain data (for --json)."""
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """One file to check: what the catalog says it should be."""

    kind: str  # "original" | "output"
    path: str
    sha256: str | None
    size: int | None
    file_id: int
    run_id: int | None = None
    written_at: str | None = None  # outputs: when the run finished (ISO 8601)
    name_reused: bool = False  # originals: another photo was seen at this path since


def planned_checks(db, file_ids: Iterable[int] | None = None) -> list[Check]:
    """What verify looks at: every original, and the newest recorded output at each output path."""
    wanted = set(file_ids) if file_ids is not None else None
    checks = []
    # An earlier version replaced at its path is gone by design: its path holds the newer one.
    for row in db.query(
            f"SELECT id, path, sha256, size, EXISTS ({SEEN_THERE_LATER}) AS reused "
            "FROM files f WHERE replaced_by IS NULL ORDER BY path"):
        if wanted is None or row["id"] in wanted:
            # A file that could not be read when registered has a stand-in hash: existence only.
            sha = None if row["sha256"].startswith(UNREADABLE) else row["sha256"]
            checks.append(Check("original", row["path"], sha, row["size"], row["id"],
                                name_reused=bool(row["reused"])))
    # An output path rewritten by a later run (a re-run) is judged by that later run only.
    for row in db.query(
            "SELECT r.id, r.file_id, r.output_path, r.output_sha256, r.finished_at FROM runs r "
            "WHERE r.id IN (SELECT MAX(id) FROM runs WHERE status = 'done' "
            "AND output_path IS NOT NULL GROUP BY output_path) ORDER BY r.output_path"):
        if wanted is None or row["file_id"] in wanted:
            checks.append(Check("output", row["output_path"], row["output_sha256"], None,
                                row["file_id"], row["id"], row["finished_at"]))
    return checks


def verify(checks: Iterable[Check], *, quick: bool = False,
           hasher: Callable[[Path], str] | None = None) -> list[Finding]:
    """Check each file exists with its recorded content.

    ``quick`` reads no file: originals are compared by size, outputs by modification time
    (changed after their run finished).
    """
    hasher = hasher or file_sha256
    findings = []
    for check in checks:
        finding = _check_one(check, quick, hasher)
        if finding is not None and finding.kind == ORIGINAL_CHANGED and check.name_reused:
            # A new card's IMG_0001.JPG in the same folder: this photo did not change, it left.
            finding = Finding(ORIGINAL_MISSING, check.path, "another photo has its name now "
                              "(catalogued as a photo of its own)", check.file_id)
        if finding is not None:
            findings.append(finding)
    return findings


def _check_one(check: Check, quick: bool, hasher) -> Finding | None:
    path = Path(check.path)
    missing = ORIGINAL_MISSING if check.kind == "original" else OUTPUT_MISSING
    changed = ORIGINAL_CHANGED if check.kind == "original" else OUTPUT_CHANGED
    try:
        stat = path.stat()
        size = stat.st_size
    except FileNotFoundError:
        return Finding(missing, check.path, "not on disk", check.file_id, check.run_id)
    except OSError as exc:
        return Finding(missing, check.path, f"cannot be read ({exc.strerror or exc})",
                       check.file_id, check.run_id)
    if check.sha256 is None:
        return None
    if check.size is not None and size != check.size:
        return Finding(changed, check.path, f"{check.size} bytes recorded, {size} on disk",
                       check.file_id, check.run_id)
    if quick:
        modified = _modified_after(stat.st_mtime, check.written_at)
        if modified:
            return Finding(changed, check.path, modified, check.file_id, check.run_id)
        return None
    try:
        actual = hasher(path)
    except OSError as exc:
        return Finding(missing, check.path, f"cannot be read ({exc.strerror or exc})",
                       check.file_id, check.run_id)
    if actual != check.sha256:
        return Finding(changed, check.path,
                       f"sha256 {actual[:12]}… on disk, {check.sha256[:12]}… recorded",
                       check.file_id, check.run_id)
    return None


def _modified_after(mtime: float, written_at: str | None) -> str | None:
    if not written_at:
        return None
    try:
        finished = datetime.fromisoformat(written_at)
    except ValueError:
        return None
    # The run is recorded finished after its file is renamed into place, to the second.
    if mtime > finished.timestamp() + 1:
        when = datetime.fromtimestamp(mtime, timezone.utc).isoformat(timespec="seconds")
        return f"modified at {when}, after its run finished at {written_at}"
    return None
