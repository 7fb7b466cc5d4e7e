"""Generated sample photos with camera-like metadata, for ``photobatch demo`` and the tests.

Nothing here is downloaded: the scenes are synthesised with numpy, except "portrait", which uses
``skimage.data.astronaut()`` (a real photo that ships inside scikit-image). The metadata is
written with exiv2 (pyexiv2) the way a camera and a DAM would have left it: EXIF with GPS and an
EXIF thumbnail, IPTC with a UTF-8 character-set marker, XMP with a rating and keywords, and the
sRGB ICC profile. Everything is deterministic for a given seed (byte-identical files).
"""

from __future__ import annotations

import datetime as _dt
import io
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "SCENES",
    "srgb_profile",
    "make_scene",
    "write_sample_photo",
    "write_truncated_jpeg",
    "write_demo_shoot",
]

SCENES = ("landscape", "portrait", "city")

# The inverse of PIL.ImageOps.exif_transpose: applying the EXIF orientation to what we store
# must give the upright picture back. Orientations 2, 3, 4, 5 and 7 are their own inverse;
# 6 and 8 are each other's.
_STORE_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

_THUMB_SIZE = (160, 120)

# A few real maker-note tags per make, in exiv2's names; exiv2 lays out the maker note itself.
_MAKER_NOTES = {
    "FUJIFILM": lambda model, owner: {
        "Exif.Fujifilm.Version": "48 49 51 48", "Exif.Fujifilm.Quality": "NORMAL",
        "Exif.Fujifilm.FilmMode": "0", "Exif.Fujifilm.WhiteBalance": "0"},
    "Canon": lambda model, owner: {
        "Exif.Canon.OwnerName": owner, "Exif.Canon.FirmwareVersion": "Firmware Version 1.3.0"},
}


def srgb_profile() -> bytes:
    """Return Pillow/LittleCMS's built-in sRGB ICC profile with a fixed creation date.

    LittleCMS stamps the current time into the profile header (bytes 24-35), so two calls a
    second apart differ; the header's profile ID is zero (no MD5), so pinning the date is safe
    and keeps sample files byte-identical for a seed.
    """
    from photobatch.plugins.colour import srgb_profile as pinned_srgb

    return pinned_srgb()


# ---------------------------------------------------------------- scenes (upright, H x W x 3)


def _landscape(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    # Asymmetric on purpose: sun top-left, hills rising to the right, dark ground at the
    # bottom, so a picture shown with a wrong rotation or flip is detectable.
    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(0.0, 1.0, width)[None, :]
    top = np.array([70.0, 120.0, 200.0])
    horizon = np.array([200.0, 215.0, 230.0])
    img = top + (horizon - top) * (y[..., None] ** 0.8)
    img = np.broadcast_to(img, (height, width, 3)).copy()

    sx, sy = rng.uniform(0.12, 0.3), rng.uniform(0.12, 0.22)  # always in the top-left
    aspect = width / height
    d = np.sqrt(((x - sx) * aspect) ** 2 + (y - sy) ** 2)
    glow = np.exp(-((d / 0.18) ** 2))[..., None]
    img = img + glow * np.array([55.0, 45.0, 10.0])
    disc = (d < 0.06)[..., None]
    img = np.where(disc, np.array([255.0, 244.0, 200.0]), img)

    phase = rng.uniform(0, 2 * np.pi, size=3)
    far = 0.58 - 0.10 * x + 0.03 * np.sin(7 * x + phase[0]) + 0.015 * np.sin(19 * x + phase[1])
    near = 0.72 - 0.12 * x + 0.04 * np.sin(4 * x + phase[2])
    far_colour = np.array([95.0, 125.0, 150.0])
    img = np.where((y > far)[..., None], far_colour, img)
    depth = np.clip((y - near) / (1.0 - near + 1e-6), 0.0, 1.0)[..., None]
    ground = np.array([70.0, 120.0, 45.0]) * (1.0 - 0.75 * depth)
    img = np.where((y > near)[..., None], ground, img)

    img += rng.normal(0.0, 5.0, size=(height, width, 1))  # luminance grain
    img += rng.normal(0.0, 2.0, size=(height, width, 3))  # chroma grain
    return np.clip(img, 0, 255).astype(np.uint8)


def _city(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    # Dusk skyline: tall towers on the left, a bright orange horizon on the right, a dark
    # street at the bottom: again nothing is symmetric.
    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(0.0, 1.0, width)[None, :]
    top = np.array([40.0, 30.0, 90.0])
    low = np.array([250.0, 150.0, 70.0])
    t = np.clip(y / 0.75, 0, 1) ** 1.5 * (0.55 + 0.45 * x)
    img = top + (low - top) * t[..., None]
    img = np.broadcast_to(img, (height, width, 3)).copy()

    col = 0
    while col < width:
        w = int(rng.integers(max(4, width // 16), max(6, width // 7)))
        left_bias = 1.0 - col / width
        roof = int(height * (0.75 - 0.55 * left_bias * rng.uniform(0.6, 1.0)))
        shade = rng.uniform(25, 55)
        img[roof : int(height * 0.85), col : col + w] = (shade, shade * 0.9, shade * 1.1)
        win = max(2, width // 160)
        for wy in range(roof + 2 * win, int(height * 0.83), 3 * win):
            for wx in range(col + win, col + w - win, 3 * win):
                if rng.random() < 0.45:
                    img[wy : wy + win, wx : wx + win] = (255, 215, 120)
        col += w + int(rng.integers(0, max(2, width // 60)))

    street = int(height * 0.85)
    img[street:] = (30, 30, 35)
    img[street + (height - street) // 2 : street + (height - street) // 2 + max(1, height // 120),
        : width // 2] = (230, 230, 210)  # lane marking only on the left half
    img += rng.normal(0.0, 4.0, size=(height, width, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _portrait(width: int, height: int) -> np.ndarray:
    from skimage import data  # imported here: scikit-image costs ~0.5 s to import

    photo = Image.fromarray(data.astronaut())
    return np.asarray(ImageOps.fit(photo, (width, height), Image.Resampling.LANCZOS,
                                   centering=(0.5, 0.35)))


def make_scene(scene: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Return the upright RGB picture of ``scene`` at ``size`` = (width, height)."""
    width, height = (int(v) for v in size)
    if width < 16 or height < 16:
        raise ValueError(f"size must be at least 16x16 pixels, got {width}x{height}")
    rng = np.random.default_rng(seed)
    if scene == "landscape":
        arr = _landscape(width, height, rng)
    elif scene == "city":
        arr = _city(width, height, rng)
    elif scene == "portrait":
        arr = _portrait(width, height)
    else:
        raise ValueError(f"scene must be one of {', '.join(SCENES)}; got {scene!r}")
    return Image.fromarray(arr, "RGB")


# ---------------------------------------------------------------- metadata helpers


def _rational(value: float, max_den: int = 10000) -> str:
    frac = Fraction(value).limit_denominator(max_den)
    return f"{frac.numerator}/{frac.denominator}"


def _dms(value: float) -> str:
    value = abs(value)
    deg = int(value)
    minutes = int((value - deg) * 60)
    seconds = round(((value - deg) * 60 - minutes) * 60 * 100)
    if seconds >= 6000:  # rounding pushed seconds to 60.00
        seconds -= 6000
        minutes += 1
    return f"{deg}/1 {minutes}/1 {seconds}/100"


def _xmp_gps(value: float, pos: str, neg: str) -> str:
    # XMP's GPSCoordinate form: "DDD,MM.mmmmk".
    ref = pos if value >= 0 else neg
    value = abs(value)
    deg = int(value)
    return f"{deg},{(value - deg) * 60:.6f}{ref}"


def _parse_offset(offset: str) -> _dt.timedelta:
    try:
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = offset[1:].split(":")
        if offset[0] not in "+-" or len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return sign * _dt.timedelta(hours=int(hours), minutes=int(minutes))
    except (ValueError, IndexError):
        raise ValueError(f"offset must look like '+02:00', got {offset!r}") from None


def _xml_escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _xmp_packet(*, rating: int | None, keywords: list[str], artist: str, copyright: str,
                label: str | None = None,
                city: str | None, orientation: int, stored: tuple[int, int],
                create_date: str, gps: tuple[float, float, float | None] | None) -> str:
    # A hand-written packet rather than modify_xmp, because pyexiv2 writes every list as an
    # rdf:Seq while dc:subject must be an rdf:Bag and dc:rights an rdf:Alt. tiff:Orientation
    # and exif:PixelX/YDimension are what a DAM (Lightroom) writes back into a JPEG.
    attrs = [
        f'xmp:CreateDate="{create_date}"',
        f'tiff:Orientation="{orientation}"',
        f'exif:PixelXDimension="{stored[0]}"',
        f'exif:PixelYDimension="{stored[1]}"',
    ]
    if rating is not None:
        attrs.append(f'xmp:Rating="{rating}"')
    if label:
        attrs.append(f'xmp:Label="{_xml_escape(label)}"')
    if city:
        attrs.append(f'photoshop:City="{_xml_escape(city)}"')
    if gps is not None:
        attrs.append(f'exif:GPSLatitude="{_xmp_gps(gps[0], "N", "S")}"')
        attrs.append(f'exif:GPSLongitude="{_xmp_gps(gps[1], "E", "W")}"')
    subjects = "".join(f"<rdf:li>{_xml_escape(k)}</rdf:li>" for k in keywords)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about=""'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
        ' xmlns:exif="http://ns.adobe.com/exif/1.0/"'
        ' xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
        + " ".join(attrs)
        + ">"
        f"<dc:subject><rdf:Bag>{subjects}</rdf:Bag></dc:subject>"
        f"<dc:creator><rdf:Seq><rdf:li>{_xml_escape(artist)}</rdf:li></rdf:Seq></dc:creator>"
        '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">'
        f"{_xml_escape(copyright)}</rdf:li></rdf:Alt></dc:rights>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    )


def _jpeg_bytes(image: Image.Image, quality: int, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality, **kwargs)
    return buf.getvalue()


# ---------------------------------------------------------------- public writers


def write_sample_photo(
    path: Path,
    *,
    size: tuple[int, int] = (640, 480),
    orientation: int = 1,
    make: str = "FUJIFILM",
    model: str = "X-T5",
    lens: str = "XF16-55mmF2.8 R LM WR",
    exposure_time: str = "1/250",
    f_number: float = 5.6,
    iso: int = 200,
    focal_length: float = 23.0,
    date_taken: str = "2026:06:21 19:42:10",
    offset: str | None = "+02:00",
    gps: tuple[float, float, float | None] | None = (48.8584, 2.2945, 35.0),
    icc: bool = True,
    seed: int = 0,
    scene: str = "landscape",
    quality: int = 92,
    lens_make: str | None = None,
    software: str | None = None,
    artist: str = "Jane Doe",
    copyright: str = "Copyright 2026 Jane Doe, all rights reserved",
    keywords: tuple[str, ...] = ("sample", "photobatch"),
    city: str | None = "Paris",
    rating: int | None = 3,
    label: str | None = None,
    crop_factor: float = 1.5,
    maker_note: bool = True,
) -> Path:
    """Write a camera-like JPEG of ``scene`` and return its path.

    ``size`` is the upright (displayed) size; the stored pixels are transposed so that applying
    ``orientation`` (as ``PIL.ImageOps.exif_transpose`` does) gives the upright picture back.
    ``date_taken`` uses EXIF's "YYYY:MM:DD HH:MM:SS"; ``offset`` is its UTC offset ("+02:00",
    or None to leave OffsetTime* out); ``gps`` is (lat, lon, altitude in metres or None),
    signed, or None for no GPS at all. ``maker_note`` adds a small maker note in the make's own
    format (FUJIFILM and Canon; exiv2 builds it). The same arguments give a byte-identical file.
    """
    import pyexiv2

    path = Path(path)
    if orientation not in range(1, 9):
        raise ValueError(f"orientation must be 1..8, got {orientation!r}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be 1..100, got {quality!r}")
    try:
        taken = _dt.datetime.strptime(date_taken, "%Y:%m:%d %H:%M:%S")
    except ValueError:
        raise ValueError(
            f"date_taken must look like '2026:06:21 19:42:10', got {date_taken!r}") from None
    delta = _parse_offset(offset) if offset is not None else None
    exposure = Fraction(exposure_time)  # raises ValueError on garbage like "fast"

    upright = make_scene(scene, size, seed)
    method = _STORE_TRANSPOSE.get(orientation)
    stored = upright.transpose(method) if method is not None else upright

    save_kwargs = {"icc_profile": srgb_profile()} if icc else {}
    data = _jpeg_bytes(stored, int(quality), **save_kwargs)

    stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
    exif = {
        "Exif.Image.Make": make,
        "Exif.Image.Model": model,
        "Exif.Image.Orientation": str(orientation),
        "Exif.Image.XResolution": "72/1",
        "Exif.Image.YResolution": "72/1",
        "Exif.Image.ResolutionUnit": "2",
        "Exif.Image.Software": software or f"{model} Ver1.10",
        "Exif.Image.DateTime": stamp,
        "Exif.Image.Artist": artist,
        "Exif.Image.Copyright": copyright,
        "Exif.Image.YCbCrPositioning": "2",
        "Exif.Photo.ExposureTime": f"{exposure.numerator}/{exposure.denominator}",
        "Exif.Photo.FNumber": _rational(f_number, 100),
        "Exif.Photo.ExposureProgram": "3",
        "Exif.Photo.ISOSpeedRatings": str(int(iso)),
        "Exif.Photo.SensitivityType": "1",
        "Exif.Photo.ExifVersion": "48 50 51 50",  # "0232": OffsetTime* needs Exif 2.31+
        "Exif.Photo.DateTimeOriginal": stamp,
        "Exif.Photo.DateTimeDigitized": stamp,
        "Exif.Photo.ComponentsConfiguration": "1 2 3 0",
        "Exif.Photo.ExposureBiasValue": "0/1",
        "Exif.Photo.MeteringMode": "5",
        "Exif.Photo.Flash": "16",
        "Exif.Photo.FocalLength": _rational(focal_length, 100),
        "Exif.Photo.FlashpixVersion": "48 49 48 48",
        "Exif.Photo.ColorSpace": "1",
        "Exif.Photo.PixelXDimension": str(stored.width),
        "Exif.Photo.PixelYDimension": str(stored.height),
        "Exif.Photo.FocalLengthIn35mmFilm": str(int(round(focal_length * crop_factor))),
        "Exif.Photo.ExposureMode": "0",
        "Exif.Photo.WhiteBalance": "0",
        "Exif.Photo.SceneCaptureType": "0",
        "Exif.Photo.BodySerialNumber": f"{zlib.crc32(model.encode()):08X}",
        "Exif.Photo.LensMake": lens_make or make,
        "Exif.Photo.LensModel": lens,
    }
    if delta is not None:
        exif["Exif.Photo.OffsetTime"] = offset
        exif["Exif.Photo.OffsetTimeOriginal"] = offset
        exif["Exif.Photo.OffsetTimeDigitized"] = offset
    if gps is not None:
        lat, lon, alt = gps
        exif.update({
            "Exif.GPSInfo.GPSVersionID": "2 3 0 0",
            "Exif.GPSInfo.GPSLatitudeRef": "N" if lat >= 0 else "S",
            "Exif.GPSInfo.GPSLatitude": _dms(lat),
            "Exif.GPSInfo.GPSLongitudeRef": "E" if lon >= 0 else "W",
            "Exif.GPSInfo.GPSLongitude": _dms(lon),
            "Exif.GPSInfo.GPSMapDatum": "WGS-84",
        })
        if alt is not None:
            exif["Exif.GPSInfo.GPSAltitudeRef"] = "0" if alt >= 0 else "1"
            exif["Exif.GPSInfo.GPSAltitude"] = _rational(abs(alt), 100)
        if delta is not None:
            utc = taken - delta
            exif["Exif.GPSInfo.GPSDateStamp"] = utc.strftime("%Y:%m:%d")
            exif["Exif.GPSInfo.GPSTimeStamp"] = f"{utc.hour}/1 {utc.minute}/1 {utc.second}/1"

    iptc = {
        # ESC % G declares the IPTC strings UTF-8; without it readers guess Latin-1.
        "Iptc.Envelope.CharacterSet": "\x1b%G",
        "Iptc.Application2.RecordVersion": "4",
        "Iptc.Application2.Keywords": list(keywords),
        "Iptc.Application2.Byline": [artist],
        "Iptc.Application2.Copyright": copyright,
        "Iptc.Application2.DateCreated": taken.strftime("%Y-%m-%d"),
    }
    if city:
        iptc["Iptc.Application2.City"] = city

    create_date = taken.strftime("%Y-%m-%dT%H:%M:%S") + (offset or "")
    xmp = _xmp_packet(rating=rating, label=label, keywords=list(keywords), artist=artist,
                      copyright=copyright, city=city, orientation=orientation,
                      stored=stored.size, create_date=create_date, gps=gps)

    # Camera thumbnails are in sensor orientation and letterboxed to 160x120.
    thumb = _jpeg_bytes(ImageOps.pad(stored, _THUMB_SIZE, Image.Resampling.BILINEAR), 85)

    meta = pyexiv2.ImageData(data)
    try:
        meta.modify_exif(exif)
        if maker_note and make in _MAKER_NOTES:
            meta.modify_exif(_MAKER_NOTES[make](model, artist))
        meta.modify_iptc(iptc)
        meta.modify_raw_xmp(xmp)
        meta.modify_thumbnail(thumb)
        meta.modify_exif({
            "Exif.Thumbnail.XResolution": "72/1",
            "Exif.Thumbnail.YResolution": "72/1",
            "Exif.Thumbnail.ResolutionUnit": "2",
        })
        out = meta.get_bytes()
    finally:
        meta.close()

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)
    return path


def write_truncated_jpeg(path: Path, source_path: Path) -> Path:
    """Write the first ~40 % of ``source_path``'s bytes to ``path`` (a half-copied file)."""
    data = Path(source_path).read_bytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: max(1, int(len(data) * 0.4))])
    return path


def write_demo_shoot(folder: Path) -> list[Path]:
    """Write a small, varied shoot (two cameras, four orientations/dates) into ``folder``.

    Every picture stays at most 1024 px a side so the demo is quick on a CPU.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    canon = dict(make="Canon", model="Canon EOS R6m2", lens="RF24-105mm F4 L IS USM",
                 lens_make="Canon", software="Firmware Version 1.3.0", crop_factor=1.0)
    return [
        write_sample_photo(folder / "DSCF0001.JPG", size=(768, 512), orientation=1,
                           scene="landscape", seed=1, date_taken="2026:06:21 19:42:10",
                           keywords=("Paris", "sunset", "landscape"), rating=4),
        write_sample_photo(folder / "DSCF0002.JPG", size=(512, 768), orientation=6,
                           scene="city", seed=2, exposure_time="1/60", f_number=2.8,
                           iso=1600, focal_length=16.0, date_taken="2026:06:21 21:05:33",
                           keywords=("Paris", "city", "dusk"), rating=3),
        write_sample_photo(folder / "IMG_0420.JPG", size=(512, 640), orientation=1,
                           scene="portrait", seed=3, exposure_time="1/125", f_number=4.0,
                           iso=400, focal_length=85.0, date_taken="2026:07:04 10:15:00",
                           offset="-04:00", gps=(28.5729, -80.6490, 3.0),
                           city="Cape Canaveral", keywords=("portrait", "astronaut"),
                           rating=5, **canon),
        write_sample_photo(folder / "IMG_0421.JPG", size=(768, 512), orientation=8,
                           scene="landscape", seed=4, exposure_time="1/500", f_number=8.0,
                           iso=100, focal_length=24.0, date_taken="2026:07:05 07:30:45",
                           offset="-04:00", gps=(28.3922, -80.6077, None),
                           city="Cocoa Beach", keywords=("beach", "morning"),
                           rating=None, **canon),
    ]
