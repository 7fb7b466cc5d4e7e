"""Overlapping tiles over a full-size image and a seam-free merge of the processed tiles.

Each tile's weight ramps linearly from ~0 at an edge it shares with a neighbour to 1 at
``overlap`` pixels in, so at every tile border the outgoing tile has no weight left: there is
no step for the eye to find. Edges on the image border keep full weight.
"""

from __future__ import annotations

import numpy as np


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` shared."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    count = -(-(length - overlap) // stride)  # ceil
    count = max(count, 2)
    # Spread evenly so the last tile ends exactly on the border (no ragged small tile).
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_boxes(width: int, height: int, tile_w: int, tile_h: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) boxes of the tiles, row by row."""
    return [
        (x, y, x + tile_w, y + tile_h)
        for y in axis_starts(height, tile_h, overlap)
        for x in axis_starts(width, tile_w, overlap)
    ]


def tile_weight(box: tuple[int, int, int, int], width: int, height: int, overlap: int) -> np.ndarray:
    """The (h, w) blend weight of one tile: ramps on the edges it shares with other tiles."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    ramp = max(1, overlap)

    def profile(n: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
        idx = np.arange(n, dtype=np.float32)
        weight = np.ones(n)
        if ramp_start:
            weight = np.minimum(weight, (idx + 0.5) / ramp)
        if ramp_end:
            weight = np.minimum(weight, (n - idx - 0.5) / ramp)
        return weight

    wx = profile(w, left > 0, right < width)
    wy = profile(h, top > 0, bottom < height)
    return np.outer(wy, wx)


def merge_tiles(width: int, height: int, tiles, overlap: int) -> np.ndarray:
    """Blend ``tiles`` (pairs of box and (h, w, 3) uint8 array) into one (height, width, 3) uint8 image."""
    acc = np.zeros((height, width, 3), dtype=np.float32)
    total = np.zeros((height, width, 1), dtype=np.float32)
    for box, pixels in tiles:
        left, top, right, bottom = box
        weight = tile_weight(box, width, height, overlap)[..., None]
        acc[top:bottom, left:right] += pixels.astype(np.float32) * weight
        total[top:bottom, left:right] += weight
    return np.clip(acc / np.maximum(total, 1e-12) + 0.5, 0, 255).astype(np.uint8)
