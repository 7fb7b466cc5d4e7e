"""Masks painted beside a photo (``IMG_0001.mask.png``: white where the recipe may change it),
for recipes with ``mask = "sidecar"``: remove a sign, retouch one area, as Lightroom's masks
and generative remove do, with the mask drawn in any editor.

The mask is drawn on the photo as it is seen (its EXIF orientation applied); one with an alpha
channel marks with its opaque pixels (a layer painted over the photo), one without by its
brightness.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from photobatch.daemon.paths import mask_path_for
from photobatch.plugins.images import NothingToDo

# A mask whose shape differs more than this from the photo's was drawn on something else
# (the photo before its rotation, a crop).
_ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True)
class SidecarMask:
    """A photo's painted mask, ready for the runner, and the identity of the file it came from."""

    image: Image.Image  # "L", the upright photo's size
    sha256: str  # of the mask file as read: another mask makes the outputs made with this stale


def mask_identity(photo: Path) -> str | None:
    """sha256 of the mask beside ``photo`` now (None when there is none or it cannot be read)."""
    try:
        return hashlib.sha256(mask_path_for(photo).read_bytes()).hexdigest()
    except OSError:
        return None


def sidecar_mask(photo: Path, size: tuple[int, int]) -> SidecarMask:
    """The mask painted for ``photo`` as an "L" image of ``size`` (the upright photo's); a skip
    (NothingToDo) when there is none or it is empty, a ValueError naming it when it is unusable."""
    path = mask_path_for(photo)
    if not path.is_file():
        raise NothingToDo(f"no mask {path.name} beside it")
    try:
        # Read once: the identity recorded is that of the very bytes the runner used.
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                alpha = img.convert("RGBA").getchannel("A")
                mask = alpha if alpha.getextrema()[0] < 255 else img.convert("L")
            else:
                mask = img.convert("L")
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise ValueError(f"mask {path.name} cannot be read: {exc}") from None
    width, height = size
    if abs(mask.width / mask.height - width / height) > _ASPECT_TOLERANCE * (width / height):
        raise ValueError(f"mask {path.name} is {mask.width}x{mask.height} but the photo is "
                         f"{width}x{height} as it is seen: draw the mask on the upright photo")
    if mask.size != size:
        mask = mask.resize(size, Image.Resampling.BILINEAR)
    if mask.getbbox() is None:
        raise NothingToDo(f"mask {path.name} is empty (nothing white)")
    return SidecarMask(mask, hashlib.sha256(data).hexdigest())
