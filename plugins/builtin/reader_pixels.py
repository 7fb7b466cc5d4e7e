"""Turn what a decoder gives (grey, palette, alpha, CMYK, 16-bit) into upright RGB for readers."""

from __future__ import annotations

import numpy as np
from PIL import Image

from photobatch.plugins.colour import profile_colour_space, srgb_profile, to_srgb
from photobatch.plugins.images import ReadError, to_uint8
from photobatch.plugins.transparency import BACKGROUND, has_transparency, opaque_or_alpha

# EXIF orientation -> the numpy operation that shows the stored pixels upright (the same as
# PIL.ImageOps.exif_transpose); arrays are H x W (x C).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def orient_array(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an H x W (x C) array; returns a contiguous array."""
    op = _ORIENT.get(orientation)
    return np.ascontiguousarray(op(pixels)) if op else pixels


def to_rgb(img: Image.Image, icc: bytes | None
           ) -> tuple[Image.Image, bytes | None, np.ndarray | None, int, np.ndarray | None]:
    """8-bit RGB of a decoded picture in any mode, with the profile that describes it.

    Returns (rgb, icc, pixels16, bits, alpha): ``pixels16`` holds the 16-bit RGB values of a
    16-bit source (else None), ``bits`` its bits per channel. Alpha is flattened onto white and
    returned (H x W uint8; None when the picture is opaque) for outputs that keep it; a CMYK or
    grey profile is converted to sRGB (an RGB output cannot carry it); a profile that does not
    match the pixels is dropped.
    """
    if has_transparency(img):
        rgba = img.convert("RGBA")  # also un-premultiplies "RGBa" (TIFF's associated alpha)
        alpha = rgba.getchannel("A")
        flat = Image.new("RGB", rgba.size, (BACKGROUND,) * 3)
        flat.paste(rgba, mask=alpha)
        keep_icc = icc if profile_colour_space(icc) == "RGB" else None
        return flat, keep_icc, None, 8, opaque_or_alpha(np.asarray(alpha))
    return (*_opaque_to_rgb(img, icc), None)


def _opaque_to_rgb(img: Image.Image, icc: bytes | None
                   ) -> tuple[Image.Image, bytes | None, np.ndarray | None, int]:
    mode = img.mode
    space = profile_colour_space(icc)
    if mode.startswith("I;16") or mode == "I":
        grey = np.asarray(img, dtype=np.uint32)
        if mode == "I" and grey.max(initial=0) <= 255:
            grey16 = (grey * 257).astype(np.uint16)  # an 8-bit image Pillow widened
        else:
            grey16 = np.clip(grey, 0, 65535).astype(np.uint16)
        pixels16 = np.repeat(grey16[:, :, None], 3, axis=2)
        return to_uint8(pixels16), None if space != "RGB" else icc, pixels16, 16
    if mode == "CMYK":
        if space == "CMYK":
            return _from_profile(img, icc), srgb_profile(), None, 8
        return img.convert("RGB"), None, None, 8
    if mode in ("L", "1") and space == "GRAY":
        return _from_profile(img.convert("L"), icc), srgb_profile(), None, 8
    if mode != "RGB":
        try:
            img = img.convert("RGB")
        except ValueError as exc:
            raise ReadError(f"colour mode {mode} is not supported ({exc})") from None
    return img, icc if space == "RGB" else None, None, 8


def _from_profile(img: Image.Image, icc: bytes) -> Image.Image:
    try:
        return to_srgb(img, icc)
    except Exception:  # a broken profile: the naive conversion beats no picture
        return img.convert("RGB")
