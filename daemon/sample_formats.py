"""Sample photos in the other formats a photographer brings: DNG, 16-bit TIFF, PNG and HEIC.

Each carries the same camera-like metadata as the JPEG samples of ``samples.py``. The DNG is a
real mosaic RAW written with pidng: a 12-bit RGGB sensor whose colour matrix makes it a linear
sRGB camera, so LibRaw renders it back to the scene; its EXIF and GPS live in proper sub-IFDs
(pidng cannot write those as shipped: see ``_SubIfdTag``). The others get their pixels from the
scene and their metadata copied from a sample JPEG by exiv2.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from photobatch.daemon import samples

# XYZ (D65) -> linear sRGB: as a DNG ColorMatrix1 it declares the sensor a linear sRGB camera.
_XYZ_TO_LINEAR_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                                [-0.9692660, 1.8760108, 0.0415560],
                                [0.0556434, -0.2040259, 1.0572252]])


def _stored(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels as a camera stores them, so that applying ``orientation`` makes them upright."""
    method = samples._STORE_TRANSPOSE.get(orientation)
    return upright.transpose(method) if method is not None else upright


def _linear(srgb: np.ndarray) -> np.ndarray:
    v = srgb.astype(np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _fraction(value: float | str, max_den: int = 10000) -> list[int]:
    frac = Fraction(value).limit_denominator(max_den)
    return [frac.numerator, frac.denominator]


def _dms(value: float) -> list[list[int]]:
    return [[int(p.split("/")[0]), int(p.split("/")[1])] for p in samples._dms(value).split()]


def write_sample_dng(
    path: Path,
    *,
    size: tuple[int, int] = (384, 256),
    orientation: int = 1,
    make: str = "Canon",
    model: str = "Canon EOS R5",
    lens: str = "RF24-105mm F4 L IS USM",
    exposure_time: str = "1/250",
    f_number: float = 5.6,
    iso: int = 200,
    focal_length: float = 35.0,
    date_taken: str = "2026:06:21 19:42:10",
    offset: str | None = "+02:00",
    gps: tuple[float, float, float | None] | None = (48.8584, 2.2945, 35.0),
    scene: str = "landscape",
    seed: int = 0,
    artist: str = "Jane Doe",
    copyright: str = "Copyright 2026 Jane Doe, all rights reserved",
    keywords: tuple[str, ...] = ("sample", "raw"),
    rating: int | None = 4,
) -> Path:
    """Write a 12-bit mosaic DNG of ``scene`` whose upright rendering is ``size``; return its path.

    Make/model/date sit in IFD0, exposure and lens in the Exif sub-IFD, position in the GPS
    sub-IFD, rating and keywords in the XMP packet, as cameras and Adobe DNG Converter do.
    """
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.dng import Type, dngTag

    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"a Bayer mosaic needs even sides, got {width}x{height}")
    if orientation not in range(1, 9):
        raise ValueError(f"orientation must be 1..8, got {orientation!r}")
    taken = _dt.datetime.strptime(date_taken, "%Y:%m:%d %H:%M:%S")
    stored = np.asarray(_stored(samples.make_scene(scene, size, seed), orientation))
    lin = _linear(stored)
    h, w = lin.shape[:2]
    mosaic = np.empty((h, w))
    mosaic[0::2, 0::2] = lin[0::2, 0::2, 0]  # R G
    mosaic[0::2, 1::2] = lin[0::2, 1::2, 1]  # G B
    mosaic[1::2, 0::2] = lin[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = lin[1::2, 1::2, 2]
    white = 4095
    raw = np.round(mosaic * white).astype(np.uint16)

    t = DNGTags()
    for tag, value in (
        (Tag.ImageWidth, w), (Tag.ImageLength, h), (Tag.TileWidth, w), (Tag.TileLength, h),
        (Tag.Orientation, orientation), (Tag.PhotometricInterpretation, 32803),
        (Tag.SamplesPerPixel, 1), (Tag.BitsPerSample, 12), (Tag.CFARepeatPatternDim, [2, 2]),
        (Tag.CFAPattern, [0, 1, 1, 2]), (Tag.BlackLevel, 0), (Tag.WhiteLevel, white),
        (Tag.ColorMatrix1, [[round(v * 10000), 10000] for v in _XYZ_TO_LINEAR_SRGB.flat]),
        (Tag.CalibrationIlluminant1, 21),  # D65
        (Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]]),
        (Tag.Make, make), (Tag.Model, model), (Tag.UniqueCameraModel, f"{make} {model}"),
        (Tag.DateTime, taken.strftime("%Y:%m:%d %H:%M:%S")), (Tag.Artist, artist),
        (Tag.Copyright, copyright),
    ):
        t.set(tag, value)
    xmp = samples._xmp_packet(
        rating=rating, keywords=list(keywords), artist=artist, copyright=copyright, city=None,
        orientation=orientation, stored=(w, h), gps=None,
        create_date=taken.strftime("%Y-%m-%dT%H:%M:%S") + (offset or ""))
    # TIFF wants the XMP packet as BYTE; pidng's table says UNDEFINED.
    t.__tags__[700] = dngTag((700, Type.Byte), list(xmp.encode("utf-8")))
    stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
    exif = [
        ((33434, "Rational"), [_fraction(exposure_time)]),
        ((33437, "Rational"), [_fraction(f_number, 100)]),
        ((34850, "Short"), [3]), ((34855, "Short"), [iso]), ((34864, "Short"), [1]),
        ((36864, "Undefined"), list(b"0232")), ((36867, "Ascii"), stamp), ((36868, "Ascii"), stamp),
        ((37386, "Rational"), [_fraction(focal_length, 100)]),
        ((42035, "Ascii"), make), ((42036, "Ascii"), lens),
    ]
    if offset is not None:
        exif += [((36880, "Ascii"), offset), ((36881, "Ascii"), offset), ((36882, "Ascii"), offset)]
    _set_sub_ifd(t, 34665, exif)
    if gps is not None:
        lat, lon, alt = gps
        entries = [((0, "Byte"), [2, 3, 0, 0]), ((1, "Ascii"), "N" if lat >= 0 else "S"),
                   ((2, "Rational"), _dms(lat)), ((3, "Ascii"), "E" if lon >= 0 else "W"),
                   ((4, "Rational"), _dms(lon)), ((18, "Ascii"), "WGS-84")]
        if alt is not None:
            entries += [((5, "Byte"), [0 if alt >= 0 else 1]),
                        ((6, "Rational"), [_fraction(abs(alt), 100)])]
        _set_sub_ifd(t, 34853, entries)

    writer = RAW2DNG()
    writer.options(t, path="", compress=False)  # pidng's lossless JPEG fails on Python 3.11
    data = bytes(writer.convert(raw))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _set_sub_ifd(tags, tag_id: int, entries) -> None:
    """Put a sub-IFD (Exif 34665, GPS 34853) of ``entries`` ((id, type name), value) in IFD0."""
    from pidng.dng import Type, dngIFD, dngTag

    ifd = dngIFD()
    for (number, type_name), value in entries:
        ifd.tags.append(dngTag((number, getattr(Type, type_name)), value))
    tags.__tags__[tag_id] = _sub_ifd_tag_class()((tag_id, Type.IFD), [ifd])


def _sub_ifd_tag_class():
    from pidng.dng import Type, dngTag

    class _SubIfdTag(dngTag):
        # pidng 4.0.9's setValue builds an IFD tag's value as a str and then appends bytes to
        # it (TypeError); the value of an IFD pointer is written later from the sub-IFD's
        # offset, so 4 zero bytes and the kept sub-IFD object are all it needs.
        def setValue(self, value):  # noqa: N802 (pidng's name)
            if self.DataType == Type.IFD:
                self.Value = b"\x00\x00\x00\x00"
                self.subIFD = value[0]
            else:
                super().setValue(value)

    return _SubIfdTag


def _metadata_donor(directory: Path, orientation: int, size: tuple[int, int], **photo) -> Path:
    """A sample JPEG whose metadata the other formats copy (exiv2 does the copying)."""
    return samples.write_sample_photo(Path(directory) / "donor.jpg", size=(max(16, size[0] // 8),
                                      max(16, size[1] // 8)), orientation=orientation, **photo)


def _copy_metadata(donor: Path, target: Path, orientation: int) -> None:
    import pyexiv2

    src = pyexiv2.ImageData(donor.read_bytes())
    out = pyexiv2.ImageData(target.read_bytes())
    try:
        src.copy_to_another_image(out, exif=True, iptc=True, xmp=True, comment=False, icc=False,
                                  thumbnail=False)
        out.modify_exif({"Exif.Image.Orientation": str(orientation)})
        # The donor's JPEG-only tags would describe data a TIFF or PNG does not have.
        gone = [k for k in ("Exif.Photo.ComponentsConfiguration", "Exif.Image.YCbCrPositioning",
                            "Exif.Photo.PixelXDimension", "Exif.Photo.PixelYDimension")
                if k in out.read_exif()]
        if gone:
            out.modify_exif(dict.fromkeys(gone))
        data = out.get_bytes()
    finally:
        src.close()
        out.close()
    target.write_bytes(data)


def write_sample_tiff16(path: Path, *, size: tuple[int, int] = (384, 256), orientation: int = 1,
                        scene: str = "landscape", seed: int = 0, **photo) -> Path:
    """Write a 16-bit RGB TIFF (Deflate, sRGB profile) with camera metadata; return its path.

    The low byte of every sample carries a smooth ramp, so the file holds more than 8 bits of
    real information and a reader that keeps only 8 bits is detectable.
    """
    import tifffile

    path = Path(path)
    upright = np.asarray(samples.make_scene(scene, size, seed), dtype=np.uint16) * 257
    ramp = np.linspace(0, 255, size[0], dtype=np.uint16)[None, :, None]
    upright16 = np.clip(upright.astype(np.int32) - 128 + ramp, 0, 65535).astype(np.uint16)
    stored = _orient16(upright16, orientation)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, stored, photometric="rgb", compression="zlib", predictor=True,
                     iccprofile=samples.srgb_profile(), resolution=(300, 300),
                     resolutionunit="INCH", metadata=None, software=None)
    with tempfile.TemporaryDirectory() as tmp:
        _copy_metadata(_metadata_donor(Path(tmp), orientation, size, scene=scene, seed=seed,
                                       **photo), path, orientation)
    return path


def sample_tiff16_pixels(size: tuple[int, int], scene: str = "landscape", seed: int = 0
                         ) -> np.ndarray:
    """The upright 16-bit pixels ``write_sample_tiff16`` stores (for tests to compare with)."""
    upright = np.asarray(samples.make_scene(scene, size, seed), dtype=np.uint16) * 257
    ramp = np.linspace(0, 255, size[0], dtype=np.uint16)[None, :, None]
    return np.clip(upright.astype(np.int32) - 128 + ramp, 0, 65535).astype(np.uint16)


def _orient16(upright: np.ndarray, orientation: int) -> np.ndarray:
    # The inverse of the EXIF transform, as _STORE_TRANSPOSE is for Pillow images.
    inverse = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
               5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, 1),
               7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, -1)}
    op = inverse.get(orientation)
    return np.ascontiguousarray(op(upright)) if op else upright


def write_sample_png(path: Path, *, size: tuple[int, int] = (256, 192), bits: int = 8,
                     mode: str = "RGB", scene: str = "landscape", seed: int = 0,
                     metadata: bool = True, **photo) -> Path:
    """Write a PNG in ``mode`` (RGB, RGBA, L, LA, P) at ``bits`` (8 or 16; 16 for RGB and L).

    RGBA/LA get a transparent left third; P is quantised to 64 colours. ``metadata`` copies the
    sample camera metadata in (eXIf, iTXt XMP) and embeds the sRGB profile for RGB modes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = samples.make_scene(scene, size, seed)
    icc = samples.srgb_profile() if metadata and mode in ("RGB", "RGBA", "P") else None
    if bits == 16 and mode == "RGB":
        _write_png16(path, sample_tiff16_pixels(size, scene, seed))
    elif bits == 16 and mode == "L":
        grey = np.asarray(picture.convert("L"), dtype=np.uint16) * 257
        Image.fromarray(grey).save(path, "PNG")  # a uint16 array is mode I;16
    elif bits == 8:
        image = _png_mode(picture, mode)
        image.save(path, "PNG", **({"icc_profile": icc} if icc else {}))
    else:
        raise ValueError(f"bits must be 8, or 16 for RGB and L; got {bits} for {mode}")
    if metadata:
        with tempfile.TemporaryDirectory() as tmp:
            _copy_metadata(_metadata_donor(Path(tmp), 1, size, scene=scene, seed=seed, **photo),
                           path, 1)
    return path


def _png_mode(picture: Image.Image, mode: str) -> Image.Image:
    if mode in ("RGB", "L"):
        return picture.convert(mode)
    if mode == "P":
        return picture.quantize(64)
    if mode in ("RGBA", "LA"):
        image = picture.convert(mode)
        alpha = np.full((picture.height, picture.width), 255, np.uint8)
        alpha[:, : picture.width // 3] = 0
        image.putalpha(Image.fromarray(alpha, "L"))
        return image
    raise ValueError(f"mode must be RGB, RGBA, L, LA or P; got {mode!r}")


def _write_png16(path: Path, pixels: np.ndarray) -> None:
    import png

    height, width, _ = pixels.shape
    writer = png.Writer(width, height, greyscale=False, bitdepth=16)
    with open(path, "wb") as fh:
        writer.write_packed(fh, (row.astype(">u2").tobytes() for row in pixels.reshape(height, -1)))


def write_sample_heic(path: Path, *, size: tuple[int, int] = (320, 240), orientation: int = 1,
                      scene: str = "landscape", seed: int = 0, quality: int = 90,
                      **photo) -> Path:
    """Write a HEIC with camera EXIF, XMP and the sRGB profile, stored as a camera would.

    pillow-heif turns the EXIF orientation into HEIF's rotation boxes, which every reader
    applies; the EXIF keeps the Orientation value for the record.
    """
    import pillow_heif

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        donor = _metadata_donor(Path(tmp), orientation, size, scene=scene, seed=seed, **photo)
        with Image.open(donor) as img:
            exif, xmp = img.info.get("exif"), img.info.get("xmp")
    stored = _stored(samples.make_scene(scene, size, seed), orientation)
    heif = pillow_heif.from_pillow(stored)
    heif.save(path, quality=quality, exif=exif, xmp=xmp, icc_profile=samples.srgb_profile())
    return path
