"""Embedded ICC profiles: read one from any file, tell whether it is sRGB."""

from __future__ import annotations

import io
from pathlib import Path

from photobatch.plugins.metadata.exiv2 import LOCK, MetadataError, one_line, open_image


def icc_profile(path: Path) -> bytes | None:
    """Return the embedded ICC profile of ``path``, or None when it has none."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MetadataError(f"cannot read {Path(path).name}: {exc.strerror or exc}") from exc
    try:
        img = open_image(data, [])
    except RuntimeError:
        img = None
    if img is not None:
        try:
            with LOCK:
                profile = img.read_icc()
        finally:
            img.close()
        return profile or None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as pil:
            return pil.info.get("icc_profile") or None
    except Exception as exc:
        raise MetadataError(f"cannot read {Path(path).name}: {one_line(exc)}") from exc


def is_srgb(profile: bytes) -> bool:
    """True when LittleCMS names the profile sRGB."""
    from PIL import ImageCms

    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    except Exception:  # a profile LittleCMS cannot parse is no sRGB we can vouch for
        return False
    return "srgb" in description.lower()
