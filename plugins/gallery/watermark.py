"""A proofing watermark: text in the lower right corner, as Lightroom's simple watermark puts it.

Drawn with the font Pillow carries (no font file to find on the user's machine), white at
partial opacity over a soft dark shadow, so it reads on skies and shadows alike. Its size
follows the picture: the same mark on a thumbnail and a full-screen preview.
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Text height as a share of the picture's shorter side, and the margin to the corner.
_HEIGHT = 0.045
_MARGIN = 0.03
_OPACITY = 170  # of 255
# The text never covers more than this share of the picture's width.
_MAX_WIDTH = 0.6


def draw_watermark(image: Image.Image, text: str) -> Image.Image:
    """A copy of ``image`` (RGB) with ``text`` in its lower right corner."""
    width, height = image.size
    short = min(width, height)
    size = max(8, round(short * _HEIGHT))
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    if right - left > width * _MAX_WIDTH:  # a long text shrinks to fit
        size = max(6, int(size * width * _MAX_WIDTH / (right - left)))
        font = ImageFont.load_default(size=size)
        left, top, right, bottom = font.getbbox(text)
    margin = max(2, round(short * _MARGIN))
    x = width - margin - (right - left) - left
    y = height - margin - (bottom - top) - top
    shadow = Image.new("L", image.size, 0)
    ImageDraw.Draw(shadow).text((x, y), text, font=font, fill=120)
    shadow = shadow.filter(ImageFilter.GaussianBlur(max(1, size / 12)))
    marked = image.convert("RGB")
    marked.paste((0, 0, 0), mask=shadow)
    light = Image.new("L", image.size, 0)
    ImageDraw.Draw(light).text((x, y), text, font=font, fill=_OPACITY)
    marked.paste((255, 255, 255), mask=light)
    return marked
