"""Default locations (XDG on Linux, the platform's own elsewhere) and what counts as a photo."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "photobatch"
PHOTO_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .png .tif .tiff .webp .heic .heif "
    ".dng .cr2 .cr3 .crw .nef .nrw .arw .sr2 .srf .raf .orf .rw2 .rwl .pef .srw .3fr .fff .iiq "
    ".x3f .mrw .kdc .dcr .erf .mef .mos .raw".split()
)
TEMP_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", "~")
# A photo's painted mask (recipes with mask = "sidecar"): beside it, never a photo itself.
MASK_SUFFIX = ".mask.png"


def default_catalog_path() -> Path:
    """PHOTOBATCH_CATALOG, else ``catalog.db`` in the user data dir (~/.local/share/photobatch)."""
    env = os.environ.get("PHOTOBATCH_CATALOG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME)) / "catalog.db"


def default_recipe_dir() -> Path:
    """The user's own recipe folder (~/.config/photobatch/recipes), loaded when it exists."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "recipes"


def default_model_cache() -> Path:
    """Where the stand-in model is saved (the user cache dir)."""
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "standin-model"


def is_candidate(path: Path) -> bool:
    """True for a name that may be a photo: a photo extension, not a dotfile or temp name."""
    name = path.name
    if name.startswith(".") or name.endswith(TEMP_SUFFIXES) or is_mask(path):
        return False
    return path.suffix.lower() in PHOTO_EXTENSIONS


def is_mask(path: Path) -> bool:
    """True for a photo's painted mask (``IMG_0001.mask.png``, any case)."""
    return path.name.lower().endswith(MASK_SUFFIX) and not path.name.startswith(".")


def is_xmp_sidecar(path: Path) -> bool:
    """True for an XMP sidecar's name (``IMG_0001.xmp``, darktable's ``IMG_0001.CR3.xmp``)."""
    return path.name.lower().endswith(".xmp") and not path.name.startswith(".")


def mask_path_for(photo: Path) -> Path:
    """Where a photo's painted mask is: ``IMG_0001.JPG`` -> ``IMG_0001.mask.png`` beside it."""
    return photo.with_name(photo.stem + MASK_SUFFIX)


def mirrored_output(out_dir: Path, root: Path, photo: Path) -> Path:
    """``out_dir`` plus the subfolders ``photo`` sits in under ``root`` (out/shootA/day2 for
    root/shootA/day2/IMG_1.JPG): a shoot dropped as a folder comes out as one, and two cards'
    IMG_0001.JPG keep their names. ``out_dir`` itself for a photo not under ``root``."""
    try:
        inside = photo.parent.resolve().relative_to(root.resolve())
    except ValueError:
        return out_dir
    return out_dir / inside


def expand_inputs(paths: list[Path], exclude: list[Path] = (), pairs: str = "both",
                  left_out: list[tuple[Path, Path]] | None = None,
                  roots: dict[Path, Path] | None = None) -> list[Path]:
    """Files given directly, plus the photos found by walking given folders (sorted, unique).

    ``pairs`` ("raw", "jpeg" or "both"): which half of a RAW+JPEG pair a walk takes; the halves
    left out are added to ``left_out`` with the partner taken instead. A file named directly is
    always taken. ``roots`` gets the folder given for each photo found by a walk."""
    from photobatch.daemon.pairs import drop_left_out

    excluded = [p.resolve() for p in exclude]
    found: dict[Path, None] = {}
    named: set[Path] = set()
    for path in paths:
        path = path.expanduser()
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if any(part.startswith(".") for part in child.relative_to(path).parts):
                    continue
                resolved = child.resolve()
                if any(resolved.is_relative_to(e) for e in excluded):
                    continue
                if child.is_file() and is_candidate(child):
                    found[resolved] = None
                    if roots is not None:
                        roots.setdefault(resolved, path)
        else:
            # A file named explicitly is tried whatever its name: the user asked for it.
            resolved = path.resolve() if path.exists() else path.absolute()
            found[resolved] = None
            named.add(resolved)
    walked = [p for p in found if p not in named]
    _, dropped = drop_left_out(walked, pairs)
    if left_out is not None:
        left_out.extend(dropped)
    dropped_paths = {p for p, _ in dropped}
    return [p for p in found if p not in dropped_paths]
