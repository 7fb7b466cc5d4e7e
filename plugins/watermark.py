"""A copyright watermark: text in the lower right corner, as Lightroom's simple watermark puts it.

Drawn with the font Pillow carries (no font file to find on the user's machine), white at
partial opacity over a soft dark shadow, so it reads on skies and shadows alike. Its size
follows the picture: the same mark on a thumbnail, a full-screen preview and a full-size
output. Gallery proofs and recipe outputs (``[output] watermark``) share it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from photobatch.recipes.schema import watermark_tokens

# Text height as a share of the picture's shorter side, and the margin to the corner.
_HEIGHT = 0.045
_MARGIN = 0.03
_OPACITY = 170  # of 255
# The text never covers more than this share of the picture's width.
_MAX_WIDTH = 0.6


def watermark_text(template: str, summary: dict) -> str:
    """``template`` with the photo's ``{artist}``, ``{copyright}`` (its EXIF) and ``{year}``
    (of capture) filled in from its metadata ``summary``; ValueError when the photo lacks one
    it uses (a proof must not go out unmarked)."""
    exif = summary.get("exif") or {}
    values = {"artist": exif.get("Exif.Image.Artist"), "copyright": exif.get("Exif.Image.Copyright"),
              "year": (summary.get("date_taken") or "")[:4]}
    missing = [name for name in watermark_tokens(template) if not str(values[name] or "").strip()]
    if missing:
        raise ValueError(f"the watermark takes {{{missing[0]}}} from the photo, whose metadata "
                         "has none")
    return template.format(**{name: str(value or "").strip() for name, value in values.items()})


def draw_watermark(image, text: str):
    """A copy of ``image`` (PIL RGB, or an H x W x 3 uint16 array) with ``text`` in its lower
    right corner."""
    if isinstance(image, Image.Image):
        shadow, light = _masks(image.size, text)
        marked = image.convert("RGB")
        marked.paste((0, 0, 0), mask=shadow)
        marked.paste((255, 255, 255), mask=light)
        return marked
    height, width = image.shape[:2]
    shadow, light = (np.asarray(m, dtype=np.float32)[..., None] / 255 for m in _masks((width, height), text))
    # What paste does with a mask, at 16 bits: towards black under the shadow, then white.
    marked = image.astype(np.float32) * (1 - shadow)
    marked = marked * (1 - light) + 65535 * light
    return np.clip(np.rint(marked), 0, 65535).astype(np.uint16)


def _masks(size: tuple[int, int], text: str) -> tuple[Image.Image, Image.Image]:
    """(shadow, light): the mark's L masks for a picture of ``size``."""
    width, height = size
    short = min(width, height)
    font_size = max(8, round(short * _HEIGHT))
    font = ImageFont.load_default(size=font_size)
    left, top, right, bottom = font.getbbox(text)
    if right - left > width * _MAX_WIDTH:  # a long text shrinks to fit
        font_size = max(6, int(font_size * width * _MAX_WIDTH / (right - left)))
        font = ImageFont.load_default(size=font_size)
        left, top, right, bottom = font.getbbox(text)
    margin = max(2, round(short * _MARGIN))
    x = width - margin - (right - left) - left
    y = height - margin - (bottom - top) - top
    shadow = Image.new("L", size, 0)
    ImageDraw.Draw(shadow).text((x, y), text, font=font, fill=120)
    shadow = shadow.filter(ImageFilter.GaussianBlur(max(1, font_size / 12)))
    light = Image.new("L", size, 0)
    ImageDraw.Draw(light).text((x, y), text, font=font, fill=_OPACITY)
    return shadow, light
