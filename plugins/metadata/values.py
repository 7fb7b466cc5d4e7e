"""Parse EXIF/XMP values as exiv2 prints them: rationals, exposure, GPS, dates, lists."""

from __future__ import annotations

import re
from datetime import datetime
from fractions import Fraction
from typing import Any


def first(value: Any) -> str | None:
    """The first value of a list or language alternative, as stripped text, or None."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = next(iter(value.values()), None)
    if value is None:
        return None
    value = str(value).replace("\x00", "").strip()
    return value or None


def rational(text: str | None) -> Fraction | None:
    """Parse "num/den" or a decimal into a Fraction; None when unreadable or x/0."""
    if not text:
        return None
    try:
        part = text.split()[0]
        if "/" in part:
            num, den = part.split("/", 1)
            if int(den) == 0:
                return None
            return Fraction(int(num), int(den))
        return Fraction(part)
    except (ValueError, ZeroDivisionError):
        return None


def format_exposure(seconds: Fraction) -> str:
    """Format an exposure time as cameras show it ("1/250", "2")."""
    # The way cameras and Lightroom show it: "1/250", "1/1.3", "2", "2.5".
    if seconds <= 0:
        raise ValueError("exposure time must be positive")
    if seconds >= 1:
        return f"{float(seconds):g}"
    inverse = 1 / seconds
    if inverse >= 10 or inverse.denominator == 1:
        return f"1/{round(inverse)}"
    return f"1/{float(inverse):.2g}"


def gps_from_exif(value: str | None, ref: str | None) -> float | None:
    """Signed degrees from an EXIF "d/1 m/1 s/100" coordinate and its N/S/E/W reference."""
    if not value:
        return None
    parts = [rational(p) for p in value.split()]
    if not parts or any(p is None for p in parts):
        raise ValueError(f"unreadable coordinate {value!r}")
    deg = float(parts[0]) + (float(parts[1]) / 60 if len(parts) > 1 else 0.0) \
        + (float(parts[2]) / 3600 if len(parts) > 2 else 0.0)
    return -deg if (ref or "").strip().upper()[:1] in ("S", "W") else deg


_XMP_GPS = re.compile(r"^\s*(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?\s*([NSEW])\s*$",
                      re.I)


def gps_from_xmp(value: str | None) -> float | None:
    """Signed degrees from an XMP GPSCoordinate ("48,51.504N")."""
    # XMP's GPSCoordinate: "DDD,MM,SSk" or "DDD,MM.mmk".
    if not value:
        return None
    match = _XMP_GPS.match(value)
    if not match:
        raise ValueError(f"unreadable coordinate {value!r}")
    deg = float(match[1]) + float(match[2]) / 60 + (float(match[3]) / 3600 if match[3] else 0.0)
    return -deg if match[4].upper() in ("S", "W") else deg


_OFFSET = re.compile(r"^[+-](?:[01]\d|2[0-3]):[0-5]\d$")


def exif_datetime(value: str, subsec: str | None, offset: str | None) -> str:
    """ISO 8601 from an EXIF date, its sub-seconds and its UTC offset."""
    stamp = datetime.strptime(value.strip()[:19].replace("-", ":").replace("T", " "),
                              "%Y:%m:%d %H:%M:%S")
    text = stamp.isoformat()
    digits = re.sub(r"\D", "", subsec or "")
    if digits:
        text += "." + digits
    if offset and _OFFSET.match(offset.strip()):
        text += offset.strip()
    return text


def keywords_from(*sources: Any) -> list[str]:
    """Unique, non-empty keywords from several sources, in order."""
    seen: dict[str, None] = {}
    for source in sources:
        if source is None:
            continue
        for item in source if isinstance(source, list) else [source]:
            text = str(item).strip()
            if text:
                seen.setdefault(text, None)
    return list(seen)
