"""Readers: every format in, upright, with its colour profile and its metadata record."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from photobatch.daemon.sample_formats import (
    sample_tiff16_pixels,
    write_sample_dng,
    write_sample_heic,
    write_sample_png,
    write_sample_tiff16,
)
from photobatch.daemon.samples import make_scene, srgb_profile, write_sample_photo
from photobatch.plugins.builtin.heif_reader import HeifReader
from photobatch.plugins.builtin.pillow_reader import PillowReader
from photobatch.plugins.builtin.raw_reader import RawReader
from photobatch.plugins.builtin.reader_pixels import orient_array
from photobatch.plugins.colour import profile_description, profile_for
from photobatch.plugins.images import ReadError, sniff
from photobatch.plugins.metadata import read_summary

READERS = (PillowReader(), RawReader(), HeifReader())


def small(image, size=(32, 24)) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize(size, Image.Resampling.BOX), dtype=float)


def linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB levels (0-255) to linear light (0-1)."""
    v = srgb / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def accepting(path: Path) -> list[str]:
    head = path.read_bytes()[:64]
    return [r.name for r in READERS if r.accept(head, path)]


# ---------------------------------------------------------------- sniffing


@pytest.mark.parametrize("head, name, kind", [
    (b"\xff\xd8\xff\xe1\x00\x10Exif", "a.jpg", "jpeg"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a.png", "png"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "a.webp", "webp"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "a.heic", "heif"),
    (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heic", "a.heif", "heif"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", "a.avif", "avif"),
    (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom", "a.cr3", "raw"),
    (b"FUJIFILMCCD-RAW 0201FF383501", "a.raf", "raw"),
    (b"IIRO\x08\x00\x00\x00", "a.orf", "raw"),
    (b"IIU\x00\x08\x00\x00\x00", "a.rw2", "raw"),
    (b"II*\x00\x10\x00\x00\x00CR\x02\x00", "a.cr2", "raw"),
    (b"II*\x00\x08\x00\x00\x00", "a.nef", "raw"),
    (b"MM\x00*\x00\x00\x00\x08", "a.arw", "raw"),
    (b"II*\x00\x08\x00\x00\x00", "a.tif", "tiff"),
    (b"Shot list for Saturday", "a.jpg", None),
    (b"", "a.jpg", None),
])
def test_sniff_names_the_format_from_magic_bytes(tmp_path, head, name, kind):
    path = tmp_path / name
    path.write_bytes(head)
    assert sniff(head, path) == kind


def test_a_dng_named_tif_is_still_a_raw(tmp_path):
    dng = write_sample_dng(tmp_path / "x.dng", size=(64, 48))
    renamed = tmp_path / "x.tif"
    shutil.copy(dng, renamed)
    assert sniff(renamed.read_bytes()[:64], renamed) == "raw"  # DNGVersion in IFD0
    plain = write_sample_tiff16(tmp_path / "plain.tif", size=(64, 48))
    assert sniff(plain.read_bytes()[:64], plain) == "tiff"


def test_exactly_one_reader_accepts_each_format(tmp_path):
    files = [
        write_sample_photo(tmp_path / "a.jpg", size=(64, 48)),
        write_sample_png(tmp_path / "b.png", size=(64, 48)),
        write_sample_tiff16(tmp_path / "c.tif", size=(64, 48)),
        write_sample_dng(tmp_path / "d.dng", size=(64, 48)),
        write_sample_heic(tmp_path / "e.heic", size=(64, 48)),
    ]
    make_scene("city", (64, 48)).save(tmp_path / "f.webp", quality=90)
    files.append(tmp_path / "f.webp")
    expected = ["pillow", "pillow", "pillow", "rawpy", "heif", "pillow"]
    assert [accepting(p) for p in files] == [[name] for name in expected]
    (tmp_path / "g.jpg").write_text("not a photo")
    assert accepting(tmp_path / "g.jpg") == []


# ---------------------------------------------------------------- RAW


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_dng_renders_the_scene_upright_in_its_colours(tmp_path, orientation):
    path = write_sample_dng(tmp_path / f"o{orientation}.dng", size=(192, 128),
                            orientation=orientation, seed=4)
    decoded = RawReader().read(path)
    assert decoded.size == (192, 128) and decoded.image.mode == "RGB"
    assert decoded.orientation == orientation and decoded.format == "dng"
    assert decoded.bits == 16 and decoded.pixels16.dtype == np.uint16
    assert decoded.pixels16.shape == (128, 192, 3)
    assert decoded.icc_profile == srgb_profile()
    reference = linear(small(make_scene("landscape", (192, 128), seed=4)))
    got = linear(small(decoded.image))
    # LibRaw brightens by one gain for all channels (its auto-brightness, as cameras do);
    # apart from that gain the colours are the scene's: white balance and colour matrix work.
    gain = got.mean() / reference.mean()
    assert 1.0 <= gain < 1.6
    balance = got.mean(axis=(0, 1)) / reference.mean(axis=(0, 1)) / gain
    assert np.abs(balance - 1).max() < 0.04, balance
    assert np.abs(got / gain - reference).mean() < 0.015
    for wrong in (Image.Transpose.ROTATE_180, Image.Transpose.FLIP_LEFT_RIGHT):
        flipped = linear(small(decoded.image.transpose(wrong)))
        assert np.abs(flipped / gain - reference).mean() > 0.03
    # The 8-bit picture is the 16-bit one's high byte.
    assert np.array_equal(np.asarray(decoded.image), (decoded.pixels16 >> 8).astype(np.uint8))


def test_dng_half_size_decode(tmp_path):
    path = write_sample_dng(tmp_path / "h.dng", size=(192, 128), orientation=6)
    half = RawReader().read(path, half_size=True)
    assert half.size == (96, 64) and half.photo_size == (192, 128)
    full = RawReader().read(path)
    assert full.photo_size == full.size == (192, 128)
    assert np.abs(small(half.image) - small(full.image)).mean() < 6.0


def test_dng_rendered_to_adobe_rgb_carries_that_profile(tmp_path):
    path = write_sample_dng(tmp_path / "a.dng", size=(128, 96), seed=2)
    srgb = RawReader().read(path)
    adobe = RawReader(color_space="adobe-rgb").read(path)
    assert adobe.icc_profile == profile_for("adobe-rgb")
    assert "Adobe RGB" in profile_description(adobe.icc_profile)
    back = ImageCms.profileToProfile(
        adobe.image, ImageCms.ImageCmsProfile(io.BytesIO(adobe.icc_profile)),
        ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile())), outputMode="RGB")
    # Different numbers in the file, the same colours once each profile is applied.
    assert np.abs(small(adobe.image) - small(srgb.image)).mean() > 3.0
    assert np.abs(small(back) - small(srgb.image)).mean() < 3.0


def test_raw_colour_space_from_the_environment(tmp_path, monkeypatch):
    path = write_sample_dng(tmp_path / "a.dng", size=(64, 48))
    monkeypatch.setenv("PHOTOBATCH_RAW_COLOR_SPACE", "prophoto")
    assert RawReader().read(path).icc_profile == profile_for("prophoto")
    with pytest.raises(ValueError, match="color_space"):
        RawReader(color_space="p3")


def test_dng_metadata_record(tmp_path):
    path = write_sample_dng(
        tmp_path / "IMG_0001.dng", size=(64, 48), make="NIKON CORPORATION", model="NIKON Z 8",
        lens="NIKKOR Z 24-120mm f/4 S", exposure_time="1/1000", f_number=8.0, iso=64,
        focal_length=120.0, date_taken="2026:03:04 05:06:07", offset="-03:00",
        gps=(-22.9519, -43.2105, 700.0), orientation=8, rating=5, keywords=("rio", "dawn"))
    summary = read_summary(path)
    assert summary["warnings"] == []
    assert {k: summary[k] for k in ("make", "model", "lens", "exposure_time", "f_number", "iso",
                                    "focal_length", "date_taken", "orientation", "rating",
                                    "keywords")} == {
        "make": "NIKON CORPORATION", "model": "NIKON Z 8", "lens": "NIKKOR Z 24-120mm f/4 S",
        "exposure_time": "1/1000", "f_number": 8.0, "iso": 64, "focal_length": 120.0,
        "date_taken": "2026-03-04T05:06:07-03:00", "orientation": 8, "rating": 5,
        "keywords": ["rio", "dawn"]}
    assert summary["gps_lat"] == pytest.approx(-22.9519, abs=1e-4)
    assert summary["gps_lon"] == pytest.approx(-43.2105, abs=1e-4)
    assert summary["gps_alt"] == 700.0


def test_exiftool_reads_the_sample_dng_the_same_way(tmp_path, exiftool):
    path = write_sample_dng(tmp_path / "x.dng", size=(64, 48), gps=(48.8584, 2.2945, 35.0))
    tags = exiftool.json(path, "-all", "-validate", "-a", checks="read and write")
    assert tags["Validate"] == "0 0 0", tags  # errors, warnings, minor warnings
    assert (tags["Make"], tags["Model"], tags["ExposureTime"]) == ("Canon", "Canon EOS R5", 0.004)
    assert tags["GPSLatitude"] == pytest.approx(48.8584, abs=1e-4)
    assert tags["DNGVersion"] == "1 4 0 0" and tags["CFAPattern"]


def test_non_ascii_raw_name(tmp_path):
    path = write_sample_dng(tmp_path / "Été" / "Ölberg 東京.dng", size=(64, 48))
    assert RawReader().read(path).size == (64, 48)
    assert read_summary(path)["make"] == "Canon"


# ---------------------------------------------------------------- 16-bit TIFF and PNG


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_16bit_tiff_keeps_16_bits_and_turns_upright(tmp_path, orientation):
    path = write_sample_tiff16(tmp_path / "t.tif", size=(96, 64), orientation=orientation)
    decoded = PillowReader().read(path)
    expected = sample_tiff16_pixels((96, 64))
    assert decoded.bits == 16 and decoded.size == (96, 64)
    assert np.array_equal(decoded.pixels16, expected)
    assert np.any(decoded.pixels16 & 0xFF)  # more than 8 bits of information survive
    assert decoded.orientation == orientation and decoded.icc_profile == srgb_profile()
    assert read_summary(path)["make"] == "FUJIFILM"


@pytest.mark.parametrize("metadata", [True, False])
def test_16bit_png_keeps_16_bits(tmp_path, metadata):
    # Without an eXIf chunk before the pixels, Pillow decodes the PNG while looking for one:
    # that PNG was read at 8 bits until the reader asked how it is stored first.
    path = write_sample_png(tmp_path / "p.png", size=(96, 64), bits=16, metadata=metadata)
    decoded = PillowReader().read(path)
    assert decoded.bits == 16
    assert np.array_equal(decoded.pixels16, sample_tiff16_pixels((96, 64)))


def test_8bit_png_and_webp(tmp_path):
    png = write_sample_png(tmp_path / "p.png", size=(96, 64))
    decoded = PillowReader().read(png)
    assert (decoded.format, decoded.bits, decoded.pixels16) == ("png", 8, None)
    assert decoded.icc_profile == srgb_profile()
    assert np.abs(small(decoded.image) - small(make_scene("landscape", (96, 64)))).mean() < 1.0
    webp = tmp_path / "w.webp"
    make_scene("city", (96, 64)).save(webp, quality=95, icc_profile=srgb_profile())
    decoded = PillowReader().read(webp)
    assert decoded.format == "webp" and decoded.icc_profile == srgb_profile()
    assert np.abs(small(decoded.image) - small(make_scene("city", (96, 64)))).mean() < 4.0


# ---------------------------------------------------------------- HEIC


@pytest.mark.parametrize("orientation", [1, 6])
def test_heic_upright_with_profile_and_metadata(tmp_path, orientation):
    path = write_sample_heic(tmp_path / "IMG_0001.HEIC", size=(160, 120),
                             orientation=orientation, seed=5)
    decoded = HeifReader().read(path)
    assert decoded.size == (160, 120) and decoded.format == "heif"
    assert decoded.icc_profile == srgb_profile()
    reference = small(make_scene("landscape", (160, 120), seed=5))
    assert np.abs(small(decoded.image) - reference).mean() < 5.0
    assert np.abs(small(decoded.image.rotate(180)) - reference).mean() > 12.0
    summary = read_summary(path)
    assert (summary["make"], summary["model"], summary["orientation"]) == (
        "FUJIFILM", "X-T5", orientation)
    assert summary["gps_lat"] == pytest.approx(48.8584, abs=1e-4)
    assert summary["date_taken"] == "2026-06-21T19:42:10+02:00"


def test_10bit_heic_keeps_its_precision(tmp_path):
    import pillow_heif

    pixels = sample_tiff16_pixels((96, 64))
    path = tmp_path / "hdr.heic"
    pillow_heif.from_bytes(mode="RGB;16", size=(96, 64), data=pixels.tobytes()).save(
        path, quality=95)
    decoded = HeifReader().read(path)
    assert (decoded.bits, decoded.size, decoded.pixels16.dtype) == (10, (96, 64), np.uint16)
    # Lossy HEVC at 10 bits: within a percent of the 16-bit original on average.
    assert np.abs(decoded.pixels16.astype(float) - pixels).mean() < 0.01 * 65535
    assert np.abs(np.asarray(decoded.image, float) - (pixels >> 8)).mean() < 3.0


# ---------------------------------------------------------------- JPEG, orientation, limits


def test_jpeg_half_size_preview(tmp_path):
    path = write_sample_photo(tmp_path / "a.jpg", size=(320, 240), orientation=6)
    half = PillowReader().read(path, half_size=True)
    assert half.size == (160, 120) and half.photo_size == (320, 240)
    full = PillowReader().read(path)
    assert full.size == full.photo_size == (320, 240) and full.full_size is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_array_matches_pillow(orientation):
    stored = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    image = Image.fromarray(stored, "RGB")
    exif = image.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    image.save(buf, "PNG", exif=exif.tobytes())
    with Image.open(buf) as reopened:
        expected = np.asarray(ImageOps.exif_transpose(reopened))
    assert np.array_equal(orient_array(stored, orientation), expected)


def test_megapixel_limit_is_configurable(tmp_path, monkeypatch):
    jpeg = write_sample_photo(tmp_path / "a.jpg", size=(200, 150))
    dng = write_sample_dng(tmp_path / "b.dng", size=(200, 150))
    heic = write_sample_heic(tmp_path / "c.heic", size=(200, 150))
    monkeypatch.setenv("PHOTOBATCH_MAX_MEGAPIXELS", "0.02")
    for reader, path in ((PillowReader(), jpeg), (RawReader(), dng), (HeifReader(), heic)):
        with pytest.raises(ReadError, match=r"200x150 is 0 MP, over the 0.02 MP limit"):
            reader.read(path)
    monkeypatch.setenv("PHOTOBATCH_MAX_MEGAPIXELS", "1")
    assert PillowReader().read(jpeg).size == (200, 150)
    assert PillowReader(max_megapixels=0.001).max_megapixels == 0.001
    with pytest.raises(ReadError, match="limit"):
        PillowReader(max_megapixels=0.001).read(jpeg)

