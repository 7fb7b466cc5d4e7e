"""Photo metadata: read a summary for the catalog, carry EXIF/IPTC/XMP/ICC over to outputs.

exiv2 (through pyexiv2, which bundles libexiv2) does the work, because it is the one library
here that copies EXIF, IPTC, XMP and ICC faithfully and writes XMP in our own namespace
(DESIGN.md section 4). Files are always handed to exiv2 as bytes (``pyexiv2.ImageData``):

* ``pyexiv2.Image(str)`` encodes the path to UTF-8 and exiv2 passes it to ``fopen``; that works
  for ``Ölberg café 東京.jpg`` on Linux but not for paths with undecodable bytes (surrogate
  escapes) nor on Windows, where exiv2 uses the ANSI code page;
* a source handed over as bytes can never be opened for writing;
* the output is rewritten in memory and replaced atomically, so a crash never leaves a
  half-written output behind.

pyexiv2 turns every exiv2 *error* log line into a RuntimeError, even where exiv2 itself would
carry on (a corrupt IFD, say). Reading therefore retries with exiv2's log muted, which gives what
exiv2 could recover, and falls back to Pillow for the EXIF if exiv2 recovered none.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import re
import stat
import tempfile
import threading
import warnings as _warnings
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyexiv2

__all__ = [
    "MetadataError",
    "POLICIES",
    "NAMESPACE_URI",
    "NAMESPACE_PREFIX",
    "read_summary",
    "read_record",
    "write_output_metadata",
    "icc_profile",
    "creator_tool",
    "dumps_params",
]

log = logging.getLogger(__name__)

NAMESPACE_URI = "https://photobatch.dev/ns/1.0/"
NAMESPACE_PREFIX = "photobatch"
POLICIES = ("all", "no-location", "copyright-only", "none")

THUMBNAIL_LONG_SIDE = 160

# pyexiv2 keeps exiv2's log level and error buffer in process globals; one lock keeps a muted
# retry in one thread from hiding another thread's errors. exiv2 calls hold the GIL anyway,
# so this costs no parallelism.
_LOCK = threading.RLock()
_NS_REGISTERED = False


class MetadataError(Exception):
    """A metadata problem to show to the user (unreadable source, unwritable output)."""


# ---------------------------------------------------------------- exiv2 access


def _register_namespace() -> None:
    global _NS_REGISTERED
    if not _NS_REGISTERED:
        pyexiv2.registerNs(NAMESPACE_URI, NAMESPACE_PREFIX)
        _NS_REGISTERED = True


def _open(data: bytes, notes: list[str] | None = None) -> pyexiv2.ImageData:
    """Parse ``data``; with ``notes``, retry leniently on exiv2 errors and note why."""
    with _LOCK:
        try:
            return pyexiv2.ImageData(data)
        except RuntimeError as exc:
            if notes is None or "unknown image type" in str(exc):
                raise
            notes.append(f"exiv2: {_one_line(exc).rstrip('.')}; kept what it could recover")
            pyexiv2.set_log_level(4)
            try:
                return pyexiv2.ImageData(data)
            finally:
                pyexiv2.set_log_level(2)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _fix_text(value: Any) -> Any:
    # Values are read as Latin-1 (which never fails) and then re-decoded as UTF-8 where that
    # works: exiv2 hands back raw bytes and old cameras write Latin-1 into ASCII tags, which
    # makes pyexiv2's strict UTF-8 decoding raise for the whole read.
    if isinstance(value, str):
        try:
            value = value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        return value
    if isinstance(value, list):
        return [_fix_text(v) for v in value]
    if isinstance(value, dict):
        return {_fix_text(k): _fix_text(v) for k, v in value.items()}
    return value


def _read(img: pyexiv2.ImageData, what: str, notes: list[str] | None = None) -> dict:
    reader = getattr(img, f"read_{what}")
    with _LOCK:
        try:
            return {k: _fix_text(v) for k, v in reader(encoding="latin-1").items()}
        except Exception as exc:  # exiv2 may choke on one odd tag: keep the other groups
            if notes is None:
                raise
            notes.append(f"exiv2 could not read the {what.upper()} block: {_one_line(exc)}")
            return {}


# ---------------------------------------------------------------- value parsing


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = next(iter(value.values()), None)
    if value is None:
        return None
    value = str(value).replace("\x00", "").strip()
    return value or None


def _rational(text: str | None) -> Fraction | None:
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


def _format_exposure(seconds: Fraction) -> str:
    # The way cameras and Lightroom show it: "1/250", "1/1.3", "2", "2.5".
    if seconds <= 0:
        raise ValueError("exposure time must be positive")
    if seconds >= 1:
        return f"{float(seconds):g}"
    inverse = 1 / seconds
    if inverse >= 10 or inverse.denominator == 1:
        return f"1/{round(inverse)}"
    return f"1/{float(inverse):.2g}"


def _gps_exif(value: str | None, ref: str | None) -> float | None:
    if not value:
        return None
    parts = [_rational(p) for p in value.split()]
    if not parts or any(p is None for p in parts):
        raise ValueError(f"unreadable coordinate {value!r}")
    deg = float(parts[0]) + (float(parts[1]) / 60 if len(parts) > 1 else 0.0) \
        + (float(parts[2]) / 3600 if len(parts) > 2 else 0.0)
    return -deg if (ref or "").strip().upper()[:1] in ("S", "W") else deg


_XMP_GPS = re.compile(r"^\s*(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?\s*([NSEW])\s*$",
                      re.I)


def _gps_xmp(value: str | None) -> float | None:
    # XMP's GPSCoordinate: "DDD,MM,SSk" or "DDD,MM.mmk".
    if not value:
        return None
    match = _XMP_GPS.match(value)
    if not match:
        raise ValueError(f"unreadable coordinate {value!r}")
    deg = float(match[1]) + float(match[2]) / 60 + (float(match[3]) / 3600 if match[3] else 0.0)
    return -deg if match[4].upper() in ("S", "W") else deg


_OFFSET = re.compile(r"^[+-](?:[01]\d|2[0-3]):[0-5]\d$")


def _exif_datetime(value: str, subsec: str | None, offset: str | None) -> str:
    stamp = datetime.strptime(value.strip()[:19].replace("-", ":").replace("T", " "),
                              "%Y:%m:%d %H:%M:%S")
    text = stamp.isoformat()
    digits = re.sub(r"\D", "", subsec or "")
    if digits:
        text += "." + digits
    if offset and _OFFSET.match(offset.strip()):
        text += offset.strip()
    return text


# ---------------------------------------------------------------- read_summary

# Tags kept verbatim (as exiv2 prints them) in the summary's "exif" dict.
_SUMMARY_TAGS = (
    "Exif.Image.Make", "Exif.Image.Model", "Exif.Image.Orientation", "Exif.Image.Software",
    "Exif.Image.DateTime", "Exif.Image.Artist", "Exif.Image.Copyright",
    "Exif.Photo.ExposureTime", "Exif.Photo.FNumber", "Exif.Photo.ExposureProgram",
    "Exif.Photo.ISOSpeedRatings", "Exif.Photo.DateTimeOriginal", "Exif.Photo.DateTimeDigitized",
    "Exif.Photo.OffsetTime", "Exif.Photo.OffsetTimeOriginal", "Exif.Photo.SubSecTimeOriginal",
    "Exif.Photo.ExposureBiasValue", "Exif.Photo.MeteringMode", "Exif.Photo.Flash",
    "Exif.Photo.FocalLength", "Exif.Photo.FocalLengthIn35mmFilm", "Exif.Photo.ColorSpace",
    "Exif.Photo.PixelXDimension", "Exif.Photo.PixelYDimension", "Exif.Photo.ExposureMode",
    "Exif.Photo.WhiteBalance", "Exif.Photo.BodySerialNumber", "Exif.Photo.LensMake",
    "Exif.Photo.LensModel", "Exif.Photo.LensSpecification", "Exif.Photo.LensSerialNumber",
)

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
    return _fix_text(str(value))


def _pillow_exif(data: bytes, notes: list[str]) -> dict:
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
        notes.append(f"Pillow could not read the EXIF either: {_one_line(exc)}")
    return result


def _empty_summary() -> dict:
    return {
        "make": None, "model": None, "lens": None, "exposure_time": None, "f_number": None,
        "iso": None, "focal_length": None, "date_taken": None, "gps_lat": None,
        "gps_lon": None, "gps_alt": None, "orientation": None, "rating": None,
        "keywords": [], "exif": {}, "warnings": [],
    }


def read_summary(path: Path) -> dict:
    """Summarise a photo's metadata for the catalog; never raises, problems go to "warnings".

    Keys: make, model, lens, exposure_time ("1/250"), f_number, iso, focal_length (mm),
    date_taken (ISO 8601, with the UTC offset when OffsetTimeOriginal is known), gps_lat,
    gps_lon, gps_alt (signed floats), orientation, rating, keywords (list), exif (the raw
    interesting tags as strings) and warnings (list of str). Missing values are None.
    """
    summary = _empty_summary()
    notes: list[str] = summary["warnings"]
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        notes.append(f"cannot read {Path(path).name}: {exc.strerror or _one_line(exc)}")
        return summary

    exif: dict = {}
    iptc: dict = {}
    xmp: dict = {}
    try:
        img = _open(data, notes)
    except Exception as exc:
        notes.append(f"exiv2 cannot read this file: {_one_line(exc)}")
        img = None
    if img is not None:
        try:
            exif = _read(img, "exif", notes)
            iptc = _read(img, "iptc", notes)
            xmp = _read(img, "xmp", notes)
        finally:
            img.close()
    if not exif and notes:
        exif = _pillow_exif(data, notes)

    try:
        _fill_summary(summary, exif, iptc, xmp)
    except Exception as exc:  # a bug in one parser must not cost the catalog the file
        log.exception("summarising metadata of %s", path)
        notes.append(f"metadata summary incomplete: {_one_line(exc)}")
    return summary


def _fill_summary(summary: dict, exif: dict, iptc: dict, xmp: dict) -> None:
    notes: list[str] = summary["warnings"]

    def pick(*keys: str) -> tuple[str | None, str | None]:
        for key in keys:
            source = xmp if key.startswith("Xmp.") else exif
            value = _first(source.get(key))
            if value is not None:
                return key, value
        return None, None

    def bad(key: str, value: str) -> None:
        notes.append(f"ignored invalid {key.split('.')[-1]} {value!r}")

    summary["make"] = pick("Exif.Image.Make", "Xmp.tiff.Make")[1]
    summary["model"] = pick("Exif.Image.Model", "Xmp.tiff.Model")[1]
    summary["lens"] = pick("Exif.Photo.LensModel", "Xmp.exifEX.LensModel", "Xmp.aux.Lens")[1]

    key, value = pick("Exif.Photo.ExposureTime", "Exif.Image.ExposureTime",
                      "Xmp.exif.ExposureTime")
    if value is not None:
        seconds = _rational(value)
        if seconds is not None and seconds > 0:
            summary["exposure_time"] = _format_exposure(seconds)
        else:
            bad(key, value)
    else:
        key, value = pick("Exif.Photo.ShutterSpeedValue", "Xmp.exif.ShutterSpeedValue")
        apex = _rational(value)
        if apex is not None and -20 < apex < 30:
            seconds = Fraction(2 ** -float(apex)).limit_denominator(64000)
            summary["exposure_time"] = _format_exposure(seconds)

    key, value = pick("Exif.Photo.FNumber", "Exif.Image.FNumber", "Xmp.exif.FNumber")
    number = _rational(value)
    if value is not None and (number is None or number <= 0):
        bad(key, value)
        number = None
    if number is None:
        apex = _rational(pick("Exif.Photo.ApertureValue", "Xmp.exif.ApertureValue")[1])
        if apex is not None and 0 <= apex < 30:
            number = Fraction(2 ** (float(apex) / 2))
    if number is not None:
        summary["f_number"] = round(float(number), 2)

    key, value = pick("Exif.Photo.ISOSpeedRatings", "Exif.Image.ISOSpeedRatings",
                      "Exif.Photo.RecommendedExposureIndex", "Xmp.exif.ISOSpeedRatings",
                      "Xmp.exifEX.PhotographicSensitivity")
    if value is not None:
        try:
            iso = int(float(value.split()[0]))
            if iso <= 0:
                raise ValueError
            if iso == 65535:  # Exif 2.3: "65535 or more", the real value is stored elsewhere
                more = _rational(pick("Exif.Photo.RecommendedExposureIndex",
                                      "Exif.Photo.StandardOutputSensitivity",
                                      "Exif.Photo.ISOSpeed")[1])
                iso = int(more) if more and more > iso else iso
            summary["iso"] = iso
        except ValueError:
            bad(key, value)

    key, value = pick("Exif.Photo.FocalLength", "Exif.Image.FocalLength", "Xmp.exif.FocalLength")
    focal = _rational(value)
    if focal is not None and focal > 0:
        summary["focal_length"] = round(float(focal), 2)
    elif value is not None:
        bad(key, value)

    summary["date_taken"] = _date_taken(exif, xmp, notes)

    try:
        lat = _gps_exif(exif.get("Exif.GPSInfo.GPSLatitude"),
                        exif.get("Exif.GPSInfo.GPSLatitudeRef"))
        lon = _gps_exif(exif.get("Exif.GPSInfo.GPSLongitude"),
                        exif.get("Exif.GPSInfo.GPSLongitudeRef"))
        if lat is None and lon is None:
            lat = _gps_xmp(_first(xmp.get("Xmp.exif.GPSLatitude")))
            lon = _gps_xmp(_first(xmp.get("Xmp.exif.GPSLongitude")))
        if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180:
            summary["gps_lat"], summary["gps_lon"] = round(lat, 7), round(lon, 7)
        elif lat is not None or lon is not None:
            notes.append(f"ignored incomplete or out-of-range GPS position ({lat}, {lon})")
    except ValueError as exc:
        notes.append(f"ignored GPS position: {exc}")
    key, value = pick("Exif.GPSInfo.GPSAltitude", "Xmp.exif.GPSAltitude")
    altitude = _rational(value)
    if altitude is not None:
        ref = _first(exif.get("Exif.GPSInfo.GPSAltitudeRef")
                     or xmp.get("Xmp.exif.GPSAltitudeRef")) or "0"
        summary["gps_alt"] = round(-float(altitude) if ref.strip() == "1" else float(altitude), 3)
    elif value is not None:
        bad(key, value)

    key, value = pick("Exif.Image.Orientation", "Xmp.tiff.Orientation")
    if value is not None:
        if value.isdigit() and 1 <= int(value) <= 8:
            summary["orientation"] = int(value)
        else:
            bad(key, value)

    key, value = pick("Xmp.xmp.Rating", "Exif.Image.Rating")
    if value is not None:
        try:
            rating = int(float(value))
            if not -1 <= rating <= 5:
                raise ValueError
            summary["rating"] = rating
        except ValueError:
            bad(key, value)

    summary["keywords"] = _keywords(iptc.get("Iptc.Application2.Keywords"),
                                    xmp.get("Xmp.dc.subject"))

    raw: dict[str, str] = {}
    for key in _SUMMARY_TAGS:
        value = _first(exif.get(key))
        if value is not None:
            raw[key] = value
    for key, value in exif.items():
        if key.startswith("Exif.GPSInfo."):
            text = _first(value)
            if text is not None:
                raw[key] = text
    summary["exif"] = raw


def _date_taken(exif: dict, xmp: dict, notes: list[str]) -> str | None:
    for key, subsec, offset in (
        ("Exif.Photo.DateTimeOriginal", "Exif.Photo.SubSecTimeOriginal",
         "Exif.Photo.OffsetTimeOriginal"),
        ("Exif.Photo.DateTimeDigitized", "Exif.Photo.SubSecTimeDigitized",
         "Exif.Photo.OffsetTimeDigitized"),
    ):
        value = _first(exif.get(key))
        if value is None:
            continue
        try:
            return _exif_datetime(value, _first(exif.get(subsec)), _first(exif.get(offset)))
        except ValueError:
            notes.append(f"ignored invalid {key.split('.')[-1]} {value!r}")
    for key in ("Xmp.exif.DateTimeOriginal", "Xmp.photoshop.DateCreated", "Xmp.xmp.CreateDate"):
        value = _first(xmp.get(key))
        if value is None:
            continue
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
        except ValueError:
            notes.append(f"ignored invalid {key.split('.')[-1]} {value!r}")
    return None


def _keywords(*sources: Any) -> list[str]:
    seen: dict[str, None] = {}
    for source in sources:
        if source is None:
            continue
        for item in source if isinstance(source, list) else [source]:
            text = str(item).strip()
            if text:
                seen.setdefault(text, None)
    return list(seen)


def read_record(path: Path) -> dict[str, str]:
    """Return the ``Xmp.photobatch.*`` record of an output, keyed without the prefix."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MetadataError(f"cannot read {Path(path).name}: {exc.strerror or exc}") from exc
    _register_namespace()
    try:
        img = _open(data)
    except RuntimeError as exc:
        raise MetadataError(f"cannot read metadata of {Path(path).name}: {_one_line(exc)}") \
            from exc
    try:
        xmp = _read(img, "xmp")
    finally:
        img.close()
    prefix = f"Xmp.{NAMESPACE_PREFIX}."
    return {k[len(prefix):]: v if isinstance(v, str) else str(_first(v) or "")
            for k, v in xmp.items() if k.startswith(prefix)}


def icc_profile(path: Path) -> bytes | None:
    """Return the embedded ICC profile of ``path``, or None when it has none."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MetadataError(f"cannot read {Path(path).name}: {exc.strerror or exc}") from exc
    try:
        img = _open(data, [])
    except RuntimeError:
        img = None
    if img is not None:
        try:
            with _LOCK:
                profile = img.read_icc()
        finally:
            img.close()
        return profile or None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as pil:
            return pil.info.get("icc_profile") or None
    except Exception as exc:
        raise MetadataError(f"cannot read {Path(path).name}: {_one_line(exc)}") from exc


# ---------------------------------------------------------------- write_output_metadata

# IFD0 tags that describe how a TIFF/RAW file stores its pixels, or embed other metadata
# blocks TIFF-style; in a JPEG output they would describe data that is not there.
_IMAGE_STRUCTURE_TAGS = frozenset({
    "NewSubfileType", "SubfileType", "ImageWidth", "ImageLength", "BitsPerSample",
    "Compression", "PhotometricInterpretation", "Thresholding", "CellWidth", "CellLength",
    "FillOrder", "StripOffsets", "SamplesPerPixel", "RowsPerStrip", "StripByteCounts",
    "PlanarConfiguration", "Predictor", "TileWidth", "TileLength", "TileOffsets",
    "TileByteCounts", "SubIFDs", "ExtraSamples", "SampleFormat", "JPEGTables", "JPEGProc",
    "JPEGInterchangeFormat", "JPEGInterchangeFormatLength", "JPEGRestartInterval",
    "JPEGLosslessPredictors", "JPEGPointTransforms", "JPEGQTables", "JPEGDCTables",
    "JPEGACTables", "YCbCrSubSampling", "XMLPacket", "IPTCNAA", "ImageResources",
    "InterColorProfile", "CFARepeatPatternDim", "CFAPattern", "SensingMethod",
})
# Sensor-level tags that may also sit in the Exif IFD.
_RAW_PHOTO_TAGS = frozenset({"CFAPattern", "SpatialFrequencyResponse"})
# DNG (and CinemaDNG) tag numbers: colour matrices, calibration, black/white levels, crop,
# opcode lists, private data, profiles. None describes a rendered JPEG.
_DNG_TAG_RANGES = ((0xC612, 0xC7FF), (0xCD2D, 0xCD4F))
# exiv2 groups for further IFDs of a RAW (sub-IFDs with the mosaic, IFD2/3 previews, Panasonic's
# RAW IFD0, multi-picture index). Exif.Thumbnail is handled separately: it is regenerated.
_RAW_GROUPS = re.compile(r"^(SubImage\d+|SubThumb\d+|Image\d+|PanasonicRaw|MpfInfo)$")
# Previews embedded in maker notes (Nikon, Olympus, Pentax, Sony...): megabytes that would burst
# the 64 KiB JPEG APP1 segment.
_PREVIEW_TAG = re.compile(r"(Preview|Thumbnail)(Image|Offset|Length|Start)|^PreviewIFD$")
_STANDARD_GROUPS = frozenset({"Image", "Photo", "GPSInfo", "Iop", "Thumbnail"})

# What survives "copyright-only", besides our own record.
_COPYRIGHT_EXIF = frozenset({"Exif.Image.Artist", "Exif.Image.Copyright"})
_COPYRIGHT_IPTC = frozenset({
    "Iptc.Application2.Copyright", "Iptc.Application2.Byline", "Iptc.Application2.BylineTitle",
    "Iptc.Application2.Credit", "Iptc.Application2.Source", "Iptc.Application2.Contact",
})
_COPYRIGHT_XMP_PREFIXES = (
    "Xmp.dc.rights", "Xmp.dc.creator", "Xmp.xmpRights.", "Xmp.photoshop.Credit",
    "Xmp.photoshop.Source", "Xmp.photoshop.AuthorsPosition", "Xmp.iptc.CreatorContactInfo",
    "Xmp.plus.",
)
# Tags that describe the file rather than the photo or the photographer, kept by every policy
# that keeps an EXIF block (colour space and Interop index are colour, not metadata).
_STRUCTURAL_EXIF = frozenset({
    "Exif.Image.Orientation", "Exif.Image.XResolution", "Exif.Image.YResolution",
    "Exif.Image.ResolutionUnit", "Exif.Image.YCbCrPositioning", "Exif.Photo.ExifVersion",
    "Exif.Photo.ComponentsConfiguration", "Exif.Photo.FlashpixVersion",
    "Exif.Photo.ColorSpace", "Exif.Photo.PixelXDimension", "Exif.Photo.PixelYDimension",
    "Exif.Iop.InteroperabilityIndex", "Exif.Iop.InteroperabilityVersion",
})
_STRUCTURAL_IPTC = frozenset({
    "Iptc.Envelope.CharacterSet", "Iptc.Envelope.ModelVersion",
    "Iptc.Application2.RecordVersion",
})
# Defaults for the tags the Exif 2.3 spec requires in a JPEG's EXIF (exiftool -validate checks
# them), filled in only when the source lacks them.
_REQUIRED_EXIF_DEFAULTS = {
    "Exif.Image.XResolution": "72/1",
    "Exif.Image.YResolution": "72/1",
    "Exif.Image.ResolutionUnit": "2",
    "Exif.Photo.ExifVersion": "48 50 51 50",  # "0232"
    "Exif.Photo.ComponentsConfiguration": "1 2 3 0",  # Y Cb Cr -
    "Exif.Photo.FlashpixVersion": "48 49 48 48",  # "0100"
}
_TIFF_FORBIDDEN_EXIF = ("Exif.Photo.ComponentsConfiguration", "Exif.Photo.PixelXDimension",
                        "Exif.Photo.PixelYDimension", "Exif.Photo.CompressedBitsPerPixel")
_XMP_RECORD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@functools.lru_cache(maxsize=1)
def creator_tool() -> str:
    """Return the xmp:CreatorTool value we write: "photobatch <version>"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"photobatch {version('photobatch')}"
    except PackageNotFoundError:
        return "photobatch dev"


def _group(key: str) -> str:
    return key.split(".", 2)[1]


def _is_raw_only(key: str, tag_number: int | None) -> bool:
    _, group, name = key.split(".", 2)
    if _RAW_GROUPS.match(group):
        return True
    if group not in _STANDARD_GROUPS and _PREVIEW_TAG.search(name):
        return True
    if group == "Image":
        if name in _IMAGE_STRUCTURE_TAGS:
            return True
        if tag_number is not None and any(lo <= tag_number <= hi for lo, hi in _DNG_TAG_RANGES):
            return True
    if group == "Photo" and name in _RAW_PHOTO_TAGS:
        return True
    return False


def _is_source_only_xmp(key: str) -> bool:
    # Camera Raw / Lightroom develop settings describe edits of the source's pixels; Adobe
    # applies them to any JPEG that carries them, so our rendered output must not.
    return key.startswith(("Xmp.crs.", "Xmp.crss.", "Xmp.crd."))


def _is_gps_xmp(key: str) -> bool:
    return key.startswith("Xmp.exif.GPS") or "exif:GPS" in key


def _normalise_record(record: dict[str, str]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for key, value in record.items():
        if not isinstance(key, str) or not _XMP_RECORD_KEY.match(key):
            raise ValueError(
                f"record key {key!r} is not a valid XMP property name "
                "(letters, digits, '_' and '-', not starting with a digit)")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError(f"record value for {key!r} must be a string, got "
                            f"{type(value).__name__} (serialise structures with json.dumps)")
        text = str(value)
        if _XML_FORBIDDEN.search(text):
            raise ValueError(f"record value for {key!r} contains characters XML cannot hold")
        clean[key] = text
    return clean


def _thumbnail_jpeg(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        # draft() lets libjpeg decode at 1/2..1/8 scale: a 50 MP output decodes in a blink.
        img.draft("RGB", (THUMBNAIL_LONG_SIDE * 2, THUMBNAIL_LONG_SIDE * 2))
        small = img.convert("RGB")
    small.thumbnail((THUMBNAIL_LONG_SIDE, THUMBNAIL_LONG_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80, optimize=True)
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_output_metadata(
    source: Path,
    output: Path,
    *,
    width: int,
    height: int,
    record: dict[str, str],
    policy: str = "all",
    icc: str = "source",
) -> None:
    """Give ``output`` the metadata of ``source``, filtered by ``policy``, plus our XMP record.

    Copies EXIF, IPTC, XMP and the ICC profile; sets Orientation 1 (the output's pixels are
    upright) and the pixel dimensions to ``width`` x ``height``; drops RAW-only tags; writes a
    fresh EXIF thumbnail from the output's pixels; sets xmp:CreatorTool and one
    ``Xmp.photobatch.<Key>`` per item of ``record``. ``policy``: "all", "no-location" (no GPS),
    "copyright-only" (creator and rights only) or "none" (our record only). ``icc``: "source"
    embeds the source's profile when it has one, "output" keeps what the writer embedded (for
    outputs converted to another colour space). The source is only ever read; the output is
    replaced atomically.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(repr(p) for p in POLICIES)}; "
                         f"got {policy!r}")
    if icc not in ("source", "output"):
        raise ValueError(f"icc must be 'source' or 'output'; got {icc!r}")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    record = _normalise_record(record)
    source, output = Path(source), Path(output)
    try:
        if os.path.samefile(source, output):
            raise ValueError(f"output {output} is the source file itself")
    except OSError:
        pass  # one of them is missing: reported below with a clearer message

    try:
        src_data = source.read_bytes()
    except OSError as exc:
        raise MetadataError(f"cannot read metadata of {source.name}: "
                            f"{exc.strerror or exc}") from exc
    try:
        out_data = output.read_bytes()
    except OSError as exc:
        raise MetadataError(f"cannot write metadata to {output.name}: "
                            f"{exc.strerror or exc}") from exc

    _register_namespace()
    notes: list[str] = []
    try:
        src = _open(src_data, notes)
    except RuntimeError as exc:
        raise MetadataError(f"cannot read metadata of {source.name}: {_one_line(exc)}") from exc
    for note in notes:
        log.warning("metadata of %s: %s", source.name, note)
    try:
        src_icc = src.read_icc() if icc == "source" else b""
        try:
            data = _copy(src, out_data, output.name, policy)
        except MetadataError as exc:
            raise MetadataError(f"cannot write metadata to {output.name}: {exc}") from exc
    finally:
        src.close()

    try:
        data = _rewrite(data, src_icc=src_icc, width=width, height=height, record=record,
                        policy=policy, name=output.name)
    except RuntimeError as exc:
        raise MetadataError(f"cannot write metadata to {output.name}: {_one_line(exc)}") from exc

    try:
        _atomic_write(output, data)
    except OSError as exc:
        raise MetadataError(f"cannot write metadata to {output.name}: "
                            f"{exc.strerror or exc}") from exc


def _copy(src: pyexiv2.ImageData, out_data: bytes, name: str, policy: str) -> bytes:
    try:
        return _copy_into(src, out_data, policy, name, careful=False)
    except MetadataError:
        raise
    except RuntimeError as exc:
        if policy == "none":
            raise MetadataError(_one_line(exc)) from exc
        # Typically a TIFF, RAW or Photoshop source whose EXIF or XMP is larger than the
        # 64 KiB a JPEG segment holds: copy block by block and shed what does not fit.
        log.warning("%s: metadata could not be copied whole (%s); copying block by block",
                    name, _one_line(exc))
    try:
        return _copy_into(src, out_data, policy, name, careful=True)
    except RuntimeError as exc:
        raise MetadataError(_one_line(exc)) from exc


def _copy_into(src: pyexiv2.ImageData, out_data: bytes, policy: str, name: str, *,
               careful: bool) -> bytes:
    try:
        out = _open(out_data)
    except RuntimeError as exc:
        raise MetadataError(f"not an image exiv2 can write: {_one_line(exc)}") from exc
    try:
        with _LOCK:
            # exiv2 refuses to set a comment where the format has none (TIFF) and says so
            # by raising, so ask first.
            has_comment = out.get_access_mode().get("comment") in ("write", "read+write")
            comment = policy == "all" and has_comment
            if policy == "none":
                # Nothing of the source travels; whatever the writer put in goes too.
                out.clear_exif()
                out.clear_iptc()
                out.clear_xmp()
                if has_comment:
                    out.clear_comment()
            elif not careful:
                # The thumbnail and ICC are handled by _rewrite; exiv2 still copies the
                # source's IFD1 along with the EXIF, and _rewrite replaces it.
                src.copy_to_another_image(out, exif=True, iptc=True, xmp=True, comment=comment,
                                          icc=False, thumbnail=False)
            else:
                src.copy_to_another_image(out, exif=False, iptc=True, xmp=False,
                                          comment=comment, icc=False, thumbnail=False)
                try:
                    src.copy_to_another_image(out, exif=True, iptc=False, xmp=False,
                                              comment=False, icc=False, thumbnail=False)
                except RuntimeError as exc:
                    log.warning("%s: EXIF too large (%s); copying the standard tags only, "
                                "without the maker note", name, _one_line(exc))
                    out.clear_exif()
                    _copy_standard_exif(src, out)
                _copy_xmp_shedding(src, out, name)
            return out.get_bytes()
    finally:
        out.close()


def _copy_standard_exif(src: pyexiv2.ImageData, out: pyexiv2.ImageData) -> None:
    detail = src.read_exif_detail(encoding="latin-1")
    tags = {
        key: info["value"] for key, info in detail.items()
        if _group(key) in ("Image", "Photo", "GPSInfo", "Iop")
        and key != "Exif.Photo.MakerNote" and info.get("typeName") != "unknown"
        and not _is_raw_only(key, info.get("tagNumber"))
        and not isinstance(info["value"], list)
    }
    try:
        out.modify_exif(tags, encoding="latin-1")  # latin-1 round-trips the raw bytes
    except RuntimeError:
        out.clear_exif()
        for key, value in tags.items():  # find the ones exiv2 refuses, keep the rest
            try:
                out.modify_exif({key: value}, encoding="latin-1")
            except RuntimeError as exc:
                log.warning("EXIF tag %s not copied: %s", key, _one_line(exc))
                out.modify_exif({key: None})


# XMP that grows without bound in files that went through Photoshop or Lightroom, and that
# describes the source's history rather than the photo.
_BULKY_XMP = ("Xmp.photoshop.DocumentAncestors", "Xmp.xmpMM.History", "Xmp.xmpMM.Ingredients",
              "Xmp.xmpMM.Pantry", "Xmp.xmpMM.Manifest", "Xmp.xmp.Thumbnails")


def _copy_xmp_shedding(src: pyexiv2.ImageData, out: pyexiv2.ImageData, name: str) -> None:
    packet = src.read_raw_xmp(encoding="utf-8")
    if not packet.strip():
        return
    try:
        out.modify_raw_xmp(packet)
        return
    except RuntimeError as exc:
        log.warning("%s: XMP too large (%s); dropping history and ancestors", name,
                    _one_line(exc))
        out.clear_xmp()
    # Prune in a PNG, which has no 64 KiB limit, so exiv2 keeps every value's XMP type.
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    carrier = pyexiv2.ImageData(buf.getvalue())
    try:
        carrier.modify_raw_xmp(packet)
        keys = carrier.read_xmp(encoding="latin-1")
        bulky = [k for k in keys if k.startswith(_BULKY_XMP) or _is_source_only_xmp(k)]
        if bulky:
            carrier.modify_xmp(dict.fromkeys(bulky), encoding="latin-1")
        packet = carrier.read_raw_xmp(encoding="utf-8")
    finally:
        carrier.close()
    try:
        out.modify_raw_xmp(packet)
    except RuntimeError as exc:
        log.warning("%s: XMP still too large (%s); not copied", name, _one_line(exc))
        out.clear_xmp()


def _rewrite(data: bytes, *, src_icc: bytes, width: int, height: int, record: dict[str, str],
             policy: str, name: str) -> bytes:
    # A fresh parse of the copy: the edits below then start from exactly what a reader of
    # the file would see, not from the copy target's in-memory state.
    out = _open(data)
    try:
        with _LOCK:
            mime = out.get_mime_type()
            # Keys are read as Latin-1 and deletions written back as Latin-1, so a key or value
            # in some other encoding round-trips byte for byte; new values are UTF-8.
            exif_detail = out.read_exif_detail(encoding="latin-1")
            iptc = out.read_iptc(encoding="latin-1")
            xmp = out.read_xmp(encoding="latin-1")

            if src_icc and out.read_icc() != src_icc:
                out.modify_icc(src_icc)
            final_icc = out.read_icc()

            drop, exif_set = _exif_changes(exif_detail, policy, width, height, mime,
                                           final_icc)
            if drop:
                out.modify_exif(dict.fromkeys(drop), encoding="latin-1")
            if exif_set:
                out.modify_exif(exif_set)
            drop = [k for k in iptc if _drop_iptc(k, policy)]
            if drop:
                out.modify_iptc(dict.fromkeys(drop), encoding="latin-1")
            drop, xmp_set = _xmp_changes(xmp, policy, width, height, record)
            if drop:
                out.modify_xmp(dict.fromkeys(drop), encoding="latin-1")
            out.modify_xmp(xmp_set)

            if mime == "image/jpeg" and policy != "none":
                _replace_thumbnail(out, name)
            elif out.read_thumbnail():
                out.clear_thumbnail()
            return out.get_bytes()
    finally:
        out.close()


def _exif_changes(detail: dict, policy: str, width: int, height: int, mime: str,
                  icc_profile_bytes: bytes) -> tuple[list[str], dict[str, str]]:
    drop: list[str] = []
    for key, info in detail.items():
        if _group(key) == "Thumbnail":
            continue  # regenerated as a whole by _replace_thumbnail
        gone = _is_raw_only(key, info.get("tagNumber"))
        if policy == "no-location":
            gone = gone or _group(key) == "GPSInfo"
        elif policy == "copyright-only":
            gone = gone or key not in (_COPYRIGHT_EXIF | _STRUCTURAL_EXIF)
        elif policy == "none":
            gone = True
        if gone:
            drop.append(key)
    if policy == "none":
        return drop, {}
    updates = {"Exif.Image.Orientation": "1"}
    if mime == "image/tiff":
        # TIFF keeps its size in IFD0 (exiv2 maintains it); Exif 2.3 allows the pixel
        # dimensions and the components configuration only in compressed files.
        drop += [k for k in _TIFF_FORBIDDEN_EXIF if k in detail and k not in drop]
    else:
        updates["Exif.Photo.PixelXDimension"] = str(width)
        updates["Exif.Photo.PixelYDimension"] = str(height)
    kept = set(detail) - set(drop)
    if mime == "image/jpeg":
        # libjpeg (Pillow) subsamples chroma centred, whatever the camera did.
        updates["Exif.Image.YCbCrPositioning"] = "1"
        for key, value in _REQUIRED_EXIF_DEFAULTS.items():
            if key not in kept:
                updates[key] = value
    if "Exif.Photo.ColorSpace" not in kept:
        # Exif knows sRGB (1) or "uncalibrated" (0xFFFF, i.e. see the ICC profile).
        srgb = not icc_profile_bytes or _is_srgb(icc_profile_bytes)
        updates["Exif.Photo.ColorSpace"] = "1" if srgb else "65535"
    return drop, updates


def _is_srgb(profile: bytes) -> bool:
    from PIL import ImageCms

    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    except Exception:  # a profile LittleCMS cannot parse is no sRGB we can vouch for
        return False
    return "srgb" in description.lower()


def _drop_iptc(key: str, policy: str) -> bool:
    if policy == "copyright-only":
        return key not in (_COPYRIGHT_IPTC | _STRUCTURAL_IPTC)
    return policy == "none"


def _xmp_changes(xmp: dict, policy: str, width: int, height: int,
                 record: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    ours = f"Xmp.{NAMESPACE_PREFIX}."
    drop: list[str] = []
    for key in xmp:
        if key.startswith(ours):
            gone = True  # a re-processed output gets a fresh record, not a mix of two
        elif _is_source_only_xmp(key):
            gone = True
        elif policy == "no-location":
            gone = _is_gps_xmp(key)
        elif policy == "copyright-only":
            gone = not key.startswith(_COPYRIGHT_XMP_PREFIXES)
        else:
            gone = policy == "none"
        if gone:
            drop.append(key)
    kept = set(xmp) - set(drop)
    updates = {
        "Xmp.tiff.Orientation": "1",
        "Xmp.exif.PixelXDimension": str(width),
        "Xmp.exif.PixelYDimension": str(height),
        "Xmp.tiff.ImageWidth": str(width),
        "Xmp.tiff.ImageLength": str(height),
    }
    changes = {k: v for k, v in updates.items() if k in kept}
    changes["Xmp.xmp.CreatorTool"] = creator_tool()
    for key, value in record.items():
        changes[f"{ours}{key}"] = value
    return drop, changes


def _replace_thumbnail(out: pyexiv2.ImageData, name: str) -> None:
    if out.read_thumbnail():
        out.clear_thumbnail()
    thumb = _thumbnail_jpeg(out.get_bytes())
    try:
        out.modify_thumbnail(thumb)
        out.modify_exif({
            "Exif.Thumbnail.XResolution": "72/1",
            "Exif.Thumbnail.YResolution": "72/1",
            "Exif.Thumbnail.ResolutionUnit": "2",
        })
    except RuntimeError as exc:
        log.warning("%s: no EXIF thumbnail (%s)", name, _one_line(exc))
        out.clear_thumbnail()


def dumps_params(params: dict) -> str:
    """Serialise recipe parameters for the ``Params`` record item (sorted keys, compact JSON)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
