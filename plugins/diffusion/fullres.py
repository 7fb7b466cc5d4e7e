"""Bring a low-resolution edit back to the photo's full size (DESIGN §4, "Full resolution").

*detail transfer* fits, in small windows of the low-resolution pair (model input, model
output), a local colour transform ``edit ≈ A·source + b`` (a guided filter, He et al.), then
upsamples the smooth maps ``A`` and ``b`` and applies them to the full-size original: the
change in colour and tone follows the edit and respects the original's edges, while the fine
detail is the original's own pixels. The fit is regularised towards ``A = identity`` so that
where the low-resolution pair says nothing (flat areas) the original's texture passes
through at full strength instead of being flattened. It is torch code and runs on the model's
device, a band of rows at a time.

*resize* is what A1111 does: the generated image scaled up (LANCZOS). *tiled* outputs come
back from the runner already at full size.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from PIL import Image

from photobatch.plugins.diffusion.masks import paste_back
from photobatch.plugins.diffusion.memory import is_out_of_memory

log = logging.getLogger(__name__)

# Below this short side (pixels) the fit stays at the model's own size.
_FIT_SHORT_SIDE = 192

# Full-size pixels computed at once. On a GPU: large bands (12 float32 maps per pixel, ~200 MB
# a band), few kernel launches. On the CPU: small bands whose buffers are reused, so that they
# stay in the cache and no band pays for fresh pages (a new 46 MB tensor costs ~16 ms of page
# faults on 2 cores, more than the arithmetic done in it; bench/RESULTS.md).
_BAND_PIXELS = 4 << 20
_CPU_BAND_PIXELS = 1 << 16


def _band_rows(device: str, width: int) -> int:
    """Rows of a band of a ``width``-wide photo on ``device``."""
    pixels = _CPU_BAND_PIXELS if device == "cpu" else _BAND_PIXELS
    return max(16, pixels // width)


def _box1d(x, radius: int, dim: int):
    """Mean over a window of ``2 * radius + 1`` along ``dim``, counting only pixels inside the
    picture (He et al.'s normalised box), by running sums: the cost does not grow with radius."""
    import torch

    dim %= x.dim()
    n = x.shape[dim]
    sums = torch.cumsum(x, dim)
    # Window i is sums[min(i + radius, n - 1)] - sums[i - radius - 1] (nothing to take away
    # before the picture). Built in one buffer, in place: on the CPU every fresh tensor of
    # this size costs more in page faults than the arithmetic done in it.
    reach = min(radius, n - 1)
    total = torch.empty_like(sums)
    total.narrow(dim, 0, n - reach).copy_(sums.narrow(dim, reach, n - reach))
    if reach:
        tail = total.narrow(dim, n - reach, reach)
        tail.copy_(sums.narrow(dim, n - 1, 1).expand_as(tail))
    if n > radius + 1:
        total.narrow(dim, radius + 1, n - radius - 1).sub_(sums.narrow(dim, 0, n - radius - 1))
    idx = torch.arange(n, device=x.device)
    count = ((idx + radius + 1).clamp(max=n) - (idx - radius).clamp(min=0)).to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = n
    return total.div_(count.reshape(shape))


def _box(x, radius: int):
    return _box1d(_box1d(x, radius, -1), radius, -2)


def guided_coefficients(before, after, radius: int, eps: float):
    """Per-pixel maps (12, h, w): ``A`` (3x3, row-major) then ``b`` (3), ``after ≈ A @ before + b``.

    ``before``/``after`` are float32 tensors (3, h, w) in [0, 1]. ``eps`` regularises towards
    the identity transform (larger: smoother, closer to a pure offset).
    """
    import torch

    h, w = before.shape[1:]
    # Every map that needs the box filter, in one (21, h, w) stack: one pass instead of five.
    boxed = _box(torch.cat([before, after,
                            (before[:, None] * before[None]).reshape(9, h, w),
                            (after[:, None] * before[None]).reshape(9, h, w)]), radius)
    mean_i, mean_p = boxed[:3], boxed[3:6]
    eye = eps * torch.eye(3, dtype=before.dtype, device=before.device).reshape(3, 3, 1, 1)
    sigma = boxed[6:15].reshape(3, 3, h, w) - mean_i[:, None] * mean_i[None, :] + eye
    cov = boxed[15:].reshape(3, 3, h, w) - mean_p[:, None] * mean_i[None, :] + eye
    # argmin |p - A i - b|^2 + eps |A - I|^2  =>  A = (cov + eps I)(sigma + eps I)^-1,
    # elementwise (a batched matmul of 3x3 matrices is slower on every device).
    maps = torch.empty(12, h, w, dtype=before.dtype, device=before.device)
    a = maps[:9].view(3, 3, h, w)
    torch.sum(cov[:, :, None] * _inverse_spd3(sigma)[None], 1, out=a)
    torch.sub(mean_p, (a * mean_i[None, :]).sum(1), out=maps[9:])
    return _box(maps, radius)


def _inverse_spd3(m):
    """Inverses of a field of symmetric 3x3 matrices (3, 3, h, w), by the adjugate.

    Elementwise, so every device runs it at memory speed (a batched LAPACK solve took 18 ms
    for a 312x208 field on 2 CPU cores, this under 2). The matrices are covariances plus
    ``eps * I``: their determinant is at least ``eps**3``, far from float32's limits.
    """
    a, b, c = m[0, 0], m[0, 1], m[0, 2]
    d, e, f = m[1, 1], m[1, 2], m[2, 2]
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    import torch

    rows = ((c00, c01, c02), (c01, c11, c12), (c02, c12, c22))
    return torch.stack([torch.stack(row) for row in rows]) / det


def _taps(n_out: int, n_in: int, start: int, stop: int, device):
    """Bilinear taps for output rows ``start:stop`` of an ``n_in`` -> ``n_out`` upsampling, pixel
    centres aligned (what PIL and ``align_corners=False`` do), clamped at the edges."""
    import torch

    # Positions in float64 (exact for any photo size), computed on the CPU: MPS has no float64.
    pos = (torch.arange(start, stop, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = pos.clamp(0, n_in - 1)
    lower = pos.floor().long()
    upper = (lower + 1).clamp(max=n_in - 1)
    return lower.to(device), upper.to(device), (pos - lower).float().to(device)


def detail_transfer(full, before: Image.Image, after: Image.Image,
                    radius: int | None = None, eps: float = 1e-2, device: str | None = None):
    """Apply the change ``before -> after`` (low resolution) to ``full`` (the original, any size).

    ``before`` is what the model was given (``full`` scaled down), ``after`` what it returned.
    ``full`` may be a PIL image (the result is one) or a uint16 H x W x 3 array from a RAW or
    16-bit source: then the result is a uint16 array, the original's 16-bit detail intact.
    Runs on ``device`` (the model's, so a GPU machine's cores stay free for decoding and
    writing); out of GPU memory, or on a device that lacks an operation, it runs on the CPU.
    """
    if before.size != after.size:
        raise ValueError(f"detail transfer needs the model input and output at one size, got "
                         f"{before.size} and {after.size}")
    device = device or "cpu"
    if device != "cpu":
        try:
            return _detail_transfer(full, before, after, radius, eps, device)
        except NotImplementedError as exc:  # e.g. an operation MPS does not have
            log.info("%s cannot run the detail transfer (%s); running it on the CPU", device, exc)
        except RuntimeError as exc:  # torch.OutOfMemoryError is one
            if not is_out_of_memory(exc):
                raise
            log.info("no room on %s for the detail transfer; running it on the CPU", device)
    return _detail_transfer(full, before, after, radius, eps, "cpu")


def _detail_transfer(full, before, after, radius, eps, device):
    import torch
    import torch.nn.functional as F

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

    def planes(image):
        pixels = np.array(image.convert("RGB"))  # a writable copy, as torch wants
        return torch.from_numpy(pixels).to(device).permute(2, 0, 1).float() / 255.0

    with torch.inference_mode():
        maps = guided_coefficients(planes(before), planes(after), radius, eps)
        as_array = isinstance(full, np.ndarray)
        src = full if as_array else np.asarray(full if full.mode == "RGB" else full.convert("RGB"))
        top = 65535.0 if src.dtype == np.uint16 else 255.0
        maps[9:] *= top  # the offsets in the photo's own units: its pixels need no scaling
        height, width = src.shape[:2]
        # Columns first, at the fit's height (small), then each band's rows from those: the
        # same bilinear upsampling as the whole picture at once, exact for any band.
        cols = F.interpolate(maps.reshape(1, -1, lo_w), size=width, mode="linear",
                             align_corners=False).reshape(12, lo_h, width)
        out = np.empty_like(src)
        result = torch.from_numpy(out)
        with warnings.catch_warnings():
            # A read-only view of the photo: torch warns, and only reads it.
            warnings.simplefilter("ignore", UserWarning)
            photo = torch.from_numpy(src)
        rows_per_band = _band_rows(device, width)
        # One set of buffers for every band (flat, so a short last band is a contiguous view).
        above_buf = torch.empty(12 * rows_per_band * width, device=device)
        below_buf = torch.empty_like(above_buf)
        guide_buf = torch.empty(3 * rows_per_band * width, device=device)
        for y0 in range(0, height, rows_per_band):
            y1 = min(height, y0 + rows_per_band)
            n = y1 - y0
            above, below, weight = _taps(height, lo_h, y0, y1, device)
            up = torch.index_select(cols, 1, above, out=above_buf[:12 * n * width].view(12, n, width))
            down = torch.index_select(cols, 1, below, out=below_buf[:12 * n * width].view(12, n, width))
            up.lerp_(down, weight[:, None])
            guide = guide_buf[:3 * n * width].view(3, n, width)
            guide.copy_(photo[y0:y1].permute(2, 0, 1))
            band = up[9:]
            for r in range(3):
                for c in range(3):
                    band[r].addcmul_(up[3 * r + c], guide[c])
            # +0.5 then truncation on the copy into the photo's integer type: rounding.
            result[y0:y1].copy_(band.add_(0.5).clamp_(0, top).permute(1, 2, 0))
    return out if as_array else Image.fromarray(out)


def restore_full_resolution(source: Image.Image, result, strategy: str,
                            color_match: bool = False, source16: np.ndarray | None = None,
                            device: str | None = None):
    """The finished full-size picture for a runner's ``result`` (a RunOutput) of ``source``.

    Crops (inpainting "only masked") are restored to their region and pasted back through the
    result's mask, so pixels outside it are exactly the source's. With ``source16`` (the
    source's 16-bit pixels) a whole-picture detail transfer returns a uint16 array. Detail
    transfer runs on ``device`` (default: the one the result was made on).
    """
    device = device or getattr(result, "device", None)
    model_input = getattr(result, "model_input", None)
    whole_region = getattr(result, "region", None) in (None, (0, 0) + tuple(source.size))
    if (source16 is not None and strategy == "detail-transfer" and model_input is not None
            and whole_region and getattr(result, "mask", None) is None
            and result.image.size == model_input.size):
        image = result.image
        if color_match:
            from photobatch.plugins.diffusion.colormatch import match_colors

            image = match_colors(image, model_input)
        return detail_transfer(source16, model_input, image, device=device)
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
            restored = detail_transfer(image, low, matched, device=device)
    else:
        if color_match and model_input is not None:
            image = match_colors(image, model_input)
        if strategy == "detail-transfer" and model_input is not None:
            restored = detail_transfer(original, model_input, image, device=device)
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
