"""Example drop-in plugin: a WebP writer, so a recipe can say ``format = "webp"``.

Copy this file into your plugins folder (``photobatch --plugins-dir DIR`` or the config's
``[plugins] dir``), then set ``[output] format = "webp"`` in a recipe. photobatch writes the
EXIF, XMP record and ICC profile into the file after the writer has encoded its pixels.
"""

from photobatch.plugins import hookimpl

__version__ = "1.0"


class WebpWriter:
    """Lossy WebP at the recipe's quality, with the ICC profile the output is in."""

    name = "webp"
    extension = ".webp"

    def write(self, image, path, *, quality=95, icc_profile=None, **options):
        """Encode ``image`` (8-bit RGB) to ``path``."""
        image.save(path, format="WEBP", quality=quality, icc_profile=icc_profile)


@hookimpl
def photobatch_writers():
    """The WebP writer."""
    return [WebpWriter()]
