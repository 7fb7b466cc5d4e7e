"""Transparency: flatten it onto white for the model, and give it back to outputs that keep it.

Diffusion models see RGB, so readers composite a transparent photo (a product cut-out, a
layered export) onto white, as Lightroom and A1111 do. An output format that has an alpha
channel (PNG, TIFF) gets the source's alpha back, and its edge pixels lose the white they were
mixed with, so a cut-out keeps clean edges on any backdrop.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from photobatch.plugins.images import to_uint16

# What transparent areas become: photographers' tools flatten onto white.
BACKGROUND = 255
# Pillow modes with an alpha channel ("RGBa", "La": premultiplied).
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def has_transparency(img: Image.Image) -> bool:
    """True when ``img`` (opened, not necessarily decoded) has an alpha channel or a
    transparent colour (a PNG's tRNS, a GIF-style palette entry)."""
    return img.mode in ALPHA_MODES or (img.mode in ("P", "L", "RGB") and "transparency" in img.info)


def _opaque(dtype) -> int:
    """The value of an opaque (or white) sample of ``dtype``: 65535 for uint16, else 255."""
    return 65535 if dtype == np.uint16 else 255


def opaque_or_alpha(alpha: np.ndarray) -> np.ndarray | None:
    """``alpha`` (H x W uint8 or uint16), or None when every pixel is opaque (nothing to keep)."""
    full = _opaque(alpha.dtype)
    return None if alpha.min(initial=full) >= full else np.ascontiguousarray(alpha)


def flatten16(pixels: np.ndarray, premultiplied: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Split H x W x 4 uint16 RGBA into (RGB flattened onto white, alpha or None if opaque).

    ``premultiplied``: the colour is already multiplied by alpha (TIFF's associated alpha).
    """
    rgb = pixels[:, :, :3].astype(np.float32)
    alpha = pixels[:, :, 3]
    a = alpha.astype(np.float32)[:, :, None] / 65535.0
    if not premultiplied:
        rgb = rgb * a
    flat = rgb + 65535.0 * (1.0 - a)
    return np.clip(np.rint(flat), 0, 65535).astype(np.uint16), opaque_or_alpha(alpha)


def fit_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``alpha`` resampled to ``size`` (width, height); as it is when it already has that size."""
    height, width = alpha.shape
    if (width, height) == tuple(size):
        return alpha
    mode = np.int32 if alpha.dtype == np.uint16 else np.uint8
    resized = np.asarray(Image.fromarray(alpha.astype(mode)).resize(size, Image.Resampling.LANCZOS))
    return np.clip(resized, 0, _opaque(alpha.dtype)).astype(alpha.dtype)


def straight_colours(result: Image.Image | np.ndarray, flat_source: Image.Image | np.ndarray,
                     alpha: np.ndarray) -> Image.Image | np.ndarray:
    """The colours an alpha-keeping output stores for ``result``, an edit of ``flat_source``
    (the source flattened onto white); all three the same size and ``result`` and
    ``flat_source`` the same bit depth.

    Each partly transparent pixel gets back the source's own colour minus the white it was
    mixed with, plus the edit the model made there: ``result + (1 - a) * (source - white)``.
    Dividing the result by alpha instead (Photoshop's "Remove White Matte") would amplify
    whatever the model did to the white around a cut-out into dark or coloured fringes.
    """
    is_pil = isinstance(result, Image.Image)
    pixels = np.array(result.convert("RGB") if is_pil else result)  # a copy, changed below
    top = float(_opaque(pixels.dtype))
    full = _opaque(alpha.dtype)
    # Only partly transparent pixels change (opaque ones are the result, clear ones are never
    # seen), and they are few: edges of a cut-out, not its area.
    edge = (alpha > 0) & (alpha < full)
    if edge.any():
        flat = np.asarray(flat_source.convert("RGB") if isinstance(flat_source, Image.Image)
                          else flat_source)[edge].astype(np.float32)
        a = (alpha[edge].astype(np.float32) / full)[:, None]
        # flat - white = a * (source - white): the straight colour's distance from white.
        below_white = np.clip((flat - top) / a, -top, 0.0)
        out = pixels[edge].astype(np.float32) + (1.0 - a) * below_white
        pixels[edge] = np.clip(np.rint(out), 0, top).astype(pixels.dtype)
    return Image.fromarray(pixels, "RGB") if is_pil else pixels


def alpha_at_depth(alpha: np.ndarray, bits: int) -> np.ndarray:
    """``alpha`` as uint8 (``bits`` 8) or uint16 (``bits`` 16) for a writer."""
    if bits == 16:
        return alpha if alpha.dtype == np.uint16 else alpha.astype(np.uint16) * 257
    return alpha if alpha.dtype == np.uint8 else (alpha >> 8).astype(np.uint8)


def straight_output(full: Image.Image | np.ndarray, decoded) -> Image.Image | np.ndarray:
    """``full`` (a finished result of ``decoded``, a DecodedImage with alpha) in the straight
    colours an alpha-keeping output stores (see straight_colours)."""
    is_array = isinstance(full, np.ndarray)
    size = full.shape[1::-1] if is_array else full.size
    if is_array:  # 16-bit results come from 16-bit sources, at the photo's size
        flat = decoded.pixels16 if decoded.pixels16 is not None else to_uint16(decoded.image)
    else:
        flat = decoded.image
        if flat.size != tuple(size):  # a post step that changed the size
            flat = flat.resize(size, Image.Resampling.LANCZOS)
    return straight_colours(full, flat, fit_alpha(decoded.alpha, tuple(size)))


# The light and dark squares editors show transparency over, and how many fit the short side.
_CHECKER = (255, 204)
_CHECKER_SQUARES = 40


def on_checkerboard(flat: Image.Image, alpha: np.ndarray) -> Image.Image:
    """``flat`` (RGB, flattened onto white as readers give it) shown over a light and dark
    checkerboard where ``alpha`` (its H x W transparency) lets the backdrop through, as
    Photoshop and Lightroom show a cut-out; squares sized to the picture, so a thumbnail of it
    still shows them."""
    rgb = np.asarray(flat.convert("RGB"), dtype=np.float32)
    if alpha.shape != rgb.shape[:2]:
        return flat
    square = max(2, min(alpha.shape) // _CHECKER_SQUARES)
    rows, cols = np.indices(alpha.shape) // square
    backdrop = np.where((rows + cols) % 2, _CHECKER[1], _CHECKER[0]).astype(np.float32)
    clear = 1 - alpha.astype(np.float32) / _opaque(alpha.dtype)
    # White under the clear part becomes the backdrop: flat + (1 - a)(backdrop - white).
    shown = rgb + (clear * (backdrop - 255))[..., None]
    return Image.fromarray(np.clip(np.rint(shown), 0, 255).astype(np.uint8), "RGB")
