"""Generated sample photos: pixels, orientation and camera-like metadata."""

from __future__ import annotations

import io

import numpy as np
import pyexiv2
import pytest
from PIL import Image, ImageOps

from photobatch.daemon.samples import (
    make_scene,
    srgb_profile,
    write_demo_shoot,
    write_sample_photo,
    write_truncated_jpeg,
)


def small(image: Image.Image, size=(24, 16)) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize(size, Image.Resampling.BOX), dtype=float)


def test_sample_has_the_exif_it_was_given(tmp_path, read_meta):
    path = write_sample_photo(
        tmp_path / "a.jpg", make="Canon", model="Canon EOS R6m2", lens="RF50mm F1.8 STM",
        exposure_time="1/125", f_number=1.8, iso=3200, focal_length=50.0,
        date_taken="2025:12:31 23:59:58", offset="-05:00", gps=(-33.8568, -151.2153, -12.5))
    exif, iptc, xmp = read_meta(path)
    assert exif["Exif.Image.Make"] == "Canon"
    assert exif["Exif.Image.Model"] == "Canon EOS R6m2"
    assert exif["Exif.Photo.LensModel"] == "RF50mm F1.8 STM"
    assert exif["Exif.Photo.ExposureTime"] == "1/125"
    assert exif["Exif.Photo.FNumber"] == "9/5"
    assert exif["Exif.Photo.ISOSpeedRatings"] == "3200"
    assert exif["Exif.Photo.FocalLength"] == "50/1"
    assert exif["Exif.Photo.DateTimeOriginal"] == "2025:12:31 23:59:58"
    assert exif["Exif.Photo.DateTimeDigitized"] == "2025:12:31 23:59:58"
    assert exif["Exif.Image.DateTime"] == "2025:12:31 23:59:58"
    assert exif["Exif.Photo.OffsetTimeOriginal"] == "-05:00"
    assert exif["Exif.Image.Orientation"] == "1"
    for key in ("Exif.Image.Artist", "Exif.Image.Copyright", "Exif.Image.Software"):
        assert exif[key], key
    assert exif["Exif.GPSInfo.GPSLatitudeRef"] == "S"
    assert exif["Exif.GPSInfo.GPSLongitudeRef"] == "W"
    assert exif["Exif.GPSInfo.GPSAltitudeRef"] == "1"
    # GPS time is UTC: 23:59:58 at -05:00 is 04:59:58 the next day.
    assert exif["Exif.GPSInfo.GPSDateStamp"] == "2026:01:01"
    assert exif["Exif.GPSInfo.GPSTimeStamp"] == "4/1 59/1 58/1"
    assert exif["Exif.Photo.PixelXDimension"] == "640"
    assert exif["Exif.Photo.PixelYDimension"] == "480"
    assert iptc["Iptc.Application2.Keywords"] == ["sample", "photobatch"]
    assert iptc["Iptc.Application2.City"] == "Paris"
    assert xmp["Xmp.xmp.Rating"] == "3"
    assert xmp["Xmp.dc.subject"] == ["sample", "photobatch"]


def test_sample_reads_back_through_read_summary(tmp_path):
    from photobatch.plugins.metadata import read_summary

    path = write_sample_photo(tmp_path / "b.jpg", gps=(40.6892, -74.0445, None), offset="+05:30")
    summary = read_summary(path)
    assert summary["warnings"] == []
    assert (summary["make"], summary["model"]) == ("FUJIFILM", "X-T5")
    assert summary["date_taken"] == "2026-06-21T19:42:10+05:30"
    assert summary["gps_lat"] == pytest.approx(40.6892, abs=1e-5)
    assert summary["gps_lon"] == pytest.approx(-74.0445, abs=1e-5)
    assert summary["gps_alt"] is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_transpose_gives_the_upright_picture(tmp_path, orientation):
    size = (96, 64)
    path = write_sample_photo(tmp_path / f"o{orientation}.jpg", size=size,
                              orientation=orientation, seed=5, quality=95)
    with Image.open(path) as stored:
        expected_stored = size if orientation <= 4 else size[::-1]
        assert stored.size == expected_stored
        assert stored.getexif().get(0x0112) == orientation
        upright = ImageOps.exif_transpose(stored)
    assert upright.size == size
    reference = small(make_scene("landscape", size, seed=5))
    assert np.abs(small(upright) - reference).mean() < 4.0
    # The scene is asymmetric enough that any wrong transform would be caught.
    for method in (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM):
        assert np.abs(small(upright.transpose(method)) - reference).mean() > 12.0


@pytest.mark.parametrize("scene", ["landscape", "city", "portrait"])
def test_scenes_are_asymmetric(scene):
    image = make_scene(scene, (160, 120), seed=0)
    assert image.size == (160, 120) and image.mode == "RGB"
    arr = small(image, (32, 24))
    assert np.abs(arr - arr[:, ::-1]).mean() > 8.0  # left/right mirror is detectable
    assert np.abs(arr - arr[::-1]).mean() > 8.0  # upside down is detectable


def test_landscape_has_sun_top_left_and_dark_ground():
    grey = np.asarray(make_scene("landscape", (200, 150), seed=3).convert("L"), dtype=float)
    h, w = grey.shape
    top_left = grey[: h // 3, : w // 2].max()
    top_right = grey[: h // 3, w // 2 :].max()
    assert top_left > top_right + 10
    assert grey[-h // 8 :].mean() < grey[: h // 3].mean() - 60


def test_same_seed_same_bytes_other_seed_other_picture(tmp_path):
    a = write_sample_photo(tmp_path / "a.jpg", size=(128, 96), seed=7)
    b = write_sample_photo(tmp_path / "b.jpg", size=(128, 96), seed=7)
    c = write_sample_photo(tmp_path / "c.jpg", size=(128, 96), seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_icc_profile_optional_and_stable(tmp_path):
    with_icc = write_sample_photo(tmp_path / "icc.jpg", size=(64, 48))
    without = write_sample_photo(tmp_path / "noicc.jpg", size=(64, 48), icc=False)
    with Image.open(with_icc) as img:
        assert img.info["icc_profile"] == srgb_profile()
    with Image.open(without) as img:
        assert "icc_profile" not in img.info
    assert srgb_profile() == srgb_profile()
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile()))
    assert "sRGB" in ImageCms.getProfileDescription(profile)


def test_no_gps_means_no_gps_anywhere(tmp_path, read_meta):
    path = write_sample_photo(tmp_path / "nogps.jpg", size=(64, 48), gps=None, offset=None)
    exif, _, xmp = read_meta(path)
    assert not [k for k in exif if "GPS" in k]
    assert not [k for k in xmp if "GPS" in k]
    assert "Exif.Photo.OffsetTimeOriginal" not in exif


def test_camera_like_thumbnail(tmp_path):
    path = write_sample_photo(tmp_path / "t.jpg", size=(300, 200), orientation=6)
    img = pyexiv2.ImageData(path.read_bytes())
    try:
        thumb = img.read_thumbnail()
    finally:
        img.close()
    with Image.open(io.BytesIO(thumb)) as t:
        assert t.format == "JPEG" and t.size == (160, 120)


def test_truncated_jpeg_is_broken(tmp_path):
    source = write_sample_photo(tmp_path / "full.jpg", size=(256, 192))
    cut = write_truncated_jpeg(tmp_path / "half.jpg", source)
    ratio = cut.stat().st_size / source.stat().st_size
    assert 0.35 < ratio < 0.45
    assert cut.read_bytes() == source.read_bytes()[: cut.stat().st_size]
    with pytest.raises(OSError):
        with Image.open(cut) as img:
            img.load()


def test_invalid_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="orientation"):
        write_sample_photo(tmp_path / "x.jpg", orientation=9)
    with pytest.raises(ValueError, match="scene"):
        write_sample_photo(tmp_path / "x.jpg", scene="moon")
    with pytest.raises(ValueError, match="date_taken"):
        write_sample_photo(tmp_path / "x.jpg", date_taken="yesterday")
    with pytest.raises(ValueError, match="offset"):
        write_sample_photo(tmp_path / "x.jpg", offset="2h")
    assert not (tmp_path / "x.jpg").exists()


def test_demo_shoot(tmp_path, read_meta):
    paths = write_demo_shoot(tmp_path / "shoot")
    assert [p.name for p in paths] == ["DSCF0001.JPG", "DSCF0002.JPG", "IMG_0420.JPG",
                                       "IMG_0421.JPG"]
    makes, orientations, dates = set(), set(), set()
    for path in paths:
        exif, _, _ = read_meta(path)
        makes.add(exif["Exif.Image.Make"])
        orientations.add(int(exif["Exif.Image.Orientation"]))
        dates.add(exif["Exif.Photo.DateTimeOriginal"])
        with Image.open(path) as img:
            assert max(img.size) <= 1024
    assert makes == {"FUJIFILM", "Canon"}
    assert {1, 6, 8} <= orientations
    assert len(dates) == 4
    with Image.open(paths[1]) as img:  # portrait format, stored rotated
        assert img.size == (768, 512)
        assert ImageOps.exif_transpose(img).size == (512, 768)


def test_exiftool_finds_samples_valid(tmp_path, exiftool):
    exiftool.require()
    paths = write_demo_shoot(tmp_path)
    paths.append(write_sample_photo(tmp_path / "plain.jpg", size=(64, 48), gps=None, icc=False))
    for path in paths:
        assert exiftool.warnings(path) == [], path.name


# ---------------------------------------------------------------- other formats


def test_dng_sample_has_exif_and_gps_in_proper_sub_ifds(tmp_path, read_meta):
    import tifffile

    from photobatch.daemon.sample_formats import write_sample_dng

    path = write_sample_dng(tmp_path / "a.dng", size=(64, 48), exposure_time="1/60")
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        assert bytes(tags["DNGVersion"].value) == b"\x01\x04\x00\x00"
        assert bytes(tags["CFAPattern"].value) == b"\x00\x01\x01\x02"  # RGGB
        exif, gps = tags["ExifTag"].value, tags["GPSTag"].value  # parsed from the sub-IFDs
    assert exif["ExposureTime"] == (1, 60) and exif["LensModel"] == "RF24-105mm F4 L IS USM"
    assert gps["GPSLatitudeRef"] == "N" and tuple(gps["GPSLatitude"][:2]) == (48, 1)
    exif_tags, _, xmp = read_meta(path)
    assert exif_tags["Exif.Photo.ExposureTime"] == "1/60"
    assert exif_tags["Exif.GPSInfo.GPSLongitudeRef"] == "E"
    assert xmp["Xmp.xmp.Rating"] == "4"


def test_sample_formats_are_valid_and_deterministic(tmp_path, exiftool):
    exiftool.require()
    from photobatch.daemon.sample_formats import (
        write_sample_dng,
        write_sample_heic,
        write_sample_png,
        write_sample_tiff16,
    )

    for name, write in (("a.dng", write_sample_dng), ("b.tif", write_sample_tiff16),
                        ("c.png", write_sample_png), ("e.heic", write_sample_heic)):
        first = write(tmp_path / "1" / name, size=(64, 48))
        second = write(tmp_path / "2" / name, size=(64, 48))
        if name != "e.heic":  # libheif's encoder is not promised to be byte-stable
            assert first.read_bytes() == second.read_bytes(), name
        tolerated = {"Warning:Invalid value for IFD0 tag 0x0103 Compression",
                     "Warning:Missing required TIFF GPS tag 0x001b GPSProcessingMethod"}
        assert {w.replace(" ", "") for w in exiftool.warnings(first)} <= \
            {t.replace(" ", "") for t in tolerated}, name


def test_bad_input_corpus(tmp_path):
    from photobatch.daemon.sample_bad_inputs import BAD_INPUTS, write_bad_inputs

    paths = write_bad_inputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(BAD_INPUTS.values())
    assert paths["text"].read_text().startswith("Shot list")
    assert paths["raw-without-data"].read_bytes()[:4] == b"II*\x00"
    assert paths["raw-without-data"].stat().st_size < 4000
