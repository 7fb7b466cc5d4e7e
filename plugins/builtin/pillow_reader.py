"""Built-in plugin: read JPEG, PNG, TIFF and WebP with Pillow, upright and fully decoded."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from photobatch.plugins import hookimpl
from photobatch.plugins.images import DecodedImage, ReadError

DEFAULT_MAX_MEGAPIXELS = 200

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


def sniff(head: bytes) -> str | None:
    """Name the format from the first bytes of a file, or None."""
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


class PillowReader:
    """Decode common raster formats with Pillow, applying the EXIF orientation."""

    name = "pillow"

    def __init__(self, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS):
        self.max_megapixels = max_megapixels

    def accept(self, head: bytes, path: Path) -> bool:
        """True when the magic bytes name a format Pillow reads for us."""
        return sniff(head) is not None

    def read(self, path: Path) -> DecodedImage:
        """Decode the whole file; raise ReadError with a short reason when it cannot be."""
        try:
            with Image.open(path) as img:
                megapixels = img.width * img.height / 1e6
                if megapixels > self.max_megapixels:
                    raise ReadError(
                        f"{img.width}x{img.height} is {megapixels:.0f} MP, over the "
                        f"{self.max_megapixels:g} MP limit"
                    )
                fmt = (img.format or "unknown").lower()
                orientation = int(img.getexif().get(0x0112, 1) or 1)
                icc = img.info.get("icc_profile")
                # Our own megapixel limit replaces Pillow's bomb warning for big photos.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    img.load()
                upright = ImageOps.exif_transpose(img)
                rgb = upright.convert("RGB") if upright.mode != "RGB" else upright.copy()
        except ReadError:
            raise
        except UnidentifiedImageError:
            raise ReadError("not an image Pillow can read") from None
        except Image.DecompressionBombError as exc:
            raise ReadError(f"refused as a decompression bomb ({exc})") from None
        except OSError as exc:
            raise ReadError(f"cannot be decoded ({exc})") from None
        return DecodedImage(rgb, "jpeg" if fmt == "mpo" else fmt, icc, orientation)


@hookimpl
def photobatch_readers():
    """The Pillow reader."""
    return [PillowReader()]
