"""RAW+JPEG pairs: a camera set to RAW+JPEG writes each exposure twice (``IMG_0001.NEF`` and
``IMG_0001.JPG``). Like Lightroom and Capture One, photobatch takes one photo per exposure: by
default the RAW (more latitude, no in-camera look baked in); ``"jpeg"`` takes the camera's
JPEG instead, ``"both"`` takes every file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

PAIR_CHOICES = ("raw", "jpeg", "both")
DEFAULT_PAIRS = "raw"
# What a camera writes beside its RAW: a JPEG, or a HEIF on recent Canon, Sony and Fujifilm.
RENDERED_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".heic", ".heif"})


@cache
def _raw_suffixes() -> frozenset[str]:
    # The readers' list; imported here, not at the top, so the config stays light to import.
    from photobatch.plugins.images import RAW_EXTENSIONS

    return RAW_EXTENSIONS


def is_raw_name(path: Path) -> bool:
    """True for a camera RAW's file name (DNG included)."""
    return path.suffix.lower() in _raw_suffixes()


def is_rendered_name(path: Path) -> bool:
    """True for the name of what a camera writes beside its RAW (JPEG or HEIF)."""
    return path.suffix.lower() in RENDERED_SUFFIXES


def _other_half(path: Path) -> tuple[str, frozenset[str]] | None:
    if is_raw_name(path):
        return "jpeg", RENDERED_SUFFIXES
    if is_rendered_name(path):
        return "raw", _raw_suffixes()
    return None


def folder_names(folder: Path) -> set[str]:
    """The names in ``folder`` (none when it cannot be listed)."""
    try:
        return {p.name for p in folder.iterdir()}
    except OSError:
        return set()


def pair_partner(path: Path, names: set[str] | None = None) -> Path | None:
    """The other half of ``path``'s RAW+JPEG pair beside it (same name stem, same folder), or
    None. ``names``: the folder's file names when the caller has listed it already."""
    other = _other_half(path)
    if other is None:
        return None
    if names is None:
        names = folder_names(path.parent)
    for name in sorted(names):
        candidate = Path(name)
        if (candidate.stem == path.stem and candidate.suffix.lower() in other[1]
                and not name.startswith(".")):
            return path.with_name(name)
    return None


def left_out_for(path: Path, choice: str, names: set[str] | None = None) -> Path | None:
    """The partner taken instead of ``path`` when ``choice`` leaves ``path`` out of its pair
    ("raw" leaves out the JPEG, "jpeg" the RAW), else None (``path`` is taken)."""
    return pair_partner(path, names) if may_be_left_out(path, choice) else None


def why_left_out(path: Path, partner: Path, both: str = 'pairs = "both"') -> str:
    """The one line that says why ``path`` is not run; ``both`` names the setting that would
    take it too."""
    half = "RAW" if is_raw_name(path) else "JPEG"
    return f"{path.name}: the {half} of a RAW+JPEG pair; {partner.name} is the photo ({both} takes both)"


def may_be_left_out(path: Path, choice: str) -> bool:
    """True when ``path`` is the half of a pair that ``choice`` would leave out, should its
    partner be (or come) beside it."""
    other = _other_half(path)
    return choice != "both" and other is not None and other[0] == choice


def drop_left_out(paths: list[Path], choice: str) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """``paths`` without the halves of pairs that ``choice`` leaves out, and those halves with
    the partner taken instead. Each folder is listed once."""
    if choice == "both":
        return list(paths), []
    listings: dict[Path, set[str]] = {}
    kept, dropped = [], []
    for path in paths:
        if path.parent not in listings:
            listings[path.parent] = folder_names(path.parent)
        partner = left_out_for(path, choice, listings[path.parent])
        if partner is None:
            kept.append(path)
        else:
            dropped.append((path, partner))
    return kept, dropped


def choice_for(config, path: Path) -> str:
    """Which half of a pair runs for ``path``: its watch folder's ``pairs``, else the config's
    default (``config`` None: the built-in default)."""
    if config is None:
        return DEFAULT_PAIRS
    folder = next((f for f in config.watch if path.is_relative_to(f.path)), None)
    return folder.pairs if folder is not None else config.pairs
