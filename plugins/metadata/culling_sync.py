"""Bring an output's rating, label and keywords up to date with the photographer's culling,
and its copyright with the config's preset (Lightroom's "Save Metadata to File" for the files
photobatch made): the pixels and everything else in the file stay as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from photobatch.plugins.metadata.exiv2 import LOCK, MetadataError, one_line, open_file, read_group
from photobatch.plugins.metadata.writing import atomic_write

# The XMP properties that carry the culling, and how an output shows each.
CULLING_KEYS = ("Xmp.xmp.Rating", "Xmp.xmp.Label", "Xmp.dc.subject")


def sync_culling(output: Path, wanted: dict[str, Any]) -> bool:
    """Set the culling properties of ``output`` to ``wanted`` (one of CULLING_KEYS -> value;
    a key left out is removed). Returns False when the file already says that (it is then not
    touched), True when it was rewritten. MetadataError names the file and the reason."""
    def edit(image) -> bool:
        xmp = image.read_xmp()
        now = {key: xmp[key] for key in CULLING_KEYS if key in xmp}
        if _same(now, wanted):
            return False
        gone = [key for key in now if key not in wanted]
        if gone:
            image.modify_xmp(dict.fromkeys(gone))
        if wanted:
            image.modify_xmp(dict(wanted))
        return True

    return _rewrite(Path(output), edit)


def sync_rights(output: Path, values: dict[str, str], own: dict[str, Any], replace: bool) -> bool:
    """Write the copyright preset ``values`` (Rights.values) into ``output`` where its original,
    whose metadata is ``own`` (its groups merged), has no value of its own (everywhere with
    ``replace``): a changed preset brought to outputs made before. A value the preset no longer
    sets is left as it is. Returns whether the file was rewritten; MetadataError names it."""
    from photobatch.plugins.metadata.rights import rights_changes, same_text, set_rights

    def edit(image) -> bool:
        iptc = read_group(image, "iptc")
        now = {**read_group(image, "exif"), **iptc, **read_group(image, "xmp")}
        changes = rights_changes(values, own, iptc, replace)
        if all(same_text(now.get(key), value) for group in changes for key, value in group.items()):
            return False
        set_rights(image, changes)
        return True

    return _rewrite(Path(output), edit)


def _rewrite(output: Path, edit: Callable[[Any], bool]) -> bool:
    """Apply ``edit`` (True when it changed something) to ``output``'s metadata, and write the
    file back atomically only then; return whether it was."""
    image = open_file(output)
    try:
        with LOCK:
            if not edit(image):
                return False
            data = image.get_bytes()
    except RuntimeError as exc:
        raise MetadataError(f"cannot write metadata to {output.name}: {one_line(exc)}") from exc
    finally:
        image.close()
    try:
        atomic_write(output, data)
    except OSError as exc:
        raise MetadataError(f"cannot write {output.name}: {exc.strerror or exc}") from exc
    return True


def _same(now: dict[str, Any], wanted: dict[str, Any]) -> bool:
    def plain(values):
        return {k: list(v) if isinstance(v, (list, tuple)) else str(v) for k, v in values.items()}

    return plain(now) == plain(wanted)
