"""Output file names: the recipe's template and subfolder with their tokens, and collisions.

Tokens: ``{stem}`` the source's name without extension, ``{ext}`` its extension, ``{recipe}``
the recipe (``time-of-day:night`` becomes ``time-of-day-night``), ``{date}`` the capture date
(YYYY-MM-DD, else the file's modification date), ``{camera}`` the camera model, ``{seq}`` the
photo's catalog number (0042: stable, so a re-run finds the same name), ``{seed}`` the run's
seed. Each of several takes (``rerun --seed new --takes N``) keeps its own file: a template
without ``{seed}`` gets ``_{seed}`` added for them.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from photobatch.recipes.schema import Recipe

_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


@dataclass(frozen=True)
class Take:
    """The seed of one of several takes of a photo (``rerun --seed new --takes N``, A1111's batch
    count): its output is a file of its own beside the others, not written over them."""

    seed: int


class OutputExists(Exception):
    """The output name is taken by a file that is not this photo's, and the recipe says skip."""


def safe_part(text: str) -> str:
    """``text`` as one file or folder name: characters no file system takes become "-", and
    the ends lose dots, dashes and spaces ("" when nothing is left)."""
    return _UNSAFE.sub("-", text).strip(" .-")


def _safe(text: str) -> str:
    return safe_part(text) or "unknown"


def taken_day(source: Path, summary: dict | None) -> str:
    """The day ``source`` was taken ("2026-06-21"; its file's date when its metadata has none;
    "undated" when neither can be read)."""
    taken = ((summary or {}).get("date_taken") or "")[:10]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", taken):
        try:
            taken = datetime.fromtimestamp(source.stat().st_mtime).strftime("%Y-%m-%d")
        except OSError:
            taken = "undated"
    return taken


def camera_token(summary: dict | None) -> str:
    """The camera's model (else make) as a safe file or folder name."""
    summary = summary or {}
    return _safe(str(summary.get("model") or summary.get("make") or "unknown-camera"))


def name_tokens(recipe: Recipe, source: Path, summary: dict | None, file_id: int | None,
                seed: int | None = None) -> dict:
    """The values of every naming token for ``source`` (and the run's ``seed``)."""
    return {
        "stem": source.stem,
        "ext": source.suffix[1:],
        "recipe": recipe.name.replace(":", "-"),
        "date": taken_day(source, summary),
        "camera": camera_token(summary),
        "seq": f"{file_id or 0:04d}",
        "seed": str(seed if seed is not None else 0),
    }


def output_name(recipe: Recipe, source: Path, extension: str, tokens: dict | None = None,
                take: bool = False) -> str:
    """The output's file name (no folder) from the recipe's template; a ``take``'s has its
    seed in it."""
    tokens = tokens or name_tokens(recipe, source, None, None)
    template = recipe.output.name
    if take and "{seed}" not in template + recipe.output.subfolder:
        template += "_{seed}"
    return _safe(template.format(**tokens)) + extension


def output_folder(recipe: Recipe, out_dir: Path, tokens: dict) -> Path:
    """``out_dir`` plus the recipe's subfolder template, if any."""
    if not recipe.output.subfolder:
        return out_dir
    parts = [_safe(part.format(**tokens)) for part in recipe.output.subfolder.split("/") if part]
    return out_dir.joinpath(*parts)


# Names claimed by outputs still being written in this process. Photos are written in
# threads on a GPU: two of them named alike (IMG_0001.JPG of two cards, a RAW and its JPEG)
# would both find the name free, write the same temporary file and lose one output.
_IN_FLIGHT: set[Path] = set()
_IN_FLIGHT_CHANGED = threading.Condition()


@contextmanager
def claimed_output_path(folder: Path, name: str, recipe: Recipe, is_ours):
    """claim_output_path, with the name held for this process until the block ends (the output
    is then in place, or given up): a name being written counts as another file's."""
    with _IN_FLIGHT_CHANGED:
        while True:
            path = claim_output_path(folder, name, recipe, is_ours, taken=_IN_FLIGHT)
            if path not in _IN_FLIGHT:
                break
            _IN_FLIGHT_CHANGED.wait()  # collision = overwrite: after the other one's write
        _IN_FLIGHT.add(path)
    try:
        yield path
    finally:
        with _IN_FLIGHT_CHANGED:
            _IN_FLIGHT.discard(path)
            _IN_FLIGHT_CHANGED.notify_all()


def claim_output_path(folder: Path, name: str, recipe: Recipe, is_ours,
                      taken: set[Path] | frozenset[Path] = frozenset()) -> Path:
    """Where to write: this photo's own earlier output is replaced; another file's name is
    handled by the recipe's collision policy (suffix -1, -2...; overwrite; skip). A name in
    ``taken`` is another file's, whether or not it exists yet."""
    def others(path: Path) -> bool:
        return path in taken or (path.exists() and not is_ours(path))

    candidate = folder / name
    if not others(candidate):
        return candidate
    policy = recipe.output.collision
    if policy == "overwrite":
        return candidate
    if policy == "skip":
        raise OutputExists(f"{candidate} exists and is not this photo's output (collision = skip)")
    stem, suffix = candidate.stem, candidate.suffix
    n = 1
    while others(candidate):
        candidate = folder / f"{stem}-{n}{suffix}"
        n += 1
    return candidate
