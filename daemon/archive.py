"""Archiving a watch folder's originals once they are done, as Lightroom's Auto Import moves
them out of the watched folder into a destination by date: the folder stays an inbox, empty and
ready for the next card.

A photo is archived when every recipe of its folder has finished with it (done, or skipped
for a reason such as "no face"); one that failed stays in the inbox, where it is seen, and one
a rating rule has not taken yet waits there too. It goes with what belongs to it: its XMP
sidecars, its painted mask, and the other half of a RAW+JPEG pair once that half is done too.
The catalog follows each file to its new path.

Nothing is ever overwritten. Another photo of that name already in the archive (a second
camera's IMG_0001.JPG, a counter that went round) makes this one IMG_0001-1.JPG there, its
companions renamed to match, as Photo Mechanic's ingest does; the very same photo archived
already (a card copied twice) leaves this copy in the inbox, with a warning. A move within one
disk is a rename; across disks the copy is written, flushed and compared with the original by
sha256 before the original is removed.
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
from pathlib import Path

from photobatch.catalog.culling import sidecars_for
from photobatch.catalog.hashing import file_sha256
from photobatch.daemon.pairs import left_out_for, pair_partner
from photobatch.daemon.paths import mask_path_for
from photobatch.recipes.templates import template_problem

log = logging.getLogger(__name__)

# What an archive template may use: the day the photo was taken, its camera, and the subfolder
# of the watch folder it was dropped in ("wedding/day1"; "" for the folder itself).
ARCHIVE_TOKENS = ("date", "year", "month", "day", "camera", "folder")


class NotArchived(Exception):
    """A photo that stays in the inbox, and why (one line); ``same``: the archived file with
    its very bytes, when that is why."""

    def __init__(self, message: str, same: Path | None = None):
        super().__init__(message)
        self.same = same


def archive_template_problem(template: str) -> str | None:
    """Why ``template`` cannot be an archive folder template (None: it can)."""
    return template_problem(template, ARCHIVE_TOKENS)


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


def archive_when_done(catalog, folder, photo: Path, watched: list[Path],
                      warned: set[Path]) -> list[Path]:
    """Move ``photo`` of the watch ``folder`` (with its companions and the other half of its
    RAW+JPEG pair) to the folder's archive if every recipe is done with them, and record the
    new paths in ``catalog``; return the paths that moved (none: it stays, said in the log,
    once per photo in ``warned`` for a name taken in the archive)."""
    group = [(photo, _current_row(catalog, photo))]
    partner = pair_partner(photo)
    if partner is not None:
        group.append((partner, _current_row(catalog, partner)))
    if any(row is None for _, row in group) or not photo.exists():
        return []  # not catalogued (yet): being copied, or just dropped
    if not all(_finished_with(catalog, row["id"], folder, path) for path, row in group):
        return []
    target = archive_folder(folder.archive, json.loads(group[0][1].get("exif") or "{}"), photo,
                            folder.path)
    if any(target.resolve().is_relative_to(w.resolve()) for w in watched):
        log.warning("%s stays in %s: its archive folder %s is inside a watched folder",
                    photo.name, photo.parent, target)
        return []
    moving = [path for path, _ in group]
    moving += [c for path in moving for c in companions(path) if c not in moving]
    try:
        names = archive_names(moving, photo.stem, target)
    except NotArchived as exc:
        if exc.same is not None:
            # The archived copy is the original: the catalog follows it, so this copy can go.
            catalog.moved(group[0][1]["id"], exc.same)
        if photo not in warned:  # said once, not at every scan
            warned.add(photo)
            log.warning("%s stays in %s: %s", photo.name, photo.parent, exc)
        return []
    moved = []
    ids = {path: row["id"] for path, row in group}
    for path in moving:
        try:
            new = move_into(path, target, names[path])
        except (NotArchived, OSError) as exc:
            log.warning("%s stays in %s: %s", path.name, path.parent,
                        getattr(exc, "strerror", None) or exc)
            break
        if path in ids:
            catalog.moved(ids[path], new)
        moved.append(path)
    else:
        renamed = names[photo] != photo.name
        log.info("archived %s -> %s%s", ", ".join(p.name for p in moving), target,
                 f" as {names[photo]} ({photo.name} there is another photo)" if renamed else "")
    return moved


def archive_names(moving: list[Path], stem: str, target: Path) -> dict[Path, str]:
    """The name each of ``moving`` (a photo's files, all named ``stem``...) takes in ``target``:
    its own, or all ``stem-N``... when files of that name are there (another photo's, or a
    sidecar that the photo would take for its own). Raises NotArchived when the same photo is
    archived there already (nothing to keep twice)."""
    if not _name_taken(target, stem):
        return {p: p.name for p in moving}
    for p in moving:
        same = _same_photo_in(target, p, stem) if p.suffix.lower() != ".xmp" else None
        if same is not None:
            raise NotArchived(f"the same photo is archived already as {same}, which the catalog "
                              "keeps (this copy can be deleted)", same=same)
    if not all(p.name.startswith(stem) for p in moving):
        raise NotArchived(f"a file named {stem} exists already in {target}")
    for n in range(1, 10000):
        if not _name_taken(target, f"{stem}-{n}"):
            return {p: f"{stem}-{n}{p.name[len(stem):]}" for p in moving}
    raise NotArchived(f"{stem} and 9999 numbered names of it exist already in {target}")


def _same_photo_in(folder: Path, photo: Path, stem: str) -> Path | None:
    """The file in ``folder`` with ``photo``'s bytes under its name or a numbered one
    (``stem-N``), if any."""
    size = photo.stat().st_size
    for there in sorted(folder.glob(glob.escape(stem) + "*" + glob.escape(photo.suffix))):
        name = there.name[len(stem):-len(photo.suffix) or None]
        if ((name == "" or (name[:1] == "-" and name[1:].isdigit())) and there.is_file()
                and there.stat().st_size == size and file_sha256(there) == file_sha256(photo)):
            return there
    return None


def _name_taken(folder: Path, stem: str) -> bool:
    """Whether ``folder`` holds a file named ``stem``.anything (a photo, its sidecar, its mask)."""
    return folder.is_dir() and any(folder.glob(glob.escape(stem) + ".*"))


def _current_row(catalog, path: Path) -> dict | None:
    return next(iter(catalog.db["files"].rows_where(
        "path = ? AND replaced_by IS NULL", [str(path)], limit=1)), None)


def _finished_with(catalog, file_id: int, folder, path: Path) -> bool:
    """Whether every recipe of ``folder`` has a final, successful last run on ``file_id``
    (a half of a RAW+JPEG pair that its ``pairs`` leaves out has none, and counts as done)."""
    last = dict(catalog.db.execute(
        "SELECT recipe, status FROM runs WHERE id IN (SELECT MAX(id) FROM runs WHERE "
        "file_id = ? AND seed_source IS NOT 'take' GROUP BY recipe)", [file_id]).fetchall())
    if not last and left_out_for(path, folder.pairs) is not None:
        return True
    return all(last.get(recipe) in ("done", "skipped") for recipe in folder.recipes)


def companions(photo: Path) -> list[Path]:
    """The files that go with ``photo``: its XMP sidecars and its painted mask, those there."""
    found = sidecars_for(photo)
    mask = mask_path_for(photo)
    if mask.is_file():
        found.append(mask)
    return found


def move_into(path: Path, folder: Path, name: str | None = None) -> Path:
    """Move ``path`` into ``folder`` under its own name (or ``name``), never over another file;
    return the new path. Raises NotArchived when the name is taken there, OSError when the move
    fails (the original then stays where it was)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or path.name)
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


# Files an OS leaves in a folder it showed (Finder, Explorer): a folder holding only these is
# empty to a photographer.
OS_LEFTOVERS = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def remove_emptied_folder(folder: Path, inbox: Path, idle_seconds: float) -> bool | None:
    """Remove ``folder`` (a subfolder of the watch folder ``inbox`` that archiving emptied) and
    its parents up to ``inbox``, each only while empty (but for OS leftovers) and untouched for
    ``idle_seconds``: a copy still going on in it adds a file every few seconds. Return True
    when it went (or was gone), False when it holds something, None when it is too fresh to say."""
    import time

    if not folder.is_relative_to(inbox) or folder == inbox:
        return False
    while folder != inbox:
        try:
            names = os.listdir(folder)
            idle = time.time() - folder.stat().st_mtime
        except FileNotFoundError:
            folder = folder.parent
            continue
        except OSError:
            return False
        if any(name not in OS_LEFTOVERS for name in names):
            return False
        if idle < idle_seconds:
            return None
        try:
            for name in names:
                (folder / name).unlink()
            folder.rmdir()  # fails on a file that came meanwhile: the folder stays
        except OSError:
            return False
        log.info("removed the emptied folder %s", folder)
        folder = folder.parent
    return True
