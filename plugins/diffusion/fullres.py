"""Bring a low-resolution edit back to the photo's full size (DESIGN §4, "Full resolution").

*detail transfer* fits, in small windows of the low-resolution pair (model input, model
output), a local colour transform ``edit ≈ A·source + b`` (a guided filter, He et al.), then
upsamples the smooth maps ``A`` and ``b`` and applies them to the full-size original: the
change in colour and tone follows the edit and respects the original's edges, while the fine
detail is the original's own pixels. The fit is regularised towards ``A = identity`` so that
where the low-resolution pair says nothing (flat areas) the original's texture passes
through at full strength instead of being flattened.

*resize* is what A1111 does: the generated image scaled up (LANCZOS). *tiled* outputs come
back from the runner already at full size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from photobatch.plugins.diffusion.masks import paste_back

# Below this short side (pixels) the fit stays at the model's own size.
_FIT_SHORT_SIDE = 192

# Rows of the full-size output computed at once: bounds memory (12 float32 maps per band).
_BAND_ROWS = 256


def _box(arr: np.ndarray, radius: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    size = [2 * radius + 1, 2 * radius + 1] + [1] * (arr.ndim - 2)
    return uniform_filter(arr, size=size, mode="reflect")


def guided_coefficients(before: np.ndarray, after: np.ndarray, radius: int, eps: float):
    """Per-pixel ``A`` (h, w, 3, 3) and ``b`` (h, w, 3) with ``after ≈ A @ before + b`` locally.

    ``before``/``after`` are float32 (h, w, 3) in [0, 1]. ``eps`` regularises towards the
    identity transform (larger: smoother, closer to a pure offset).
    """
    mean_i = _box(before, radius)
    mean_p = _box(after, radius)
    # Covariance of the guide (3x3, symmetric: 6 maps) and cross-covariance edit/guide (3x3).
    sig = {}
    for r in range(3):
        for c in range(r, 3):
            sig[r, c] = sig[c, r] = (_box(before[..., r] * before[..., c], radius)
                                     - mean_i[..., r] * mean_i[..., c] + (eps if r == c else 0.0))
    cov = [[_box(after[..., r] * before[..., c], radius) - mean_p[..., r] * mean_i[..., c]
            + (eps if r == c else 0.0) for c in range(3)] for r in range(3)]
    inv = _inverse3(sig)
    # argmin |p - A i - b|^2 + eps |A - I|^2  =>  A = (cov + eps I)(sigma + eps I)^-1
    a = np.empty(before.shape[:2] + (3, 3), dtype=np.float32)
    for r in range(3):
        for c in range(3):
            a[..., r, c] = cov[r][0] * inv[0][c] + cov[r][1] * inv[1][c] + cov[r][2] * inv[2][c]
    b = mean_p - np.einsum("hwij,hwj->hwi", a, mean_i)
    return _box(a, radius), _box(b.astype(np.float32), radius)


def _inverse3(m: dict) -> list[list[np.ndarray]]:
    """Inverse of the per-pixel 3x3 matrices given as 9 maps ``m[r, c]``, by cofactors (as 9 maps:
    no stacking, which dominated the time)."""
    a, b, c = m[0, 0], m[0, 1], m[0, 2]
    d, e, f = m[1, 0], m[1, 1], m[1, 2]
    g, h, i = m[2, 0], m[2, 1], m[2, 2]
    co = [[e * i - f * h, c * h - b * i, b * f - c * e],
          [f * g - d * i, a * i - c * g, c * d - a * f],
          [d * h - e * g, b * g - a * h, a * e - b * d]]
    det = a * co[0][0] + b * co[1][0] + c * co[2][0]
    return [[co[r][k] / det for k in range(3)] for r in range(3)]


def detail_transfer(full, before: Image.Image, after: Image.Image,
                    radius: int | None = None, eps: float = 1e-2):
    """Apply the change ``before -> after`` (low resolution) to ``full`` (the original, any size).

    ``before`` is what the model was given (``full`` scaled down), ``after`` what it returned.
    ``full`` may be a PIL image (the result is one) or a uint16 H x W x 3 array from a RAW or
    16-bit source: then the result is a uint16 array, the original's 16-bit detail intact.
    """
    if before.size != after.size:
        raise ValueError(f"detail transfer needs the model input and output at one size, got "
                         f"{before.size} and {after.size}")
    if radius is None:
        # ~1/100 of the short side: large enough to average out the model's own texture.
        radius = max(2, round(min(before.size) / 100))
    if min(before.size) >= _FIT_SHORT_SIDE * 2 and radius >= 4:
        # The fitted maps are smooth (box-filtered twice): fitting them at half the model's
        # size gives the same maps for a quarter of the work.
        half = (before.width // 2, before.height // 2)
        before = before.resize(half, Image.Resampling.BOX)
        after = after.resize(half, Image.Resampling.BOX)
        radius //= 2
    lo_w, lo_h = before.size
    low_before = np.asarray(before.convert("RGB"), dtype=np.float32) / 255.0
    low_after = np.asarray(after.convert("RGB"), dtype=np.float32) / 255.0
    a, b = guided_coefficients(low_before, low_after, radius, eps)
    maps = [Image.fromarray(np.ascontiguousarray(a[..., i, j])) for i in range(3) for j in range(3)]
    maps += [Image.fromarray(np.ascontiguousarray(b[..., i])) for i in range(3)]
    as_array = isinstance(full, np.ndarray)
    src = full if as_array else np.asarray(full.convert("RGB"))
    top = 65535.0 if src.dtype == np.uint16 else 255.0
    height, width = src.shape[:2]
    out = np.empty_like(src)
    for y0 in range(0, height, _BAND_ROWS):
        y1 = min(height, y0 + _BAND_ROWS)
        # The band's rows in low-resolution coordinates: exact alignment with pixel centres.
        box = (0.0, y0 * lo_h / height, float(lo_w), y1 * lo_h / height)
        up = np.stack([np.asarray(m.resize((width, y1 - y0), Image.Resampling.BILINEAR, box=box))
                       for m in maps], axis=-1)
        guide = src[y0:y1].astype(np.float32) / top
        band = np.empty_like(guide)
        for r in range(3):
            # Explicit multiply-adds: several times faster than einsum over a 3x3 per pixel.
            band[..., r] = (up[..., 3 * r] * guide[..., 0] + up[..., 3 * r + 1] * guide[..., 1]
                            + up[..., 3 * r + 2] * guide[..., 2] + up[..., 9 + r])
        out[y0:y1] = np.clip(band * top + 0.5, 0, top).astype(src.dtype)
    return out if as_array else Image.fromarray(out)


def restore_full_resolution(source: Image.Image, result, strategy: str,
                            color_match: bool = False, source16: np.ndarray | None = None):
    """The finished full-size picture for a runner's ``result`` (a RunOutput) of ``source``.

    Crops (inpainting "only masked") are restored to their region and pasted back through the
    result's mask, so pixels outside it are exactly the source's. With ``source16`` (the
    source's 16-bit pixels) a whole-picture detail transfer returns a uint16 array.
    """
    model_input = getattr(result, "model_input", None)
    whole_region = getattr(result, "region", None) in (None, (0, 0) + tuple(source.size))
    if (source16 is not None and strategy == "detail-transfer" and model_input is not None
            and whole_region and getattr(result, "mask", None) is None
            and result.image.size == model_input.size):
        image = result.image
        if color_match:
            from photobatch.plugins.diffusion.colormatch import match_colors

            image = match_colors(image, model_input)
        return detail_transfer(source16, model_input, image)
    from photobatch.plugins.diffusion.colormatch import match_colors

    width, height = source.size
    box = tuple(getattr(result, "region", None) or (0, 0, width, height))
    region_size = (box[2] - box[0], box[3] - box[1])
    whole = box == (0, 0, width, height)
    original = source if whole else source.crop(box)
    model_input = getattr(result, "model_input", None)
    image = result.image
    if image.size == region_size and image.size != getattr(model_input, "size", None):
        # Already full size (tiled): colour match at a small size, transfer that change up.
        restored = image
        if color_match:
            small = working_preview(image.size)
            low = image.resize(small, Image.Resampling.BOX)
            matched = match_colors(low, original.resize(small, Image.Resampling.BOX))
            restored = detail_transfer(image, low, matched)
    else:
        if color_match and model_input is not None:
            image = match_colors(image, model_input)
        if strategy == "detail-transfer" and model_input is not None:
            restored = detail_transfer(original, model_input, image)
        else:
            restored = image.resize(region_size, Image.Resampling.LANCZOS)
    mask = getattr(result, "mask", None)
    if mask is None and whole:
        return restored
    if mask is None:
        mask = Image.new("L", source.size, 0)
        mask.paste(255, box)
    return paste_back(source, restored, mask, box)


def working_preview(size: tuple[int, int], pixels: int = 512 * 512) -> tuple[int, int]:
    """A size of about ``pixels`` with the aspect of ``size`` (never larger than ``size``)."""
    width, height = size
    scale = min(1.0, (pixels / float(width * height)) ** 0.5)
    return max(1, round(width * scale)), max(1, round(height * scale))
