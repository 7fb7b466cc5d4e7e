"""A JPEG under a size limit: the best quality that fits, as Lightroom's "Limit File Size To"."""

from __future__ import annotations

import io
from typing import Callable

# Below this quality a JPEG shows its blocks: a picture that does not fit then is too big for
# the limit and should be exported smaller instead.
LOWEST_QUALITY = 30


class TooBigForLimit(Exception):
    """Even at the lowest quality the picture is over the limit."""


def encode_within(encode: Callable[[int], bytes], limit: int, quality: int) -> tuple[bytes, int]:
    """The bytes of ``encode(q)`` for the highest q <= ``quality`` whose size is <= ``limit``,
    and that q; a bisection, about 6 encodings. Raises TooBigForLimit when even
    LOWEST_QUALITY is over the limit."""
    data = encode(quality)
    if len(data) <= limit:
        return data, quality
    low, high = LOWEST_QUALITY, quality - 1
    best = None
    while low <= high:
        middle = (low + high) // 2
        candidate = encode(middle)
        if len(candidate) <= limit:
            best, low = (candidate, middle), middle + 1
        else:
            high = middle - 1
    if best is None:
        raise TooBigForLimit(f"over {limit // 1000}K even at quality {LOWEST_QUALITY}: export "
                             "it smaller (--long-edge) or allow more (--max-size)")
    return best


def jpeg_encoder(write: Callable[..., None], image, **options) -> Callable[[int], bytes]:
    """An ``encode(quality)`` for ``encode_within`` from a writer's ``write(image, file, quality=,
    **options)``."""
    def encode(quality: int) -> bytes:
        buffer = io.BytesIO()
        write(image, buffer, quality=quality, **options)
        return buffer.getvalue()
    return encode
