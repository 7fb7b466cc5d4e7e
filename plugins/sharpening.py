"""Output sharpening, as Lightroom's export offers it: for screen, matte or glossy paper.

A resized or printed photo looks softer than the file it came from; exporters sharpen last,
after resizing, by an amount that depends on where it will be seen. Adobe does not publish
Lightroom's (PixelGenius) settings: these are unsharp masks of the radius and strength such
guides give, in pixels of the output. Print sharpening depends on the print's resolution:
the paper radii suit about 300 ppi, and a recipe's ``output.ppi`` scales them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from photobatch.recipes.schema import SHARPEN_AMOUNTS

# For what -> (radius in pixels, percent for each of SHARPEN_AMOUNTS: low, standard, high).
SHARPENING = {
    "screen": (0.5, (40, 70, 100)),
    "glossy": (0.8, (60, 100, 140)),
    "matte": (1.0, (80, 130, 180)),
}
# The print resolution the paper radii above suit; another output.ppi scales them.
PRINT_PPI = 300
# Differences below this many 8-bit levels are left alone: smooth skies stay smooth.
THRESHOLD = 2


def sharpen_output(image: Image.Image | np.ndarray, for_what: str, amount: str = "standard",
                   ppi: int = 0):
    """``image`` (PIL RGB, or an H x W x 3 uint16 array) sharpened for ``for_what`` ("screen",
    "matte", "glossy"; "none" returns it as it is) by ``amount`` ("low", "standard", "high").
    For paper, a ``ppi`` the output is printed at (output.ppi) scales the radius from the 300
    it suits: the same detail on paper spans more pixels at 600 ppi than at 150."""
    if for_what == "none":
        return image
    radius, percents = SHARPENING[for_what]
    if ppi and for_what != "screen":
        radius *= min(max(ppi / PRINT_PPI, 0.5), 3.0)
    percent = percents[SHARPEN_AMOUNTS.index(amount)]
    if isinstance(image, Image.Image):
        return image.filter(ImageFilter.UnsharpMask(radius=radius, percent=percent,
                                                    threshold=THRESHOLD))
    return _unsharp16(image, radius, percent)


def _unsharp16(pixels: np.ndarray, radius: float, percent: int) -> np.ndarray:
    # Pillow's unsharp mask works on 8-bit pictures only; this is the same mask at 16 bits,
    # in float32 and in place (24 MP in about a second).
    from scipy.ndimage import gaussian_filter

    values = pixels.astype(np.float32)
    detail = values - gaussian_filter(values, sigma=(radius, radius, 0), mode="nearest")
    detail[np.abs(detail) <= THRESHOLD * 257] = 0.0
    detail *= percent / 100.0
    values += detail
    np.rint(values, out=values)
    np.clip(values, 0, 65535, out=values)
    return values.astype(np.uint16)
