"""Built-in plugin: write JPEG outputs with Pillow (quality, 4:4:4 at high quality, the ICC)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from photobatch.plugins import hookimpl


class JpegWriter:
    """Baseline JPEG; chroma is not subsampled at quality 90 and above, as photographers expect."""

    name = "jpeg"
    extension = ".jpg"

    def write(self, image: Image.Image, path: Path, *, quality: int = 95,
              icc_profile: bytes | None = None) -> None:
        """Encode ``image`` to ``path`` (the caller renames it into place)."""
        options = {
            "quality": quality,
            "subsampling": 0 if quality >= 90 else 2,
            "optimize": True,
        }
        if icc_profile:
            options["icc_profile"] = icc_profile
        image.convert("RGB").save(path, format="JPEG", **options)


@hookimpl
def photobatch_writers():
    """The JPEG writer."""
    return [JpegWriter()]
