"""The pixels of one exported file: the output decoded whole, converted, fitted, sharpened and
marked, at 8 or 16 bits, with its transparency where the format keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Rendered:
    """What a writer is given for one file."""

    pixels: Any  # PIL RGB (8 bits) or an H x W x 3 uint16 array (16 bits)
    icc: bytes | None
    bits: int
    alpha: np.ndarray | None = None  # H x W at ``bits``, straight colours; None: opaque

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.pixels.shape[1::-1] if isinstance(self.pixels, np.ndarray) else self.pixels.size


def export_bits(settings, writer, decoded) -> int:
    """Bits per channel of the file: ``settings.bit_depth`` when given, else 16 where the
    writer writes them and the output has them; 16 bits stay in the output's own colour space
    (LittleCMS converts 8-bit pictures here). ValueError for 16 bits asked in another space."""
    depths = tuple(getattr(writer, "bit_depths", (8,)))
    wanted = settings.bit_depth or (16 if 16 in depths else 8)
    if wanted == 8 or decoded.pixels16 is None:
        return 8  # an 8-bit output gains nothing from 16
    if not same_space(settings.color_space, decoded.icc_profile):
        if settings.bit_depth == 16:
            raise ValueError("16 bits are kept in the output's own colour space only: add "
                             "--color-space source")
        return 8
    return 16


def same_space(space: str, icc: bytes | None) -> bool:
    """Whether pixels with profile ``icc`` are in ``space`` already (untagged reads as sRGB)."""
    from photobatch.plugins.colour import profile_for

    return space == "source" or (icc is None and space == "srgb") or icc == profile_for(space)


def render(decoded, settings, mark, writer) -> Rendered:
    """The file's pixels from ``decoded`` (the output's DecodedImage) under ``settings``, with
    ``mark`` (a watermark.Mark or None) drawn."""
    from photobatch.plugins.colour import convert_to_space, profile_for
    from photobatch.plugins.files_export.sizing import fitted_size
    from photobatch.plugins.images import resize_pixels
    from photobatch.plugins.sharpening import sharpen_output
    from photobatch.plugins.transparency import alpha_at_depth, fit_alpha, straight_colours
    from photobatch.plugins.watermark import draw_watermark

    bits = export_bits(settings, writer, decoded)
    if bits == 16:
        pixels, icc = decoded.pixels16, decoded.icc_profile
        if icc is None and settings.color_space == "srgb":
            icc = profile_for("srgb")
    else:
        pixels, icc = convert_to_space(decoded.image.convert("RGB"), decoded.icc_profile,
                                       settings.color_space)
    width, height = decoded.photo_size  # the output's own size, also after a half decode
    size = fitted_size(width, height, long_edge=settings.long_edge,
                       short_edge=settings.short_edge, megapixels=settings.megapixels)
    # Resized flattened onto white (a mix with white is linear, as premultiplied colours are),
    # then given their straight colours back at the new size.
    pixels = resize_pixels(pixels, size)
    alpha = None
    if decoded.alpha is not None and getattr(writer, "keeps_alpha", False):
        alpha = fit_alpha(decoded.alpha, size)
        pixels = straight_colours(pixels, pixels, alpha)
    pixels = sharpen_output(pixels, settings.sharpen, settings.sharpen_amount)
    if mark is not None:
        if alpha is not None:
            pixels, alpha = draw_watermark(pixels, mark, icc=icc, alpha=alpha)
        else:
            pixels = draw_watermark(pixels, mark, icc=icc)
    return Rendered(pixels, icc, bits, None if alpha is None else alpha_at_depth(alpha, bits))
