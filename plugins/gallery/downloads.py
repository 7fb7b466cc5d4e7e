"""The gallery's full-resolution downloads, and the zip of them all.

Downloads are copies of the outputs inside the gallery (so it can be moved or uploaded as one
folder). Unless the gallery shows locations, a copy whose output carries GPS has it removed:
otherwise the page would hide the location while the download gives it away. When that cannot be
done the download is left out rather than leaking.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class DownloadRefused(Exception):
    """An output cannot be offered as asked (its location cannot be removed)."""


@dataclass(frozen=True)
class Download:
    """A full-resolution file in the gallery."""

    href: str  # relative to the gallery, e.g. "full/IMG_0001_winter.jpg"
    name: str
    size: int
    width: int | None
    height: int | None


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``stem-2.ext``, ``stem-3.ext``... when taken; a safe file name either way."""
    safe = re.sub(r"[^\w.\- ]+", "_", name).strip(" .") or "photo"
    stem, dot, ext = safe.rpartition(".")
    if not dot:
        stem, ext = safe, ""
    candidate, n = safe, 2
    while candidate.lower() in taken:
        candidate = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
        n += 1
    taken.add(candidate.lower())
    return candidate


def place_download(output: Path, target: Path, *, keep_location: bool) -> Download:
    """Put ``output`` at ``target``: linked or copied, without its location unless asked to keep it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    try:
        if keep_location or not _has_location(output):
            _link_or_copy(output, temp)
        else:
            shutil.copyfile(output, temp)
            _remove_location(output, temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    width, height = _pixel_size(target)
    return Download(f"{target.parent.name}/{target.name}", target.name, target.stat().st_size,
                    width, height)


def reuse_download(target: Path) -> Download:
    """Describe a download placed by an earlier export."""
    width, height = _pixel_size(target)
    return Download(f"{target.parent.name}/{target.name}", target.name, target.stat().st_size,
                    width, height)


def write_zip(zip_path: Path, files: list[Path], root: Path | None = None) -> int:
    """Archive ``files`` (stored, not compressed: JPEGs do not shrink) atomically, named in it
    by their path under ``root`` (else by their name); return its size."""
    temp = zip_path.with_name(f".{zip_path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for path in files:
                archive.write(path, arcname=path.relative_to(root).as_posix() if root else path.name)
        os.replace(temp, zip_path)
    finally:
        temp.unlink(missing_ok=True)
    return zip_path.stat().st_size


def _link_or_copy(source: Path, target: Path) -> None:
    # A hard link costs no space; a later re-run replaces the output with a new file (atomic
    # rename), so the gallery keeps the version it was made with.
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _has_location(path: Path) -> bool:
    from photobatch.plugins.metadata import read_summary

    summary = read_summary(path)
    if summary["gps_lat"] is not None or summary["gps_lon"] is not None:
        return True
    # Unparsable GPS tags still say where: count any GPS tag.
    return any(key.startswith("Exif.GPSInfo.") for key in summary.get("exif") or {})


def _remove_location(source: Path, copy: Path) -> None:
    from photobatch.plugins.metadata import MetadataError, read_record, write_output_metadata

    width, height = _pixel_size(source)
    try:
        if not width or not height:
            raise MetadataError("its pixel size cannot be read")
        write_output_metadata(source, copy, width=width, height=height,
                              record=read_record(source), policy="no-location", icc="source")
    except MetadataError as exc:
        raise DownloadRefused(f"the location of {source.name} cannot be removed ({exc}); "
                              "pass --gps to offer it with its location") from None
    if _has_location(copy):
        raise DownloadRefused(f"the location of {source.name} could not be removed; "
                              "pass --gps to offer it with its location")


def _pixel_size(path: Path) -> tuple[int | None, int | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.width, img.height
    except (OSError, UnidentifiedImageError, ValueError):
        return None, None
