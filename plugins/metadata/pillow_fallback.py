"""Read the common EXIF tags with Pillow, for files whose EXIF exiv2 refuses."""

from __future__ import annotations

import io
import warnings as _warnings
from typing import Any

from photobatch.plugins.metadata.exiv2 import fix_text, one_line


# For Pillow's fallback reader: (exiv2 key, IFD: 0 = IFD0, 0x8769 = Exif, 0x8825 = GPS, tag id).
_PIL_TAGS = (
    ("Exif.Image.Make", 0, 0x010F), ("Exif.Image.Model", 0, 0x0110),
    ("Exif.Image.Orientation", 0, 0x0112), ("Exif.Image.Software", 0, 0x0131),
    ("Exif.Image.DateTime", 0, 0x0132), ("Exif.Image.Artist", 0, 0x013B),
    ("Exif.Image.Copyright", 0, 0x8298),
    ("Exif.Photo.ExposureTime", 0x8769, 0x829A), ("Exif.Photo.FNumber", 0x8769, 0x829D),
    ("Exif.Photo.ISOSpeedRatings", 0x8769, 0x8827),
    ("Exif.Photo.DateTimeOriginal", 0x8769, 0x9003),
    ("Exif.Photo.DateTimeDigitized", 0x8769, 0x9004),
    ("Exif.Photo.OffsetTimeOriginal", 0x8769, 0x9011),
    ("Exif.Photo.SubSecTimeOriginal", 0x8769, 0x9291),
    ("Exif.Photo.FocalLength", 0x8769, 0x920A), ("Exif.Photo.LensMake", 0x8769, 0xA433),
    ("Exif.Photo.LensModel", 0x8769, 0xA434),
    ("Exif.GPSInfo.GPSLatitudeRef", 0x8825, 1), ("Exif.GPSInfo.GPSLatitude", 0x8825, 2),
    ("Exif.GPSInfo.GPSLongitudeRef", 0x8825, 3), ("Exif.GPSInfo.GPSLongitude", 0x8825, 4),
    ("Exif.GPSInfo.GPSAltitudeRef", 0x8825, 5), ("Exif.GPSInfo.GPSAltitude", 0x8825, 6),
)


def _pil_value(value: Any) -> str | None:
    if isinstance(value, (tuple, list)):
        parts = [_pil_value(v) for v in value]
        return " ".join(p for p in parts if p is not None) or None
    if isinstance(value, bytes):
        if len(value) == 1:  # GPSAltitudeRef is a single BYTE
            return str(value[0])
        return value.decode("latin-1").rstrip("\x00") or None
    numerator = getattr(value, "numerator", None)
    denominator = getattr(value, "denominator", None)
    if numerator is not None and denominator is not None and not isinstance(value, int):
        return f"{numerator}/{denominator}"
    return fix_text(str(value))


def pillow_exif(data: bytes, notes: list[str]) -> dict:
    """The common EXIF tags of ``data`` as exiv2-style keys and strings, read by Pillow."""
    from PIL import Image

    result: dict[str, str] = {}
    try:
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always")
            with Image.open(io.BytesIO(data)) as img:
                exif = img.getexif()
                ifds = {0: exif}
                for ifd in (0x8769, 0x8825):
                    try:
                        ifds[ifd] = exif.get_ifd(ifd)
                    except Exception:
                        ifds[ifd] = {}
        for key, ifd, tag in _PIL_TAGS:
            if tag in ifds[ifd]:
                value = _pil_value(ifds[ifd][tag])
                if value is not None:
                    result[key] = value
        if caught:
            notes.append(f"Pillow: {caught[0].message}")
        if result:
            notes.append("EXIF read by Pillow after exiv2 failed; values may be partial")
    except Image.UnidentifiedImageError:
        notes.append("Pillow does not recognise the file format either")
    except Exception as exc:
        notes.append(f"Pillow could not read the EXIF either: {one_line(exc)}")
    return result

