"""Reference photos (style-match's look, FLUX.1 Redux's image prompt), read as photos are.

A photographer picks a reference from their own work: a camera JPEG whose EXIF says to turn
it upright, an Adobe RGB export, a RAW. It is decoded by the same readers as the photos (RAW,
HEIC, 16-bit TIFF; the EXIF orientation applied) and converted to sRGB, what the models and the
colour transfer read the photos in; Pillow alone would give it sideways, or in the wrong
colours, or not at all.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

from PIL import Image

# Decoded references kept per reader (a shoot reads the same one for every photo); a few are
# plenty, as a recipe names one or a handful.
_KEPT = 8


def builtin_readers() -> list:
    """The built-in readers (Pillow formats, camera RAW, HEIC/HEIF), in the host's order."""
    from photobatch.plugins.builtin import heif_reader, pillow_reader, raw_reader

    return [r for module in (pillow_reader, raw_reader, heif_reader) for r in module.photobatch_readers()]


def read_reference(path: str | Path, readers: Sequence | None = None) -> Image.Image:
    """The reference photo at ``path`` upright and in sRGB, decoded by ``readers`` (None: the
    built-in ones); a camera RAW at half size (references are used at a megapixel or less, and
    a half-size RAW has several). Raises ValueError naming the file and the reason when it
    cannot be used."""
    from photobatch.plugins.colour import is_srgb, to_srgb
    from photobatch.plugins.exporting import NoReader, decode_photo
    from photobatch.plugins.images import sniff

    if not str(path):
        raise ValueError("ip_adapter needs a reference photo (ip_adapter.reference = \"PATH\")")
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = sniff(fh.read(64), path) == "raw"
    except OSError:
        raw = False  # decode_photo says why
    try:
        image, icc = decode_photo(path, builtin_readers() if readers is None else readers, preview=raw)
    except NoReader as exc:
        name, reason = Path(path).name, str(exc)
        for said in (f"{name}: ", f"cannot read {name}: "):  # the file is named once, here
            reason = reason.removeprefix(said)
        raise ValueError(f"ip_adapter reference {path} cannot be read: {reason}") from None
    return image if is_srgb(icc) else to_srgb(image, icc)


class ReferenceReader:
    """``read_reference`` with the app's readers, keeping what it decoded: a reference is read
    once for a shoot, and again only when its file changes."""

    def __init__(self, readers: Sequence | None = None):
        self.readers = readers
        self._kept: dict[tuple, Image.Image] = {}
        self._lock = threading.Lock()

    def __call__(self, path: str | Path) -> Image.Image:
        """The reference photo at ``path`` (see ``read_reference``); a copy the caller may change."""
        try:
            stat = Path(path).stat()
            key = (str(path), stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = None  # read_reference says why
        with self._lock:
            kept = self._kept.get(key) if key else None
        if kept is None:
            kept = read_reference(path, self.readers)
            if key:
                with self._lock:
                    if len(self._kept) >= _KEPT:
                        self._kept.pop(next(iter(self._kept)))
                    self._kept[key] = kept
        return kept.copy()


__all__ = ["ReferenceReader", "builtin_readers", "read_reference"]
