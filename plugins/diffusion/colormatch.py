"""A1111's colour correction: match the output's colours to the source, keep its luminosity."""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image


def match_colors(image: Image.Image, reference: Image.Image) -> Image.Image:
    """Histogram-match ``image`` to ``reference`` per channel in LAB, keeping ``image``'s lightness.

    This is A1111's "apply colour correction to img2img results": it pulls a drifted colour
    balance back to the source's while keeping what the model did to light and shade. Known to
    posterise near-flat images (a histogram match stretches a narrow range).
    """
    from skimage import color, exposure

    lab = color.rgb2lab(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    ref = color.rgb2lab(np.asarray(reference.convert("RGB"), dtype=np.float32) / 255.0)
    matched = exposure.match_histograms(lab, ref, channel_axis=-1)
    matched[..., 0] = lab[..., 0]
    with warnings.catch_warnings():
        # Matched colours outside sRGB are clipped into it, which is what is wanted; skimage
        # says so with a warning a photographer would read as an error.
        warnings.filterwarnings("ignore", message="Conversion from CIE-LAB", category=UserWarning)
        rgb = color.lab2rgb(matched)
    return Image.fromarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8))
