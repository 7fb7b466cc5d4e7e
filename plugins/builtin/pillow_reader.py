"""Built-in plugin: read JPEG, PNG, TIFF (8 and 16 bit), WebP and AVIF with Pillow, upright."""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from photobatch.plugins import hookimpl
from photobatch.plugins.builtin.reader_pixels import orient_array, to_rgb
from photobatch.plugins.images import (
    DecodedImage,
    ReadError,
    check_megapixels,
    max_megapixels,
    sniff,
    to_uint8,
)
from photobatch.plugins.transparency import flatten16

_FORMATS = ("jpeg", "png", "tiff", "webp", "avif")
_PIXEL_LIMIT_LOCK = threading.Lock()


@contextmanager
def _own_pixel_limit():
    # Pillow refuses images over 2 x MAX_IMAGE_PIXELS (~179 MP) while parsing the header, before
    # our own (configurable, 200 MP by default) limit gets a say; lift its limit for the open.
    with _PIXEL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


class PillowReader:
    """Decode common raster formats with Pillow, applying the EXIF orientation."""

    name = "pillow"

    def __init__(self, max_megapixels: float | None = None):
        self.max_megapixels = max_megapixels

    def accept(self, head: bytes, path: Path) -> bool:
        """True when the magic bytes name a format Pillow reads for us (not a TIFF-based RAW)."""
        return sniff(head, path) in _FORMATS

    def read(self, path: Path, *, half_size: bool = False) -> DecodedImage:
        """Decode the file upright; ``half_size`` lets JPEG decode at half scale (for a preview).

        Raises ReadError with a short reason when the file cannot be decoded.
        """
        limit = self.max_megapixels or max_megapixels()
        try:
            with warnings.catch_warnings():
                # Our megapixel limit replaces Pillow's bomb warning, and the metadata summary
                # reports corrupt EXIF; Pillow's warnings about either would only be noise.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                warnings.simplefilter("ignore", UserWarning)
                with _own_pixel_limit():
                    img = Image.open(path)
                with img:
                    check_megapixels(img.width, img.height, limit)
                    full_size = img.size
                    # Before _orientation: Pillow loads a PNG without eXIf to look for one
                    # after its pixels, and a loaded image no longer says how it was stored.
                    png_sixteen = _png_is_16_bit_rgb(img)
                    fmt = (img.format or "unknown").lower()
                    orientation = _orientation(img)
                    icc = img.info.get("icc_profile") or None
                    if half_size and fmt in ("jpeg", "mpo"):
                        # libjpeg decodes straight to 1/2 scale: the cheap preview path.
                        img.draft("RGB", (img.width // 2, img.height // 2))
                    planes16 = _tiff16(path, img) if fmt == "tiff" else \
                        _png16(path) if png_sixteen else None
                    if planes16 is not None:
                        pixels16, alpha = (orient_array(a, orientation) if a is not None else None
                                           for a in planes16)
                        rgb, bits = to_uint8(pixels16), 16
                    else:
                        img.load()
                        rgb, icc, pixels16, bits, alpha = to_rgb(_upright(img, orientation), icc)
        except ReadError:
            raise
        except UnidentifiedImageError:
            raise ReadError("not an image Pillow can read") from None
        except Image.DecompressionBombError as exc:
            raise ReadError(f"refused as a decompression bomb ({exc})") from None
        except (OSError, ValueError, SyntaxError) as exc:
            # SyntaxError is how Pillow's PNG and TIFF plugins report corrupt structures.
            if "truncated" in str(exc).lower():
                raise ReadError("cannot be decoded: the file is truncated (cut short; was it "
                                "still being copied?)") from None
            raise ReadError(f"cannot be decoded ({exc})") from None
        if orientation in (5, 6, 7, 8):
            full_size = full_size[::-1]
        return DecodedImage(rgb, "jpeg" if fmt == "mpo" else fmt, icc, orientation,
                            pixels16=pixels16, bits=bits, alpha=alpha,
                            full_size=full_size if rgb.size != full_size else None)


def _orientation(img: Image.Image) -> int:
    # A corrupt EXIF block must not cost the picture: it is then shown as stored.
    try:
        value = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def _upright(img: Image.Image, orientation: int) -> Image.Image:
    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)
    # Not ImageOps.exif_transpose: it re-parses the EXIF, which may be the corrupt part.
    return img.transpose(method) if method is not None else img


def _tiff16(path: Path, img: Image.Image) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The 16-bit RGB pixels and alpha (None: opaque) of a 16-bit TIFF (Pillow reads those at
    8 bits), else None. Transparency is flattened onto white, as in 8-bit pictures."""
    bits = img.tag_v2.get(258) if hasattr(img, "tag_v2") else None
    if not bits or max(bits if isinstance(bits, tuple) else (bits,)) != 16:
        return None
    if img.tag_v2.get(262) != 2:  # 16-bit greyscale goes through Pillow's "I;16" path
        return None
    import tifffile

    try:
        pixels = tifffile.imread(path, key=0)
    except Exception:  # a compression tifffile cannot decode without imagecodecs: 8 bits do
        return None
    if pixels.dtype != np.uint16 or pixels.ndim != 3 or pixels.shape[2] < 3:
        return None
    # ExtraSamples: 1 is associated (premultiplied) alpha, 2 unassociated; 0 is not alpha.
    extra = img.tag_v2.get(338)
    kind = (extra if isinstance(extra, tuple) else (extra,))[0] if extra else 0
    if pixels.shape[2] >= 4 and kind in (1, 2):
        return flatten16(pixels[:, :, :4], premultiplied=kind == 1)
    return np.ascontiguousarray(pixels[:, :, :3]), None


def _png_is_16_bit_rgb(img: Image.Image) -> bool:
    """True for a PNG stored as 16-bit RGB or RGBA (Pillow decodes those at 8 bits)."""
    if img.format != "PNG" or not img.tile:
        return False
    return getattr(img.tile[0], "args", None) in ("RGB;16B", "RGBA;16B")


def _png16(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The 16-bit RGB pixels and alpha (None: opaque) of a 16-bit RGB(A) PNG. Transparency is
    flattened onto white, as in 8-bit pictures."""
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    pixels = pixels.reshape(height, width, planes)
    if planes == 4:  # asDirect() turns a tRNS colour key into an alpha plane too
        return flatten16(pixels)
    return np.ascontiguousarray(pixels[:, :, :3]), None


@hookimpl
def photobatch_readers():
    """The Pillow reader."""
    return [PillowReader()]

