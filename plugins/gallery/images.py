"""Gallery pictures: grid thumbnails and screen-size previews, each made once and then reused.

A picture's file name is the content hash of what it is made from plus its size, so an
unchanged photo is never decoded again, and a re-run output (new content) gets a new picture.
Everything is converted to sRGB, what browsers assume, and carries no metadata: the location
must not leak through a thumbnail when the page leaves it out.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

THUMB_BOX = (900, 600)  # a justified row is ~280 CSS px high: 2x for sharp high-DPI screens
PREVIEW_BOX = (2048, 2048)
THUMB_QUALITY = 82
PREVIEW_QUALITY = 88
# Bump when the way pictures are made changes, so old ones are not reused.
RECIPE_VERSION = "1"


@dataclass(frozen=True)
class Picture:
    """A picture in the gallery: its path relative to the gallery, and its pixel size."""

    src: str
    width: int
    height: int


class PictureCache:
    """Makes the gallery's pictures under ``root``, skipping those already there."""

    def __init__(self, root: Path, readers: Sequence[Any], watermark: tuple | None = None):
        """``watermark``: (Mark, a key naming it) for a proofing gallery, or None."""
        self.root = Path(root)
        self.readers = readers
        self.watermark = watermark[0] if watermark else None
        # Marked pictures are other pictures: a name of their own, so neither is reused for
        # the other.
        self.variant = RECIPE_VERSION + ("w" + watermark[1] if watermark else "")
        self.made = 0
        self.reused = 0
        self.used: set[str] = set()
        self.missing_originals: list[str] = []  # why an original could not be shown

    def pictures_for(self, output: Path, output_key: str, source: Path, source_key: str,
                     summary: dict | None = None) -> tuple[Picture, Picture, Picture | None]:
        """(thumbnail, after preview, before preview) of an output and its original, same size;
        ``summary``: the photo's metadata, for a watermark's {artist}, {copyright} and {year}
        (ValueError when the photo lacks one the mark takes).

        The before preview is None when the original cannot be read (moved, deleted).
        """
        mark, variant = self._mark_for(summary or {})
        thumb_name = f"thumbs/{output_key[:20]}-{variant}-t.jpg"
        after_name = f"previews/{output_key[:20]}-{variant}-a.jpg"
        # The before picture is made to the after's exact size, so the slider lines them up.
        before_name = f"previews/{source_key[:20]}-{output_key[:8]}-{variant}-b.jpg"
        self.used.update((thumb_name, after_name, before_name))
        decoded = []  # the output, decoded at most once, and only if a picture is missing

        def output_image():
            if not decoded:
                decoded.append(self._decode(output))
            return decoded[0]

        thumb = self._reuse(thumb_name) or self._save(
            _fit(output_image(), THUMB_BOX), thumb_name, THUMB_QUALITY, mark)
        after = self._reuse(after_name) or self._save(
            _fit(output_image(), PREVIEW_BOX), after_name, PREVIEW_QUALITY, mark)
        before = self._reuse(before_name)
        if before is None:
            from PIL import Image

            from photobatch.plugins.exporting import NoReader

            try:
                original = self._decode(source)
            except NoReader as exc:
                # Originals archived elsewhere: the output is still worth showing, alone.
                self.missing_originals.append(str(exc))
                return thumb, after, None
            before = self._save(original.resize((after.width, after.height),
                                                Image.Resampling.LANCZOS),
                                before_name, PREVIEW_QUALITY, mark)
        return thumb, after, before

    def prune(self) -> int:
        """Delete pictures of earlier exports that this one does not show; return how many."""
        removed = 0
        for folder in ("thumbs", "previews"):
            for path in (self.root / folder).glob("*.jpg"):
                if f"{folder}/{path.name}" not in self.used:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def _decode(self, path: Path):
        from photobatch.plugins.colour import convert_to_space
        from photobatch.plugins.exporting import decode_photo

        image, icc = decode_photo(path, self.readers, preview=_halving_is_enough(path),
                                  checkerboard=True)
        image, _ = convert_to_space(image, icc, "srgb")
        return image

    def _mark_for(self, summary: dict):
        """(the Mark for a photo with metadata ``summary``, the variant its pictures are named
        with): a text that takes the photo's {artist} or {year} is that photo's own."""
        from photobatch.plugins.watermark import photo_mark

        mark = photo_mark(self.watermark, summary)
        if mark is self.watermark:
            return mark, self.variant
        own = hashlib.sha256(mark.text.encode("utf-8")).hexdigest()[:6]
        return mark, f"{self.variant}{own}"

    def _save(self, image, name: str, quality: int, mark=None) -> Picture:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if mark is not None:
            from photobatch.plugins.watermark import draw_watermark

            image = draw_watermark(image, mark)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        image.save(temp, "JPEG", quality=quality, optimize=True, progressive=True,
                   subsampling=0 if quality >= 85 else 2)
        os.replace(temp, path)
        self.made += 1
        return Picture(name, image.width, image.height)

    def _reuse(self, name: str) -> Picture | None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.root / name) as img:  # reads the header only
                picture = Picture(name, img.width, img.height)
        except (FileNotFoundError, UnidentifiedImageError):
            return None
        self.reused += 1
        return picture


def _fit(image, box: tuple[int, int]):
    """``image`` scaled down (never up) to fit ``box``, with a high-quality filter."""
    from PIL import Image

    scale = min(box[0] / image.width, box[1] / image.height, 1.0)
    if scale >= 1.0:
        return image.copy()
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap: a fast box pre-shrink, then Lanczos for the last factor (as good, far quicker).
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _halving_is_enough(path: Path) -> bool:
    """True when a half-size decode still covers a preview (before and after must be as sharp).

    The size comes from the file's header; a file Pillow cannot open (a camera RAW) is taken to
    be large, as every RAW camera of the last fifteen years is.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            long_side = max(img.size)
    except (OSError, UnidentifiedImageError, ValueError):
        return True
    return long_side // 2 >= max(PREVIEW_BOX)
