"""How big an exported picture is: Lightroom's "Resize to Fit" (long edge, short edge,
megapixels), never enlarged."""

from __future__ import annotations

import math
import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)(?:[iI]?[bB])?\s*$")


def fitted_size(width: int, height: int, *, long_edge: int = 0, short_edge: int = 0,
                megapixels: float = 0.0) -> tuple[int, int]:
    """``width`` x ``height`` scaled down (aspect kept) to fit the one limit given; unchanged
    when it fits already or none is given (a picture is never enlarged, as Lightroom's "Don't
    Enlarge" keeps it)."""
    scale = 1.0
    if long_edge:
        scale = long_edge / max(width, height)
    elif short_edge:
        scale = short_edge / min(width, height)
    elif megapixels:
        scale = math.sqrt(megapixels * 1e6 / (width * height))
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def parse_file_size(text: str) -> int:
    """Bytes in a size as people write it: "500K", "2M", "2.5MB", "800000"; ValueError
    otherwise. K and M are 1000 and 1000000, as Lightroom's "Limit File Size To" counts."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a file size (e.g. 500K, 2M)")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * {"": 1, "k": 1000, "m": 1000_000}[unit])
    if size < 10_000:
        raise ValueError(f"{text!r} is too small for a photo (10K at least)")
    return size
