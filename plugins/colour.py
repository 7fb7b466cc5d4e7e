"""Colour spaces of outputs: their ICC profiles, and conversion with LittleCMS (Pillow ImageCms).

LittleCMS (through Pillow) ships only an sRGB profile. Adobe RGB (1998) and ProPhoto RGB are
matrix/TRC spaces fully defined by their primaries, white point and gamma, so their profiles
are built here from those numbers (ICC.1:2001-04, version 2.1) rather than shipped as binary
files; LittleCMS then does every conversion.
"""

from __future__ import annotations

import functools
import io
import struct

import numpy as np
from PIL import Image, ImageCms

# Names a recipe uses for an output colour space; "source" keeps the source's profile.
COLOR_SPACES = ("source", "srgb", "adobe-rgb", "prophoto")

# Pinned into every profile we build or copy: LittleCMS stamps the current time into the
# header, which would make identical outputs differ byte for byte.
_PROFILE_DATE = (2026, 1, 1, 0, 0, 0)

_D50 = np.array([0.9642, 1.0, 0.8249])
_D65_XY = (0.3127, 0.3290)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614],
                      [-0.7502, 1.7135, 0.0367],
                      [0.0389, -0.0685, 1.0296]])

# (description, primaries (x, y) for R, G, B, white point (x, y), gamma)
_SPACES = {
    "adobe-rgb": ("Adobe RGB (1998) compatible (photobatch)",
                  ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), _D65_XY, 563 / 256),
    "prophoto": ("ProPhoto RGB compatible (photobatch)",
                 ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), (0.3457, 0.3585), 1.8),
}


def _pin_date(profile: bytes) -> bytes:
    data = bytearray(profile)
    data[24:36] = b"".join(v.to_bytes(2, "big") for v in _PROFILE_DATE)
    return bytes(data)


@functools.lru_cache(maxsize=None)
def srgb_profile() -> bytes:
    """LittleCMS's built-in sRGB ICC profile, with a fixed creation date (byte-stable)."""
    return _pin_date(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


@functools.lru_cache(maxsize=None)
def profile_for(space: str) -> bytes:
    """The ICC profile of ``space`` ("srgb", "adobe-rgb" or "prophoto")."""
    if space == "srgb":
        return srgb_profile()
    try:
        description, primaries, white, gamma = _SPACES[space]
    except KeyError:
        known = ", ".join(repr(s) for s in COLOR_SPACES if s != "source")
        raise ValueError(f"colour space must be one of {known}; got {space!r}") from None
    return _matrix_trc_profile(description, _colorants_d50(primaries, white), gamma)


def profile_description(profile: bytes | None) -> str | None:
    """The profile's own name ("sRGB IEC61966-2.1"...), or None when there is none or it is bad."""
    if not profile:
        return None
    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip()
    except (OSError, ImageCms.PyCMSError, TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=32)
def is_srgb(profile: bytes | None) -> bool:
    """True when pixels tagged with ``profile`` are sRGB: untagged (what cameras and browsers
    assume), or an RGB profile with sRGB's primaries (any vendor's sRGB profile)."""
    if not profile:
        return True
    if profile == srgb_profile():
        return True
    if profile_colour_space(profile) != "RGB":
        return False
    try:
        theirs = ImageCms.ImageCmsProfile(io.BytesIO(profile)).profile
        ours = ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile())).profile
        pairs = [(getattr(theirs, name), getattr(ours, name))
                 for name in ("red_colorant", "green_colorant", "blue_colorant")]
    except (OSError, ImageCms.PyCMSError, TypeError, ValueError):
        return False
    if any(a is None for a, _ in pairs):  # a LUT profile: let LittleCMS convert it
        return False
    return all(abs(x - y) < 0.004 for a, b in pairs for x, y in zip(a[0], b[0]))


def from_srgb(image: Image.Image, target_icc: bytes) -> Image.Image:
    """Convert an sRGB ``image`` into the RGB space of ``target_icc`` (relative colorimetric with
    black-point compensation, like every other conversion here)."""
    return ImageCms.applyTransform(image.convert("RGB"), _transform(srgb_profile(), target_icc))


def profile_colour_space(profile: bytes | None) -> str | None:
    """The ICC header's data colour space ("RGB", "GRAY", "CMYK", "Lab"...), or None."""
    if not profile or len(profile) < 20:
        return None
    return profile[16:20].decode("latin-1").strip() or None


def convert_to_space(image: Image.Image, source_icc: bytes | None,
                     space: str) -> tuple[Image.Image, bytes | None]:
    """Convert an RGB ``image`` from its profile to ``space``; return the pixels and their profile.

    "source" returns the image untouched with ``source_icc``. An untagged image is taken to be
    sRGB (what browsers and cameras assume). Relative colorimetric with black-point
    compensation, as Lightroom and Photoshop export.
    """
    if space == "source":
        return image, source_icc
    target = profile_for(space)
    if source_icc == target:
        return image, target
    source = source_icc if profile_colour_space(source_icc) == "RGB" else srgb_profile()
    transform = _transform(source, target)
    return ImageCms.applyTransform(image.convert("RGB"), transform), target


def to_srgb(image: Image.Image, source_icc: bytes) -> Image.Image:
    """Convert an image in any mode LittleCMS knows (CMYK, L, RGB) from its profile to sRGB RGB."""
    return ImageCms.profileToProfile(
        image, ImageCms.ImageCmsProfile(io.BytesIO(source_icc)),
        ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile())), outputMode="RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION)


@functools.lru_cache(maxsize=16)
def _transform(source: bytes, target: bytes) -> ImageCms.ImageCmsTransform:
    # Building a transform parses both profiles and optimises a pipeline: worth caching.
    return ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(source)), ImageCms.ImageCmsProfile(io.BytesIO(target)),
        "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION)


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def _colorants_d50(primaries, white) -> np.ndarray:
    """RGB -> XYZ matrix of the space, chromatically adapted to the ICC's D50 (Bradford)."""
    columns = np.column_stack([_xyz(p) for p in primaries])
    white_xyz = _xyz(white)
    scale = np.linalg.solve(columns, white_xyz)
    matrix = columns * scale
    cone_src, cone_dst = _BRADFORD @ white_xyz, _BRADFORD @ _D50
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(cone_dst / cone_src) @ _BRADFORD
    return adapt @ matrix


def _s15f16(*values: float) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _xyz_tag(xyz) -> bytes:
    return b"XYZ \0\0\0\0" + _s15f16(*xyz)


def _matrix_trc_profile(description: str, colorants: np.ndarray, gamma: float) -> bytes:
    text = description.encode("ascii") + b"\0"
    desc = (b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67)
    cprt = b"text\0\0\0\0" + b"No copyright, use freely\0"
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [(b"desc", desc), (b"cprt", cprt), (b"wtpt", _xyz_tag(_D50)),
            (b"rXYZ", _xyz_tag(colorants[:, 0])), (b"gXYZ", _xyz_tag(colorants[:, 1])),
            (b"bXYZ", _xyz_tag(colorants[:, 2])), (b"rTRC", curve), (b"gTRC", curve),
            (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = [], b""
    for signature, data in tags:
        data += b"\0" * (-len(data) % 4)
        table.append(struct.pack(">4sII", signature, offset + len(body), len(data)))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr"
              + b"RGB XYZ " + b"".join(v.to_bytes(2, "big") for v in _PROFILE_DATE) + b"acsp"
              + b"\0" * 4 + struct.pack(">I", 0) + b"\0" * 8 + b"\0" * 8
              + struct.pack(">I", 0) + _s15f16(*_D50) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)
    return header + struct.pack(">I", len(tags)) + b"".join(table) + body
