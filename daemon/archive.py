"""Archiving a watch folder's originals once they are done, as Lightroom's Auto Import moves
them out of the watched folder into a destination by date: the folder stays an inbox, empty and
ready for the next card.

A photo is archived when every recipe of its folder has finished with it (done, or skipped
for a reason such as "no face"); one that failed stays in the inbox, where it is seen, and one
a rating rule has not taken yet waits there too. It goes with what belongs to it: its XMP
sidecars, its painted mask, and the other half of a RAW+JPEG pair once that half is done too.
The catalog follows each file to its new path.

Nothing is ever overwritten: a file of that name already in the archive leaves the photo where
it is, with a warning. A move within one disk is a rename; across disks the copy is written,
flushed and compared with the original by sha256 before the original is removed.
"""

from __future__ import annotations

import errno
import os
import string
from pathlib import Path

from photobatch.catalog.culling import sidecars_for
from photobatch.catalog.hashing import file_sha256
from photobatch.daemon.paths import mask_path_for

# What an archive template may use: the day the photo was taken, its camera, and the subfolder
# of the watch folder it was dropped in ("wedding/day1"; "" for the folder itself).
ARCHIVE_TOKENS = ("date", "year", "month", "day", "camera", "folder")


class NotArchived(Exception):
    """A photo that stays in the inbox, and why (one line)."""


def archive_template_problem(template: str) -> str | None:
    """Why ``template`` cannot be an archive folder template (None: it can)."""
    try:
        used = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"is not a valid template ({exc})"
    unknown = [name for name in used if name not in ARCHIVE_TOKENS]
    if unknown:
        return (f"has an unknown token {{{unknown[0]}}} (known: "
                + " ".join("{" + t + "}" for t in ARCHIVE_TOKENS) + ")")
    return None


def archive_root(template: str) -> Path:
    """The fixed part of an archive template: the folder every archived photo goes under."""
    fixed = []
    for part in Path(os.path.expandvars(template)).expanduser().parts:
        if "{" in part:
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def archive_folder(template: str, summary: dict, photo: Path, watched: Path | None = None) -> Path:
    """Where ``photo`` (its metadata ``summary``; in the watch folder ``watched``) goes:
    ``template`` with its tokens filled in."""
    from photobatch.daemon.naming import camera_token, taken_day

    taken = taken_day(photo, summary)
    year, month, day = taken.split("-") if taken != "undated" else ("undated",) * 3
    camera = camera_token(summary)
    dropped_in = (photo.parent.relative_to(watched).as_posix()
                  if watched is not None and photo.parent.is_relative_to(watched) else "")
    filled = template.format(date=taken, year=year, month=month, day=day, camera=camera,
                             folder="" if dropped_in == "." else dropped_in)
    return Path(os.path.normpath(Path(os.path.expandvars(filled)).expanduser()))


def companions(photo: Path) -> list[Path]:
    """The files that go with ``photo``: its XMP sidecars and its painted mask, those there."""
    found = sidecars_for(photo)
    mask = mask_path_for(photo)
    if mask.is_file():
        found.append(mask)
    return found


def move_into(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` under its own name, never over another file; return the
    new path. Raises NotArchived when the name is taken there, OSError when the move fails
    (the original then stays where it was)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        raise NotArchived(f"{target} exists already")
    try:
        os.link(path, target)  # one disk: a new name for the same bytes, never over another
    except FileExistsError:
        raise NotArchived(f"{target} exists already") from None
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        _copy_checked(path, target)
    path.unlink()
    return target


def _copy_checked(path: Path, target: Path) -> None:
    """Copy ``path`` to ``target`` on another disk: written, flushed, compared, then named."""
    import shutil

    temp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with open(path, "rb") as src, open(temp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        shutil.copystat(path, temp)
        if file_sha256(temp) != file_sha256(path):
            raise OSError(errno.EIO, f"the copy of {path.name} in {target.parent} differs from it")
        os.link(temp, target)  # not over a file that appeared meanwhile
    except FileExistsError:
        raise NotArchived(f"{target} exists already") from None
    finally:
        temp.unlink(missing_ok=True)
