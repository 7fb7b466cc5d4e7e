"""Built-in plugin: write PNG outputs, 8 bits with Pillow, 16 bits with pypng.

Pillow writes 16 bits per channel only for greyscale, so 16-bit RGB goes through pypng
(rows handed over already packed, so zlib does the work, not Python).
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from photobatch.plugins import hookimpl
from photobatch.plugins.images import to_uint8, to_uint16


class PngWriter:
    """RGB or RGBA PNG, lossless, with the ICC profile in an iCCP chunk."""

    name = "png"
    extension = ".png"
    bit_depths = (8, 16)
    keeps_alpha = True

    def write(self, image: Image.Image | np.ndarray, path: Path, *, quality: int = 95,
              icc_profile: bytes | None = None, bit_depth: int = 8,
              progressive: bool = False, alpha: np.ndarray | None = None, ppi: int = 0) -> None:
        """Encode ``image`` (RGB) to ``path`` at ``bit_depth`` (8 or 16), with ``alpha`` (H x W
        at that depth) as its fourth channel and ``ppi`` in a pHYs chunk when given;
        ``quality`` is unused."""
        if bit_depth == 8:
            options = {"icc_profile": icc_profile} if icc_profile else {}
            if ppi:
                options["dpi"] = (ppi, ppi)
            picture = to_uint8(image)
            if alpha is not None:
                picture = picture.copy()
                picture.putalpha(Image.fromarray(np.asarray(alpha, dtype=np.uint8), "L"))
            picture.save(path, format="PNG", compress_level=6, **options)
        elif bit_depth == 16:
            pixels = to_uint16(image)
            if alpha is not None:
                pixels = np.dstack([pixels, np.asarray(alpha, dtype=np.uint16)])
            Path(path).write_bytes(_png16(pixels, icc_profile, ppi))
        else:
            raise ValueError(f"PNG bit depth must be 8 or 16, got {bit_depth}")


def _png16(pixels: np.ndarray, icc_profile: bytes | None, ppi: int = 0) -> bytes:
    import png

    height, width, planes = pixels.shape
    buf = io.BytesIO()
    # pHYs counts pixels per metre.
    density = dict(x_pixels_per_unit=round(ppi / 0.0254), y_pixels_per_unit=round(ppi / 0.0254),
                   unit_is_meter=True) if ppi else {}
    writer = png.Writer(width, height, greyscale=False, alpha=planes == 4, bitdepth=16,
                        compression=6, **density)
    # PNG stores 16-bit samples big-endian.
    writer.write_packed(buf, (row.astype(">u2").tobytes() for row in pixels.reshape(height, -1)))
    if not icc_profile:
        return buf.getvalue()
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    iccp = b"ICC Profile\x00\x00" + zlib.compress(icc_profile)  # name, method 0, data
    chunks.insert(1, (b"iCCP", iccp))  # right after IHDR, before IDAT as the spec asks
    out = io.BytesIO()
    png.write_chunks(out, chunks)
    return out.getvalue()


@hookimpl
def photobatch_writers():
    """The PNG writer."""
    return [PngWriter()]
