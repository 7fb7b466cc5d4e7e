"""The photographer's culling of each catalogued photo: star rating, colour labels and keywords,
as Lightroom, Capture One, Bridge and darktable record them, so a selection can say "the 4-star
picks", "the ones labelled green" or "the ones tagged client-select".

They live in the photographer's files, not in photobatch: an XMP sidecar beside the photo
(``IMG_0001.xmp`` from Lightroom, Capture One and Bridge; ``IMG_0001.CR3.xmp`` from darktable)
or the XMP inside it (a JPEG rated in Lightroom, a camera's own rating). Culling happens after
the shoot is imported, so they are read again whenever a sidecar changes; the catalog keeps the
last values read (``files.rating``, ``files.labels``, ``files.keywords``) with the sidecars'
stamp, for display and so that an unchanged sidecar is not parsed twice. Lightroom's pick and reject flags stay in
Lightroom's own catalog (it never writes them to XMP); a rating of -1 is darktable's and
Bridge's "rejected".
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

# darktable stores colour labels as numbers.
_DARKTABLE_LABELS = ("Red", "Yellow", "Green", "Blue", "Purple")  # Lightroom's names for them
REJECTED = -1
# Up to this many photos are looked up one by one; more, by listing their folders once.
_FEW = 8


@dataclass(frozen=True)
class Culling:
    """A photo's star rating (-1 rejected, 0-5; None: never rated), labels and keywords (as
    written; matched without regard to case)."""

    rating: int | None = None
    labels: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()

    def as_metadata(self) -> dict[str, Any]:
        """The values a photo's metadata summary holds for it (rating, labels, keywords)."""
        return {"rating": self.rating, "labels": list(self.labels), "keywords": list(self.keywords)}

    def as_xmp(self) -> dict[str, Any]:
        """The XMP values an output carries for it, as Lightroom writes them on export."""
        values: dict[str, Any] = {}
        if self.rating is not None:
            values["Xmp.xmp.Rating"] = str(self.rating)
        if self.labels:
            values["Xmp.xmp.Label"] = self.labels[0]  # XMP has room for one
        if self.keywords:
            values["Xmp.dc.subject"] = list(self.keywords)
        return values

    def matches(self, min_rating: int | None, labels: Iterable[str],
                keywords: Iterable[str] = ()) -> bool:
        """True when it has at least ``min_rating`` stars, any of ``labels`` and any of
        ``keywords`` (case-insensitive), each when given."""
        if min_rating is not None and (self.rating is None or self.rating < min_rating):
            return False
        wanted = {label.casefold() for label in labels}
        if wanted and not wanted & {label.casefold() for label in self.labels}:
            return False
        tags = {keyword.casefold() for keyword in keywords}
        return not tags or bool(tags & {k.casefold() for k in self.keywords})


def sidecars_for(photo: Path, folder_names: set[str] | None = None) -> list[Path]:
    """The XMP sidecars beside ``photo`` that exist: ``IMG_0001.xmp`` and ``IMG_0001.CR3.xmp``
    (either case of the extension). ``folder_names``: the names in its folder, when known."""
    found = []
    for stem in (photo.stem, photo.name):
        for suffix in (".xmp", ".XMP"):
            candidate = photo.with_name(stem + suffix)
            exists = (candidate.name in folder_names if folder_names is not None
                      else candidate.is_file())
            if exists and candidate not in found:
                found.append(candidate)
    return found


def newest_sidecar(photo: Path, sidecars: list[Path] | None = None) -> Path | None:
    """The XMP sidecar beside ``photo`` written last (the photographer's latest word), if any;
    ``sidecars``: those found already. None too when they change as we look."""
    sidecars = sidecars_for(photo) if sidecars is None else sidecars
    try:
        return max(sidecars, key=lambda p: p.stat().st_mtime_ns) if sidecars else None
    except OSError:
        return None


def sidecar_culling(photo: Path) -> Culling | None:
    """What the newest XMP sidecar beside ``photo`` says, or None when it has none."""
    newest = newest_sidecar(photo)
    return read_sidecar(newest) if newest is not None else None


def read_sidecar(path: Path) -> Culling:
    """The rating and labels an XMP sidecar holds (nothing, with a warning in the log, when it
    cannot be read)."""
    # Through photobatch's exiv2 module: its lock, and exiv2's warnings kept off stdout.
    from photobatch.plugins.metadata.exiv2 import LOCK, open_image

    try:
        with LOCK:
            xmp = open_image(path.read_bytes()).read_xmp()
    except (OSError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("cannot read the sidecar %s: %s", path, reason)
        return Culling()
    return Culling(_rating(xmp.get("Xmp.xmp.Rating"), path), _labels(xmp), _keywords(xmp))


def current_culling(db, files: list[dict[str, Any]]) -> dict[int, Culling]:
    """Each file's culling now (by file id), read again from the sidecars that changed since
    the catalog last looked; the catalog's copy is brought up to date."""
    result: dict[int, Culling] = {}
    changed: list[tuple[int, Culling, str]] = []
    listings: dict[Path, set[str] | None] = {}  # one listing per folder, not 4 stats a photo
    few = len(files) <= _FEW  # a photo or a few (the daemon's intake): 4 stats beat a listing
    for row in files:
        photo = Path(row["path"])
        if photo.parent not in listings:
            listings[photo.parent] = (_xmp_names(photo.parent) if not few
                                      else set() if photo.parent.is_dir() else None)
        names = listings[photo.parent]
        if few and names is not None:
            names = {p.name for p in sidecars_for(photo)}
        if names is None and row.get("culling_stamp") is not None:
            # Its folder is offline (an archive disk): what was read last still holds.
            result[row["id"]] = _stored(row)
            continue
        sidecars = sidecars_for(photo, names or set())
        try:
            stamp = _stamp(sidecars)
        except OSError:  # a sidecar removed meanwhile: look again
            sidecars = sidecars_for(photo)
            stamp = _stamp(sidecars)
        if stamp == row.get("culling_stamp"):
            result[row["id"]] = _stored(row)
            continue
        culling = _embedded(row)
        if sidecars:
            newest = newest_sidecar(photo, sidecars)
            if newest is None:  # changing as we look: read again at the next selection
                result[row["id"]] = culling
                continue
            culling = read_sidecar(newest)
        result[row["id"]] = culling
        changed.append((row["id"], culling, stamp))
    if changed:
        _store(db, changed)
    return result


def _xmp_names(folder: Path) -> set[str] | None:
    """The names of the XMP files in ``folder`` (None when it cannot be listed: moved, offline)."""
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries if e.name.lower().endswith(".xmp")}
    except OSError:
        return None


def _stored(row: dict[str, Any]) -> Culling:
    """The culling the catalog read last."""
    labels = tuple(filter(None, (row.get("labels") or "").split(",")))
    return Culling(row.get("rating"), labels, tuple(json.loads(row.get("keywords") or "[]")))


def _embedded(row: dict[str, Any]) -> Culling:
    """What the XMP inside the photo said when it was catalogued (its summary)."""
    try:
        summary = json.loads(row.get("exif") or "{}")
    except ValueError:
        return Culling()
    label = summary.get("label")
    return Culling(summary.get("rating"), (label,) if label else (),
                   tuple(summary.get("keywords") or ()))


def _store(db, changed: list[tuple[int, Culling, str]]) -> None:
    conn = db.conn
    own = not conn.in_transaction  # one commit for all: a first listing updates every file
    try:
        if own:
            conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "UPDATE files SET rating = ?, labels = ?, keywords = ?, culling_stamp = ? "
                "WHERE id = ?",
                [(c.rating, ",".join(c.labels) or None,
                  json.dumps(list(c.keywords), ensure_ascii=False) if c.keywords else None,
                  stamp, file_id) for file_id, c, stamp in changed])
        except BaseException:
            if own:
                conn.execute("ROLLBACK")
            raise
        if own:
            conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        # A read-only or busy catalog: the values read are used all the same, just not kept.
        log.info("culling not stored in the catalog: %s", exc)


def _stamp(sidecars: list[Path]) -> str:
    parts = []
    for path in sidecars:
        stat = path.stat()
        parts.append(f"{path.name}@{stat.st_mtime_ns}@{stat.st_size}")
    return ";".join(parts)


def _rating(value, path: Path) -> int | None:
    if value is None:
        return None
    try:
        rating = round(float(value))
    except (TypeError, ValueError):
        log.warning("%s: xmp:Rating %r is not a number", path, value)
        return None
    return max(REJECTED, min(5, rating))


def _labels(xmp: dict[str, Any]) -> tuple[str, ...]:
    labels = []
    label = xmp.get("Xmp.xmp.Label")
    if isinstance(label, str) and label.strip():
        labels.append(label.strip())
    numbers = xmp.get("Xmp.darktable.colorlabels") or []
    for number in [numbers] if isinstance(numbers, str) else numbers:
        if str(number).strip().isdigit() and int(number) < len(_DARKTABLE_LABELS):
            labels.append(_DARKTABLE_LABELS[int(number)])
    return tuple(dict.fromkeys(labels))


def _keywords(xmp: dict[str, Any]) -> tuple[str, ...]:
    """dc:subject, the keywords every one of these applications writes (Lightroom's
    hierarchical ones are there flattened too)."""
    subject = xmp.get("Xmp.dc.subject") or []
    items = [subject] if isinstance(subject, str) else subject
    return tuple(dict.fromkeys(str(k).strip() for k in items if str(k).strip()))
