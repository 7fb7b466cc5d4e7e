"""The metadata summary the catalog stores for every file: camera, exposure, date, GPS..."""

from __future__ import annotations

import logging
from datetime import datetime
from fractions import Fraction
from pathlib import Path

from photobatch.plugins.metadata.exiv2 import one_line, open_image, read_group
from photobatch.plugins.metadata.pillow_fallback import pillow_exif
from photobatch.plugins.metadata.values import (
    exif_datetime,
    first,
    format_exposure,
    gps_from_exif,
    gps_from_xmp,
    keywords_from,
    rational,
)

log = logging.getLogger(__name__)


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


def _empty_summary() -> dict:
    return {
        "make": None, "model": None, "lens": None, "exposure_time": None, "f_number": None,
        "iso": None, "focal_length": None, "date_taken": None, "gps_lat": None,
        "gps_lon": None, "gps_alt": None, "orientation": None, "rating": None,
        "label": None, "keywords": [], "exif": {}, "warnings": [],
    }


def read_summary(path: Path) -> dict:
    """Summarise a photo's metadata for the catalog; never raises, problems go to "warnings".

    Keys: make, model, lens, exposure_time ("1/250"), f_number, iso, focal_length (mm),
    date_taken (ISO 8601, with the UTC offset when OffsetTimeOriginal is known), gps_lat,
    gps_lon, gps_alt (signed floats), orientation, rating, label (xmp:Label, Lightroom's colour
    label), keywords (list), exif (the raw
    interesting tags as strings) and warnings (list of str). Missing values are None.
    """
    summary = _empty_summary()
    notes: list[str] = summary["warnings"]
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        notes.append(f"cannot read {Path(path).name}: {exc.strerror or one_line(exc)}")
        return summary

    exif: dict = {}
    iptc: dict = {}
    xmp: dict = {}
    try:
        img = open_image(data, notes)
    except Exception as exc:
        notes.append(f"exiv2 cannot read this file: {one_line(exc)}")
        img = None
    if img is not None:
        try:
            exif = read_group(img, "exif", notes)
            iptc = read_group(img, "iptc", notes)
            xmp = read_group(img, "xmp", notes)
        finally:
            img.close()
    if not exif and notes:
        exif = pillow_exif(data, notes)

    try:
        _fill_summary(summary, exif, iptc, xmp)
    except Exception as exc:  # a bug in one parser must not cost the catalog the file
        log.exception("summarising metadata of %s", path)
        notes.append(f"metadata summary incomplete: {one_line(exc)}")
    return summary


def _fill_summary(summary: dict, exif: dict, iptc: dict, xmp: dict) -> None:
    notes: list[str] = summary["warnings"]

    def pick(*keys: str) -> tuple[str | None, str | None]:
        for key in keys:
            source = xmp if key.startswith("Xmp.") else exif
            value = first(source.get(key))
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
        seconds = rational(value)
        if seconds is not None and seconds > 0:
            summary["exposure_time"] = format_exposure(seconds)
        else:
            bad(key, value)
    else:
        key, value = pick("Exif.Photo.ShutterSpeedValue", "Xmp.exif.ShutterSpeedValue")
        apex = rational(value)
        if apex is not None and -20 < apex < 30:
            seconds = Fraction(2 ** -float(apex)).limit_denominator(64000)
            summary["exposure_time"] = format_exposure(seconds)

    key, value = pick("Exif.Photo.FNumber", "Exif.Image.FNumber", "Xmp.exif.FNumber")
    number = rational(value)
    if value is not None and (number is None or number <= 0):
        bad(key, value)
        number = None
    if number is None:
        apex = rational(pick("Exif.Photo.ApertureValue", "Xmp.exif.ApertureValue")[1])
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
                more = rational(pick("Exif.Photo.RecommendedExposureIndex",
                                      "Exif.Photo.StandardOutputSensitivity",
                                      "Exif.Photo.ISOSpeed")[1])
                iso = int(more) if more and more > iso else iso
            summary["iso"] = iso
        except ValueError:
            bad(key, value)

    key, value = pick("Exif.Photo.FocalLength", "Exif.Image.FocalLength", "Xmp.exif.FocalLength")
    focal = rational(value)
    if focal is not None and focal > 0:
        summary["focal_length"] = round(float(focal), 2)
    elif value is not None:
        bad(key, value)

    summary["date_taken"] = _date_taken(exif, xmp, notes)

    try:
        lat = gps_from_exif(exif.get("Exif.GPSInfo.GPSLatitude"),
                        exif.get("Exif.GPSInfo.GPSLatitudeRef"))
        lon = gps_from_exif(exif.get("Exif.GPSInfo.GPSLongitude"),
                        exif.get("Exif.GPSInfo.GPSLongitudeRef"))
        if lat is None and lon is None:
            lat = gps_from_xmp(first(xmp.get("Xmp.exif.GPSLatitude")))
            lon = gps_from_xmp(first(xmp.get("Xmp.exif.GPSLongitude")))
        if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180:
            summary["gps_lat"], summary["gps_lon"] = round(lat, 7), round(lon, 7)
        elif lat is not None or lon is not None:
            notes.append(f"ignored incomplete or out-of-range GPS position ({lat}, {lon})")
    except ValueError as exc:
        notes.append(f"ignored GPS position: {exc}")
    key, value = pick("Exif.GPSInfo.GPSAltitude", "Xmp.exif.GPSAltitude")
    altitude = rational(value)
    if altitude is not None:
        ref = first(exif.get("Exif.GPSInfo.GPSAltitudeRef")
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

    label = first(xmp.get("Xmp.xmp.Label"))
    if label and label.strip():
        summary["label"] = label.strip()

    summary["keywords"] = keywords_from(iptc.get("Iptc.Application2.Keywords"),
                                    xmp.get("Xmp.dc.subject"))

    raw: dict[str, str] = {}
    for key in _SUMMARY_TAGS:
        value = first(exif.get(key))
        if value is not None:
            raw[key] = value
    for key, value in exif.items():
        if key.startswith("Exif.GPSInfo."):
            text = first(value)
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
        value = first(exif.get(key))
        if value is None:
            continue
        try:
            return exif_datetime(value, first(exif.get(subsec)), first(exif.get(offset)))
        except ValueError:
            notes.append(f"ignored invalid {key.split('.')[-1]} {value!r}")
    for key in ("Xmp.exif.DateTimeOriginal", "Xmp.photoshop.DateCreated", "Xmp.xmp.CreateDate"):
        value = first(xmp.get(key))
        if value is None:
            continue
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
        except ValueError:
            notes.append(f"ignored invalid {key.split('.')[-1]} {value!r}")
    return None

