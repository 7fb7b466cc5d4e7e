"""Built-in plugin: read HEIC/HEIF (iPhones, recent cameras) with pillow-heif (libheif).

libheif applies the file's rotation and mirror boxes itself, which is where HEIF keeps the
orientation (its EXIF Orientation is informational), so the pixels arrive upright. 10- and
12-bit pictures keep their precision in ``pixels16``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from photobatch.plugins import hookimpl
from photobatch.plugins.builtin.reader_pixels import to_rgb
from photobatch.plugins.images import (
    DecodedImage,
    ReadError,
    check_megapixels,
    max_megapixels,
    sniff,
    to_uint8,
)
from photobatch.plugins.transparency import flatten16


class HeifReader:
    """Decode HEIC/HEIF with pillow-heif, upright, with its ICC profile."""

    name = "heif"

    def __init__(self, max_megapixels: float | None = None):
        self.max_megapixels = max_megapixels

    def accept(self, head: bytes, path: Path) -> bool:
        """True for an ISO-BMFF file whose brands say HEIF (heic, heix, mif1...)."""
        return sniff(head, path) == "heif"

    def read(self, path: Path, *, half_size: bool = False) -> DecodedImage:
        """Decode the primary picture; ``half_size`` is accepted and ignored (no cheap path).

        Raises ReadError with a short reason when libheif cannot decode it.
        """
        import pillow_heif

        try:
            heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=False)
            check_megapixels(heif.size[0], heif.size[1],
                             self.max_megapixels or max_megapixels())
            bits = int(heif.info.get("bit_depth") or 8)
            icc = heif.info.get("icc_profile") or None
            orientation = _exif_orientation(heif.info.get("exif"))
            if bits > 8 and heif.mode.startswith("RGB"):
                pixels16, alpha = _pixels16(heif, bits)
                image = to_uint8(pixels16)
            else:
                image, icc, pixels16, bits, alpha = to_rgb(heif.to_pillow(), icc)
        except ReadError:
            raise
        except (ValueError, RuntimeError, OSError) as exc:
            raise ReadError(f"cannot be decoded ({exc})") from None
        return DecodedImage(image, "heif", icc, orientation, pixels16=pixels16, bits=bits,
                            alpha=alpha)


def _pixels16(heif, bits: int) -> tuple[np.ndarray, np.ndarray | None]:
    # pillow-heif hands >8-bit pictures over as 16-bit words holding the values scaled up to
    # 16 bits; alpha, when there is some, is flattened onto white and handed back.
    channels = 4 if heif.has_alpha else 3
    width, height = heif.size
    stride = heif.stride // 2
    words = np.frombuffer(heif.data, dtype=np.uint16).reshape(height, stride)
    pixels = words[:, : width * channels].reshape(height, width, channels)
    if channels == 4:
        return flatten16(pixels)
    return np.ascontiguousarray(pixels), None


def _exif_orientation(exif: bytes | None) -> int:
    """The Orientation the file's EXIF records (for the catalog); 1 when absent or unreadable."""
    if not exif:
        return 1
    try:
        parsed = Image.Exif()
        parsed.load(exif if exif.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + exif)
        value = int(parsed.get(0x0112, 1) or 1)
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


@hookimpl
def photobatch_readers():
    """The HEIC/HEIF reader."""
    return [HeifReader()]

