"""Inpainting masks: feathering, A1111's "only masked" crop region, and the exact paste-back."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


def feather(mask: Image.Image, blur: int) -> Image.Image:
    """Gaussian-blur the mask by ``blur`` pixels (A1111 "mask blur"); 0 keeps it as it is."""
    mask = mask.convert("L")
    return mask.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else mask


def model_mask(feathered: Image.Image) -> Image.Image:
    """The binary mask the pipeline gets: everywhere the feathered composite will show any edit.

    Pipelines binarise the mask anyway; giving them the full extent of the feather means the
    model regenerates every pixel that the soft paste-back lets through.
    """
    return feathered.point(lambda v: 255 if v > 0 else 0)


def crop_region(mask: Image.Image, padding: int) -> tuple[int, int, int, int]:
    """The mask's bounding box grown by ``padding`` pixels and clamped to the image (A1111)."""
    box = mask.getbbox()
    if box is None:
        raise ValueError("the mask is empty: nothing to inpaint")
    left, top, right, bottom = box
    width, height = mask.size
    return (max(0, left - padding), max(0, top - padding),
            min(width, right + padding), min(height, bottom + padding))


def paste_back(source: Image.Image, edited: Image.Image, mask: Image.Image,
               box: tuple[int, int, int, int]) -> Image.Image:
    """Composite ``edited`` (the size of ``box``) into ``source`` through ``mask`` (full size).

    Where the mask is 0 the result is the source's pixel, bit for bit; elsewhere a blend by
    the mask's value. Decoding changes every pixel a little, so this is what keeps them exact.
    """
    left, top, right, bottom = box
    src = np.asarray(source.convert("RGB"))
    out = src.copy()
    region = src[top:bottom, left:right].astype(np.float32)
    new = np.asarray(edited.convert("RGB"), dtype=np.float32)
    alpha = np.asarray(mask.convert("L"), dtype=np.float32)[top:bottom, left:right, None] / 255.0
    blended = np.clip(region + (new - region) * alpha + 0.5, 0, 255).astype(np.uint8)
    keep = alpha[..., 0] == 0
    blended[keep] = src[top:bottom, left:right][keep]
    out[top:bottom, left:right] = blended
    return Image.fromarray(out)
