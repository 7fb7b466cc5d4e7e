"""Built-in plugin: write JPEG outputs with Pillow (quality, 4:4:4 at high quality, the ICC)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from photobatch.plugins import hookimpl
from photobatch.plugins.images import to_uint8


class JpegWriter:
    """JPEG; chroma is not subsampled at quality 90 and above, as photographers expect."""

    name = "jpeg"
    extension = ".jpg"
    bit_depths = (8,)

    def write(self, image: Image.Image | np.ndarray, path: Path, *, quality: int = 95,
              icc_profile: bytes | None = None, bit_depth: int = 8,
              progressive: bool = False, ppi: int = 0) -> None:
        """Encode ``image`` (RGB, 8 or 16 bits) to ``path``, ``ppi`` in its JFIF header when
        given; the caller renames it into place."""
        if bit_depth != 8:
            raise ValueError(f"JPEG holds 8 bits per channel, not {bit_depth}")
        options = {
            "quality": quality,
            "subsampling": 0 if quality >= 90 else 2,
            "optimize": True,
            "progressive": bool(progressive),
        }
        if icc_profile:
            options["icc_profile"] = icc_profile
        if ppi:
            options["dpi"] = (ppi, ppi)
        to_uint8(image).save(path, format="JPEG", **options)


@hookimpl
def photobatch_writers():
    """The JPEG writer."""
    return [JpegWriter()]
