"""A watermark: the photographer's copyright line or logo, placed as Lightroom's watermark is.

Text is drawn with the font Pillow carries (no font file to find on the user's machine), white
over a soft dark shadow, so it reads on skies and shadows alike. A graphic is the
photographer's own logo file (a PNG with transparency), its colours converted into the
picture's colour space. Either sits at one of nine anchors, inset from the edges, at a size
that follows the picture: the same mark on a thumbnail, a full-screen preview and a full-size
output. Gallery proofs and recipe outputs (``[output] watermark``...) share it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from photobatch.recipes.schema import WATERMARK_POSITIONS, watermark_tokens

# Sizes follow the picture's shorter side, so that a shoot's portrait and landscape frames
# carry the same mark (Lightroom's follow the width: smaller on portrait frames).
# Automatic sizes: text this high, never wider than _MAX_TEXT_WIDTH of the picture's width; a
# graphic this wide.
_TEXT_HEIGHT = 0.045
_MAX_TEXT_WIDTH = 0.6
_LOGO_WIDTH = 0.22
# Neither mark covers more than this share of the picture's height, whatever its size says.
_MAX_HEIGHT = 0.5
# The text's shadow, as dark as the text is light times this.
_SHADOW = 0.7


@dataclass(frozen=True, eq=False)
class Mark:
    """What to draw and where: ``text`` or ``logo`` (RGBA, sRGB), at ``position`` (one of
    WATERMARK_POSITIONS), ``size`` (its width) percent of the picture's shorter side (0:
    automatic), ``opacity``
    percent, ``inset`` percent of the picture's shorter side from the edges."""

    text: str = ""
    logo: Image.Image | None = None
    # The sha256 of the logo file as it was read (what a run records it drew).
    logo_sha256: str | None = None
    position: str = "bottom-right"
    size: float = 0.0
    opacity: int = 67
    inset: float = 3.0

    def __post_init__(self):
        if bool(self.text) == (self.logo is not None):
            raise ValueError("a watermark is text or a graphic: give one of them")
        if self.position not in WATERMARK_POSITIONS:
            raise ValueError(f"unknown watermark position {self.position!r}")


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


def read_logo(path, shown=None) -> Image.Image:
    """The graphic at ``path`` (a path or a file object, ``shown`` as its name) as RGBA in sRGB
    (its own ICC profile applied); ValueError naming the file and the reason when it cannot be
    used."""
    from PIL import UnidentifiedImageError

    from photobatch.plugins.colour import is_srgb, to_srgb

    shown = shown or path
    try:
        with Image.open(path) as img:
            img.load()
            icc = img.info.get("icc_profile")
            logo = img.convert("RGBA")
    except FileNotFoundError:
        raise ValueError(f"the watermark image {shown} is not there") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"the watermark image {shown} cannot be read "
                         f"({getattr(exc, 'strerror', None) or exc})") from None
    if icc and not is_srgb(icc):
        try:
            rgb = to_srgb(logo.convert("RGB"), icc)
        except Exception:  # a broken profile: its numbers are taken as sRGB, as browsers do
            return logo
        rgb.putalpha(logo.getchannel("A"))
        return rgb
    return logo


def export_mark(text: str | None, image, position: str = "bottom-right") -> tuple[Mark, str] | None:
    """(Mark, a short key naming it) for an export's ``--watermark`` TEXT or
    ``--watermark-image`` FILE at ``position``, or None for neither; ValueError when both are
    given or the graphic cannot be used. The key changes with the text, the graphic's bytes
    and the place (the default place keeps the key earlier exports had)."""
    import hashlib

    text = (text or "").strip()
    if text and image:
        raise ValueError("--watermark and --watermark-image: a watermark is text or a graphic "
                         "(choose one)")
    if not (text or image):
        return None
    if text:
        try:
            watermark_tokens(text)  # filled in for each photo; a token it lacks is said now
        except ValueError as exc:
            raise ValueError(f"--watermark {text!r}: {exc}") from None
        mark, identity = Mark(text=text, position=position), text.encode("utf-8")
    else:
        logo, sha = logo_at(image)
        mark, identity = Mark(logo=logo, logo_sha256=sha, position=position), sha.encode()
    if position != "bottom-right":
        identity += position.encode()
    return mark, hashlib.sha256(identity).hexdigest()[:8]


def photo_mark(mark: Mark | None, summary: dict) -> Mark | None:
    """``mark`` for the photo with metadata ``summary``: its text's {artist}, {copyright} and
    {year} filled in (a graphic, or a text without tokens, is ``mark`` itself); ValueError when
    the photo lacks one it takes."""
    from dataclasses import replace

    if mark is None or not mark.text or "{" not in mark.text:
        return mark
    return replace(mark, text=watermark_text(mark.text, summary))


def recipe_mark(output, summary: dict) -> Mark:
    """The Mark a recipe's ``output`` settings (OutputSettings with a watermark or
    watermark_image) put on a photo with metadata ``summary``; ValueError when the photo lacks
    metadata its text takes, or the graphic cannot be read."""
    style = dict(position=output.watermark_position, size=output.watermark_size,
                 opacity=output.watermark_opacity, inset=output.watermark_inset)
    if output.watermark:
        return Mark(text=watermark_text(output.watermark, summary), **style)
    logo, sha = logo_at(output.watermark_image)
    return Mark(logo=logo, logo_sha256=sha, **style)


def logo_at(path) -> tuple[Image.Image, str]:
    """``read_logo`` and the file's sha256, kept: a shoot marks every photo with the same
    graphic, read once (and again when its file changes)."""
    try:
        stat = os.stat(path)
    except OSError:
        read_logo(path)  # which says why
        raise
    return _kept_logo(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _kept_logo(path: str, mtime_ns: int, size: int) -> tuple[Image.Image, str]:
    import hashlib
    import io

    try:
        data = Path(path).read_bytes()
    except OSError:
        read_logo(path)  # which says why
        raise
    return read_logo(io.BytesIO(data), shown=path), hashlib.sha256(data).hexdigest()


def draw_watermark(image, mark: "Mark | str", icc: bytes | None = None, alpha=None):
    """A copy of ``image`` (PIL RGB, or an H x W x 3 uint16 array) with ``mark`` (a Mark, or
    text for the lower right corner) drawn on it; ``icc`` is the picture's colour profile (None:
    sRGB), which a graphic's colours are converted into.

    ``alpha``: the picture's transparency (H x W, uint8 or uint16, at its size; its colours
    straight, not premultiplied). Given, the mark is laid over it as a layer is ("over"): it
    shows on transparent parts too, and (picture, alpha) is returned."""
    if isinstance(mark, str):
        mark = Mark(text=mark)
    is_pil = isinstance(image, Image.Image)
    if is_pil and image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size if is_pil else image.shape[1::-1]
    layers, (left, top) = (_text_layers(mark, width, height) if mark.text
                           else _logo_layers(mark, width, height, icc))
    full = 255.0 if is_pil else 65535.0
    opaque = None if alpha is None else float(np.iinfo(alpha.dtype).max)
    alpha = None if alpha is None else np.array(alpha)  # a copy, changed below
    # The layers share one box; only its part inside the picture (a big inset on a small
    # picture may push it over an edge) is read and written, not the whole 24 MP.
    h, w = layers[0][1].shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, height), min(left + w, width)
    if y1 <= y0 or x1 <= x0:
        return image.copy() if alpha is None else (image.copy(), alpha)
    region = (np.asarray(image.crop((x0, y0, x1, y1))) if is_pil
              else image[y0:y1, x0:x1]).astype(np.float32)
    for colour, cover in layers:
        a = cover[y0 - top:y1 - top, x0 - left:x1 - left, None]
        c = colour if np.ndim(colour) == 1 else colour[y0 - top:y1 - top, x0 - left:x1 - left]
        c = np.asarray(c, dtype=np.float32) * full
        if alpha is None:
            region = region * (1.0 - a) + c * a
        else:
            below = alpha[y0:y1, x0:x1, None].astype(np.float32) / opaque
            out = a + below * (1.0 - a)
            # Straight colours: the mark's, and what shows of the picture under it, by coverage.
            region = np.where(out > 0, (c * a + region * below * (1.0 - a)) / np.maximum(out, 1e-6),
                              region)
            alpha[y0:y1, x0:x1] = np.clip(np.rint(out[..., 0] * opaque), 0, opaque).astype(alpha.dtype)
        region = np.clip(np.rint(region), 0, full)  # each layer lands on whole levels, as drawn
    if is_pil:
        marked = image.copy()
        marked.paste(Image.fromarray(region.astype(np.uint8), "RGB"), (x0, y0))
    else:
        marked = image.copy()
        marked[y0:y1, x0:x1] = region.astype(marked.dtype)
    return marked if alpha is None else (marked, alpha)


def _anchor(mark: Mark, box: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """Where a ``box`` (w, h) mark's top-left corner goes in a ``width`` x ``height`` picture."""
    inset = round(min(width, height) * mark.inset / 100)
    position = mark.position
    vertical = "top" if position.startswith("top") else "bottom" if position.startswith("bottom") else ""
    horizontal = "left" if position.endswith("left") else "right" if position.endswith("right") else ""
    x = {"left": inset, "right": width - inset - box[0]}.get(horizontal, (width - box[0]) // 2)
    y = {"top": inset, "bottom": height - inset - box[1]}.get(vertical, (height - box[1]) // 2)
    return x, y


def _text_layers(mark: Mark, width: int, height: int):
    """The text's shadow and light layers ((colour, H x W alpha)) and their top-left corner."""
    def font_of(size):
        font = ImageFont.load_default(size=size)
        return font, font.getbbox(mark.text)

    short = min(width, height)
    if mark.size:
        # Sized so that the text spans size percent of the shorter side.
        font, (left, top, right, bottom) = font_of(100)
        font_size = max(6, int(short * mark.size / max(1, right - left)))
    else:
        font_size = max(8, round(short * _TEXT_HEIGHT))
        font, (left, top, right, bottom) = font_of(font_size)
        if right - left > width * _MAX_TEXT_WIDTH:  # a long text shrinks to fit
            font_size = max(6, int(font_size * width * _MAX_TEXT_WIDTH / (right - left)))
    font, (left, top, right, bottom) = font_of(font_size)
    fit = min(height * _MAX_HEIGHT / (bottom - top), width / (right - left))
    if fit < 1:  # never taller than half the picture, nor wider than it
        font_size = max(6, int(font_size * fit))
        font, (left, top, right, bottom) = font_of(font_size)
    blur = max(1.0, font_size / 12)
    pad = int(np.ceil(blur * 3))  # room for the shadow's blur around the letters
    box = (right - left + 2 * pad, bottom - top + 2 * pad)
    light = Image.new("L", box, 0)
    ImageDraw.Draw(light).text((pad - left, pad - top), mark.text, font=font, fill=255)
    shadow = light.filter(ImageFilter.GaussianBlur(blur))
    strength = mark.opacity / 100
    x, y = _anchor(mark, (box[0] - 2 * pad, box[1] - 2 * pad), width, height)
    as_alpha = lambda m, k: np.asarray(m, dtype=np.float32) / 255 * k  # noqa: E731
    return ([((0.0, 0.0, 0.0), as_alpha(shadow, strength * _SHADOW)),
             ((1.0, 1.0, 1.0), as_alpha(light, strength))], (x - pad, y - pad))


def _logo_layers(mark: Mark, width: int, height: int, icc: bytes | None):
    """The graphic as one layer ((H x W x 3 colour, H x W alpha)) and its top-left corner."""
    from photobatch.plugins.colour import from_srgb, is_srgb, profile_colour_space

    logo = mark.logo
    scale = min(width, height) * (mark.size / 100 if mark.size else _LOGO_WIDTH) / logo.width
    scale = min(scale, height * _MAX_HEIGHT / logo.height, width / logo.width)
    size = (max(1, round(logo.width * scale)), max(1, round(logo.height * scale)))
    if size != logo.size:
        logo = logo.resize(size, Image.Resampling.LANCZOS)  # premultiplied: no dark fringes
    rgb = logo.convert("RGB")
    if icc and profile_colour_space(icc) == "RGB" and not is_srgb(icc):
        rgb = from_srgb(rgb, icc)  # an Adobe RGB picture: the logo's colours, not brighter ones
    alpha = np.asarray(logo.getchannel("A"), dtype=np.float32) / 255 * (mark.opacity / 100)
    return [(np.asarray(rgb, dtype=np.float32) / 255, alpha)], _anchor(mark, size, width, height)
