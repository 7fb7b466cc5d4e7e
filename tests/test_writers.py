"""Writers and colour: JPEG, 16-bit TIFF and PNG outputs, ICC conversion, metadata, sidecars."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import png
import pyexiv2
import pytest
import tifffile
from PIL import Image, JpegImagePlugin

from photobatch.daemon.app import App
from photobatch.daemon.sample_formats import write_sample_dng, write_sample_heic
from photobatch.daemon.samples import make_scene, srgb_profile, write_sample_photo
from photobatch.daemon.session import Session
from photobatch.plugins.builtin.jpeg_writer import JpegWriter
from photobatch.plugins.builtin.png_writer import PngWriter
from photobatch.plugins.builtin.tiff_writer import TiffWriter
from photobatch.plugins.colour import (
    convert_to_space,
    profile_colour_space,
    profile_description,
    profile_for,
)
from photobatch.plugins.manager import build_plugin_manager
from photobatch.plugins.metadata import (
    icc_profile,
    read_record,
    read_summary,
    sidecar_path,
    write_output_metadata,
    write_sidecar,
)
from photobatch.plugins.output_options import output_bit_depth, writer_name
from photobatch.recipes.schema import OutputSettings, RecipeError, recipe_from_dict

RECORD = {"Recipe": "golden-hour", "Seed": "7", "SourceFile": "IMG_0001.dng"}


def exiftool_json(exiftool, path: Path) -> dict:
    """exiftool's reading of every tag of ``path`` plus its validation, numbers as numbers."""
    return exiftool.json(path, "-a", "-all", "-validate", "-warning", "-error")


def exiftool_warnings(exiftool, path: Path) -> set[str]:
    return {line.split(":", 1)[1].strip() for line in exiftool.warnings(path)}


# Strict EXIF-TIFF validation flags Deflate and a GPS block without GPSProcessingMethod (which
# cameras rarely write); nothing else may appear (see tiff_writer.py).
TIFF_TOLERATED = {"Invalid value for IFD0 tag 0x0103 Compression",
                  "Missing required TIFF GPS tag 0x001b GPSProcessingMethod"}


def gradient16(width=96, height=64) -> np.ndarray:
    """A 16-bit picture whose low bytes matter."""
    x = np.linspace(0, 65535, width, dtype=np.float64)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    return np.stack([x * y, x * (1 - y), 65535 - x + 0 * y], axis=2).astype(np.uint16)


# ---------------------------------------------------------------- JPEG


def test_jpeg_quality_chroma_and_progressive(tmp_path):
    image = make_scene("city", (96, 64))
    writer = JpegWriter()
    high, low, prog = tmp_path / "high.jpg", tmp_path / "low.jpg", tmp_path / "prog.jpg"
    writer.write(image, high, quality=95, icc_profile=srgb_profile())
    writer.write(image, low, quality=80)
    writer.write(image, prog, quality=95, progressive=True)
    with Image.open(high) as a, Image.open(low) as b, Image.open(prog) as c:
        assert JpegImagePlugin.get_sampling(a) == 0  # 4:4:4
        assert JpegImagePlugin.get_sampling(b) == 2  # 4:2:0
        assert not a.info.get("progressive") and c.info.get("progressive")
        assert a.info["icc_profile"] == srgb_profile() and "icc_profile" not in b.info
        assert np.array_equal(np.asarray(a), np.asarray(c))  # same pixels, other scan order
    with pytest.raises(ValueError, match="8 bits"):
        writer.write(image, tmp_path / "x.jpg", bit_depth=16)


# ---------------------------------------------------------------- TIFF and PNG


@pytest.mark.parametrize("writer", [TiffWriter(), PngWriter()], ids=["tiff", "png"])
def test_16bit_round_trip_is_exact(tmp_path, writer):
    pixels = gradient16()
    path = tmp_path / f"out{writer.extension}"
    writer.write(pixels, path, bit_depth=16, icc_profile=profile_for("adobe-rgb"))
    if writer.name == "tiff":
        back = tifffile.imread(path)
    else:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        assert info["bitdepth"] == 16
        back = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(height, width, 3)
    assert back.dtype == np.uint16 and np.array_equal(back, pixels)
    assert icc_profile(path) == profile_for("adobe-rgb")
    with Image.open(path) as img:  # and Pillow, like most programs, finds the profile
        assert img.info["icc_profile"] == profile_for("adobe-rgb")


@pytest.mark.parametrize("writer", [TiffWriter(), PngWriter()], ids=["tiff", "png"])
def test_8bit_outputs_and_8bit_sources_at_16_bits(tmp_path, writer):
    image = make_scene("landscape", (96, 64))
    eight, sixteen = tmp_path / f"8{writer.extension}", tmp_path / f"16{writer.extension}"
    writer.write(image, eight, bit_depth=8)
    writer.write(image, sixteen, bit_depth=16)
    with Image.open(eight) as img:
        assert img.mode == "RGB" and np.array_equal(np.asarray(img), np.asarray(image))
    if writer.name == "tiff":
        wide = tifffile.imread(sixteen)
        assert np.array_equal(wide, np.asarray(image, np.uint16) * 257)  # 8 bits widened exactly
    with pytest.raises(ValueError, match="bit depth"):
        writer.write(image, tmp_path / f"x{writer.extension}", bit_depth=12)


# ---------------------------------------------------------------- colour


def test_adobe_rgb_profile_matches_the_colour_science():
    # sRGB -> XYZ -> Adobe RGB (1998) by the published matrices; LittleCMS with our profile
    # must agree to within a level.
    colours = np.array([[128, 64, 200], [255, 0, 0], [30, 200, 120], [128, 128, 128],
                        [250, 250, 250], [5, 10, 20]], np.uint8)
    image = Image.fromarray(colours.reshape(1, -1, 3), "RGB")
    converted, icc = convert_to_space(image, srgb_profile(), "adobe-rgb")
    assert icc == profile_for("adobe-rgb") and profile_colour_space(icc) == "RGB"
    v = colours / 255.0
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    srgb_to_xyz = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]])
    adobe_to_xyz = np.array([[0.5767309, 0.1855540, 0.1881852], [0.2973769, 0.6273491, 0.0752741],
                             [0.0270343, 0.0706872, 0.9911085]])
    adobe = np.clip(lin @ srgb_to_xyz.T @ np.linalg.inv(adobe_to_xyz).T, 0, 1) ** (256 / 563)
    got = np.asarray(converted, dtype=float).reshape(-1, 3)
    assert np.abs(got - adobe * 255).max() < 1.0


def test_colour_conversion_choices():
    image = make_scene("city", (32, 24))
    same, icc = convert_to_space(image, b"not a profile", "source")
    assert same is image and icc == b"not a profile"  # "source" never touches anything
    same, icc = convert_to_space(image, srgb_profile(), "srgb")
    assert same is image and icc == srgb_profile()
    untagged, icc = convert_to_space(image, None, "srgb")  # untagged is taken as sRGB
    assert icc == srgb_profile() and np.abs(
        np.asarray(untagged, float) - np.asarray(image, float)).max() <= 1
    # Profiles are byte-stable: identical outputs for identical inputs.
    assert profile_for("adobe-rgb") == profile_for("adobe-rgb")
    assert "ProPhoto" in profile_description(profile_for("prophoto"))
    with pytest.raises(ValueError, match="colour space"):
        profile_for("p3")


# ---------------------------------------------------------------- output settings


def test_output_settings_validation():
    recipe = recipe_from_dict({"name": "r", "output": {
        "format": "tiff", "bit_depth": 16, "color_space": "adobe-rgb", "sidecar": "darktable",
        "progressive": False}})
    assert (recipe.output.format, recipe.output.bit_depth) == ("tiff", 16)
    for output, message in (
        ({"bit_depth": 12}, "output.bit_depth must be one of 8, 16; got 12"),
        ({"color_space": "p3"}, "output.color_space must be one of"),
        ({"sidecar": True}, "output.sidecar must be a str"),
        ({"progressive": "yes"}, "output.progressive must be a bool"),
        ({"format": "image/gif"}, re.escape("output.format must be a writer's name ('jpeg', "
                                            "'tiff', 'png', 'lossless' or one a plugin adds); "
                                            "got 'image/gif'")),
        ({"format": "jpeg", "bit_depth": 16}, "JPEG holds 8 bits"),
    ):
        with pytest.raises(RecipeError, match=message):
            recipe_from_dict({"name": "r", "output": output})
    a = recipe_from_dict({"name": "r"})
    b = recipe_from_dict({"name": "r", "output": {"color_space": "srgb"}})
    assert a.fingerprint != b.fingerprint  # a different output makes old outputs stale


def test_a_format_no_writer_writes_stops_the_recipes_loading(tmp_path):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "web.toml").write_text('name = "web"\n[output]\nformat = "gif"\n')
    with pytest.raises(RecipeError, match=r"recipe 'web' \(.*web.toml\): output.format 'gif' has "
                                          r"no writer \(known: jpeg, lossless, png, tiff; a writer "
                                          r"plugin can add one\)"):
        App(catalog_path=tmp_path / "c.db", recipe_dirs=[folder])


def test_bit_depth_follows_the_source_where_the_format_allows():
    tiff, jpeg = TiffWriter(), JpegWriter()
    assert writer_name("lossless") == "tiff" and writer_name("png") == "png"
    auto = OutputSettings(format="lossless")
    assert output_bit_depth(auto, tiff, source_bits=16) == 16
    assert output_bit_depth(auto, tiff, source_bits=8) == 8
    assert output_bit_depth(OutputSettings(), jpeg, source_bits=16) == 8
    assert output_bit_depth(OutputSettings(format="tiff", bit_depth=8), tiff, 16) == 8

    class Foreign:  # a third-party writer that says nothing about bit depths
        name = "webp"

    with pytest.raises(ValueError, match="cannot write 16"):
        output_bit_depth(OutputSettings(format="png", bit_depth=16), Foreign(), 8)


# ---------------------------------------------------------------- metadata into TIFF and PNG


@pytest.mark.parametrize("writer", [TiffWriter(), PngWriter()], ids=["tiff", "png"])
def test_raw_metadata_into_16bit_outputs_checked_by_exiftool(tmp_path, writer, exiftool):
    from photobatch.plugins.builtin.raw_reader import RawReader

    source = write_sample_dng(tmp_path / "IMG_0001.dng", size=(96, 64), orientation=6,
                              gps=(-33.8568, 151.2153, 12.5))
    decoded = RawReader().read(source)
    output = tmp_path / f"out{writer.extension}"
    writer.write(decoded.pixels16, output, bit_depth=16, icc_profile=decoded.icc_profile)
    assert decoded.size == (96, 64)
    write_output_metadata(source, output, width=96, height=64, record=RECORD,
                          icc=decoded.icc_profile)
    src, out = exiftool_json(exiftool, source), exiftool_json(exiftool, output)
    for tag in ("Make", "Model", "LensModel", "ExposureTime", "FNumber", "ISO", "FocalLength",
                "DateTimeOriginal", "OffsetTimeOriginal", "GPSLatitude", "GPSLongitude",
                "GPSAltitude", "Artist", "Copyright"):
        assert out[tag] == src[tag], tag
    assert src["Orientation"] == 6 and out["Orientation"] == 1
    assert out["ImageWidth"] == 96 and out["ImageHeight"] == 64
    assert out.get("BitsPerSample", out.get("BitDepth")) in (16, "16 16 16")
    for raw_only in ("DNGVersion", "CFAPattern", "ColorMatrix1", "AsShotNeutral", "WhiteLevel",
                     "UniqueCameraModel"):
        assert raw_only not in out, raw_only
    assert read_record(output) == RECORD
    assert icc_profile(output) == srgb_profile()
    warnings = exiftool_warnings(exiftool, output)
    assert warnings <= (TIFF_TOLERATED if writer.name == "tiff" else set()), warnings


def test_converted_output_says_so_in_exif(tmp_path, exiftool):
    source = write_sample_photo(tmp_path / "a.jpg", size=(64, 48))
    image, icc = convert_to_space(make_scene("landscape", (64, 48)), srgb_profile(), "adobe-rgb")
    output = tmp_path / "out.jpg"
    JpegWriter().write(image, output, icc_profile=icc)
    write_output_metadata(source, output, width=64, height=48, record=RECORD, icc=icc)
    tags = exiftool_json(exiftool, output)
    assert tags["ColorSpace"] == 65535  # "uncalibrated": the ICC profile says Adobe RGB
    assert "Adobe RGB" in tags["ProfileDescription"]
    assert exiftool_warnings(exiftool, output) == set()


# ---------------------------------------------------------------- sidecars


def test_sidecar_written_unchanged_rewritten_and_foreign_left_alone(tmp_path, caplog, exiftool):
    source = write_sample_photo(tmp_path / "IMG_1.jpg", size=(64, 48))
    output = tmp_path / "IMG_1_look.jpg"
    JpegWriter().write(make_scene("landscape", (64, 48)), output)
    write_output_metadata(source, output, width=64, height=48, record=RECORD)
    assert sidecar_path(output, "lightroom") == tmp_path / "IMG_1_look.xmp"
    side = sidecar_path(output, "darktable")
    assert side == tmp_path / "IMG_1_look.jpg.xmp"

    assert write_sidecar(output, side) == "written"
    xmp = pyexiv2.ImageData(side.read_bytes())
    try:
        values = xmp.read_xmp()
    finally:
        xmp.close()
    assert values["Xmp.photobatch.Recipe"] == "golden-hour"
    assert values["Xmp.tiff.Make"] == "FUJIFILM" and values["Xmp.dc.subject"]
    assert values["Xmp.exif.GPSLatitude"] and "Xmp.tiff.Compression" not in values
    tags = exiftool_json(exiftool, side)
    assert tags["Make"] == "FUJIFILM" and tags["Recipe"] == "golden-hour"
    assert oct(side.stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    before = side.stat().st_mtime_ns
    assert write_sidecar(output, side) == "unchanged"
    assert side.stat().st_mtime_ns == before
    write_output_metadata(source, output, width=64, height=48, record={**RECORD, "Seed": "8"})
    assert write_sidecar(output, side) == "written"
    assert b'photobatch:Seed="8"' in side.read_bytes()

    foreign = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    developed = side.read_bytes().replace(
        b'xmlns:photobatch=', b'xmlns:darktable="http://darktable.sf.net/" xmlns:photobatch=')
    for theirs in (foreign, developed):
        side.write_bytes(theirs)
        assert write_sidecar(output, side) == "foreign"
        assert side.read_bytes() == theirs
    assert "photobatch did not write" in caplog.text


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- through the session


@pytest.fixture()
def app(tmp_path, identity_plugin):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}")  # never loaded: the runner is Identity
    app = App(catalog_path=tmp_path / "catalog.db", model=str(model),
              plugin_manager=build_plugin_manager(entrypoints=False, extra=[identity_plugin]))
    yield app
    app.close()


def test_raw_to_lossless_adobe_rgb_with_sidecar(tmp_path, app, exiftool):
    source = write_sample_dng(tmp_path / "in" / "IMG_0001.dng", size=(128, 96), orientation=8)
    recipe = recipe_from_dict({"name": "keep", "runner": "identity", "output": {
        "format": "lossless", "color_space": "adobe-rgb", "sidecar": "lightroom"}})
    outcome = Session(app, tmp_path / "out").process(source, recipe)
    assert outcome.status == "done", outcome.error
    assert outcome.output == tmp_path / "out" / "IMG_0001_keep.tif"
    pixels = tifffile.imread(outcome.output)
    assert pixels.dtype == np.uint16 and pixels.shape == (96, 128, 3)  # upright, 16 bits
    assert icc_profile(outcome.output) == profile_for("adobe-rgb")
    summary = read_summary(outcome.output)
    assert (summary["make"], summary["orientation"]) == ("Canon", 1)
    assert summary["gps_lat"] == pytest.approx(48.8584, abs=1e-4)
    sidecar = tmp_path / "out" / "IMG_0001_keep.xmp"
    assert b"photobatch:Recipe=\"keep\"" in sidecar.read_bytes()
    assert exiftool_warnings(exiftool, outcome.output) <= TIFF_TOLERATED
    row = app.catalog.file_by_sha(read_record(outcome.output)["SourceSHA256"])
    assert (row["format"], row["width"], row["height"], row["camera_make"]) == (
        "dng", 128, 96, "Canon")


def test_heic_to_progressive_jpeg_converted_to_srgb(tmp_path, app, exiftool):
    source = write_sample_heic(tmp_path / "in" / "IMG_0002.HEIC", size=(128, 96), orientation=6)
    recipe = recipe_from_dict({"name": "web", "runner": "identity", "output": {
        "format": "jpeg", "quality": 85, "progressive": True, "color_space": "srgb"}})
    outcome = Session(app, tmp_path / "out").process(source, recipe)
    assert outcome.status == "done", outcome.error
    with Image.open(outcome.output) as img:
        assert img.size == (128, 96) and img.info.get("progressive")
        assert img.info["icc_profile"] == srgb_profile()
        got = np.asarray(img.convert("RGB").resize((32, 24), Image.Resampling.BOX), float)
    reference = np.asarray(make_scene("landscape", (128, 96)).resize((32, 24),
                                                                      Image.Resampling.BOX), float)
    assert np.abs(got - reference).mean() < 6.0
    tags = exiftool_json(exiftool, outcome.output)
    assert (tags["Make"], tags["Orientation"]) == ("FUJIFILM", 1)
    assert exiftool_warnings(exiftool, outcome.output) == set()


def test_16bit_png_output_from_a_jpeg_is_8bit_data_widened(tmp_path, app):
    source = write_sample_photo(tmp_path / "in" / "a.jpg", size=(64, 48))
    recipe = recipe_from_dict({"name": "png", "runner": "identity",
                               "output": {"format": "png", "bit_depth": 16}})
    outcome = Session(app, tmp_path / "out").process(source, recipe)
    assert outcome.status == "done", outcome.error
    width, height, rows, info = png.Reader(filename=str(outcome.output)).asDirect()
    assert (width, height, info["bitdepth"]) == (64, 48, 16)
    values = np.vstack([np.asarray(r, np.uint16) for r in rows])
    assert np.all(values % 257 == 0)
    assert read_summary(outcome.output)["make"] == "FUJIFILM"
