"""Metadata: summaries for the catalog and EXIF/IPTC/XMP/ICC transfer to outputs."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pyexiv2
import pytest
from PIL import Image, ImageOps

from photobatch.daemon.samples import srgb_profile, write_sample_photo, write_truncated_jpeg
from photobatch.plugins.metadata import (
    POLICIES,
    MetadataError,
    creator_tool,
    dumps_params,
    icc_profile,
    read_record,
    read_summary,
    write_output_metadata,
)

RECORD = {
    "Recipe": "golden-hour",
    "RecipeFingerprint": "sha256:" + "ab" * 32,
    "Params": json.dumps({"strength": 0.45, "prompt": "warm <light> & \"haze\"", "cfg": 7}),
    "Seed": "1234",
    "Model": "tiny-sd",
    "SourceFile": "Ölberg café 東京.jpg",
    "SourceSHA256": "0" * 64,
}


# ---------------------------------------------------------------- helpers


def validation_warnings(exiftool, path: Path) -> set[str]:
    """Run ``exiftool -validate``; fail on any error, return the warnings."""
    return set(exiftool.warnings(path, exit_zero=True))


def validate_if_available(exiftool, path: Path) -> set[str]:
    """Like validation_warnings, but a no-op without exiftool (the dedicated test says so)."""
    return validation_warnings(exiftool, path) if exiftool.available else set()


def thumbnail(path: Path) -> bytes:
    img = pyexiv2.ImageData(path.read_bytes())
    try:
        return img.read_thumbnail()
    finally:
        img.close()


def render(source: Path, output: Path, *, scale: float = 0.5,
           icc: bytes | None = None) -> tuple[int, int]:
    """Do what the writer stage does: upright pixels, resized, saved by Pillow at q95."""
    with Image.open(source) as img:
        upright = ImageOps.exif_transpose(img)
    size = (max(1, round(upright.width * scale)), max(1, round(upright.height * scale)))
    kwargs = {"icc_profile": icc} if icc else {}
    upright.resize(size, Image.Resampling.BILINEAR).save(output, "JPEG", quality=95, **kwargs)
    return size


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def source(tmp_path) -> Path:
    # Portrait-format picture stored rotated, as a camera held upright writes it.
    return write_sample_photo(tmp_path / "DSCF0002.JPG", size=(240, 320), orientation=6,
                              seed=2, scene="city")


def transfer(source: Path, output: Path, policy: str = "all", **kwargs) -> tuple[int, int]:
    width, height = render(source, output, **kwargs)
    write_output_metadata(source, output, width=width, height=height, record=RECORD,
                          policy=policy)
    return width, height


# ---------------------------------------------------------------- write_output_metadata


def test_all_policy_carries_everything_over(source, tmp_path, read_meta):
    output = tmp_path / "out.jpg"
    before = (digest(source), source.stat().st_mtime_ns)
    width, height = transfer(source, output)
    assert (width, height) == (120, 160)

    src_exif, src_iptc, src_xmp = read_meta(source)
    exif, iptc, xmp = read_meta(output)
    for key in ("Exif.Image.Make", "Exif.Image.Model", "Exif.Photo.DateTimeOriginal",
                "Exif.Photo.OffsetTimeOriginal", "Exif.Photo.ExposureTime",
                "Exif.Photo.LensModel", "Exif.Image.Artist", "Exif.Image.Copyright",
                "Exif.GPSInfo.GPSLatitude", "Exif.GPSInfo.GPSLatitudeRef",
                "Exif.GPSInfo.GPSLongitude", "Exif.GPSInfo.GPSLongitudeRef",
                "Exif.GPSInfo.GPSAltitude"):
        assert exif[key] == src_exif[key], key
    assert src_exif["Exif.Image.Orientation"] == "6"
    assert exif["Exif.Image.Orientation"] == "1"
    assert exif["Exif.Photo.PixelXDimension"] == "120"
    assert exif["Exif.Photo.PixelYDimension"] == "160"
    assert iptc["Iptc.Application2.Keywords"] == src_iptc["Iptc.Application2.Keywords"]
    assert iptc["Iptc.Application2.City"] == src_iptc["Iptc.Application2.City"]
    assert xmp["Xmp.dc.subject"] == src_xmp["Xmp.dc.subject"]
    assert xmp["Xmp.xmp.Rating"] == src_xmp["Xmp.xmp.Rating"]
    # The source's XMP had the technical copies; they follow the EXIF.
    assert src_xmp["Xmp.tiff.Orientation"] == "6"
    assert xmp["Xmp.tiff.Orientation"] == "1"
    assert (xmp["Xmp.exif.PixelXDimension"], xmp["Xmp.exif.PixelYDimension"]) == ("120", "160")
    assert xmp["Xmp.xmp.CreatorTool"] == creator_tool()
    assert creator_tool().startswith("photobatch ")

    assert read_record(output) == RECORD
    assert icc_profile(output) == icc_profile(source) == srgb_profile()

    # A fresh thumbnail from the output's upright pixels, not the camera's sideways one.
    thumb = thumbnail(output)
    assert thumb and thumb != thumbnail(source) and len(thumb) < 16_000
    with Image.open(io.BytesIO(thumb)) as t:
        assert max(t.size) == 160 and t.size == (120, 160)
        with Image.open(output) as full:
            ref = np.asarray(full.convert("RGB").resize((12, 16)), dtype=float)
        got = np.asarray(t.convert("RGB").resize((12, 16)), dtype=float)
        assert np.abs(got - ref).mean() < 6.0

    # Pixels untouched, source untouched.
    with Image.open(output) as img:
        assert img.size == (120, 160)
    assert (digest(source), source.stat().st_mtime_ns) == before

    summary = read_summary(output)
    assert summary["warnings"] == []
    assert summary["orientation"] == 1
    assert summary["date_taken"] == "2026-06-21T19:42:10+02:00"
    assert summary["gps_lat"] == pytest.approx(48.8584, abs=1e-5)


@pytest.mark.parametrize("bits", [8, 16])
def test_thumbnail_from_the_writers_pixels_matches_the_output(source, tmp_path, bits):
    # The writer hands over the pixels it encoded: the thumbnail is made from them, without
    # decoding the file, and shows the same upright picture.
    output = tmp_path / "out.jpg"
    width, height = render(source, output, scale=1.0)
    with Image.open(output) as img:
        pixels = img.convert("RGB")
    given = np.asarray(pixels).astype(np.uint16) * 257 if bits == 16 else pixels
    write_output_metadata(source, output, width=width, height=height, record=RECORD,
                          pixels=given)
    with Image.open(io.BytesIO(thumbnail(output))) as t:
        assert t.size == (120, 160)
        got = np.asarray(t.convert("RGB"), dtype=float)
    ref = np.asarray(pixels.resize((120, 160), Image.Resampling.LANCZOS), dtype=float)
    # As close to the picture as a thumbnail decoded from the written file (a q80 JPEG's error).
    from photobatch.plugins.metadata.thumbnail import thumbnail_jpeg

    with Image.open(io.BytesIO(thumbnail_jpeg(output.read_bytes()))) as t:
        decoded = np.asarray(t.convert("RGB"), dtype=float)
    assert np.abs(got - ref).mean() <= np.abs(decoded - ref).mean() + 0.5 < 6.0
    with Image.open(output) as img:
        assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(pixels))  # pixels untouched


def test_output_already_carrying_the_icc(source, tmp_path):
    output = tmp_path / "with-icc.jpg"
    transfer(source, output, icc=srgb_profile())
    assert icc_profile(output) == srgb_profile()
    with Image.open(output) as img:  # one profile, in proper APP2 chunks Pillow can read
        assert img.info["icc_profile"] == srgb_profile()


def test_icc_choice(tmp_path):
    other = bytearray(srgb_profile())
    other[24:26] = (2020).to_bytes(2, "big")  # same colours, different bytes
    other = bytes(other)
    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(plain, quality=90)

    # A source without a profile leaves the writer's profile in place.
    out = tmp_path / "a.jpg"
    render(plain, out, scale=1, icc=other)
    write_output_metadata(plain, out, width=40, height=30, record={})
    assert icc_profile(out) == other

    # icc="output" keeps the writer's profile (e.g. after a colour-space conversion).
    src = write_sample_photo(tmp_path / "s.jpg", size=(40, 30))
    out2 = tmp_path / "b.jpg"
    render(src, out2, scale=1, icc=other)
    write_output_metadata(src, out2, width=40, height=30, record={}, icc="output")
    assert icc_profile(out2) == other
    write_output_metadata(src, out2, width=40, height=30, record={})
    assert icc_profile(out2) == srgb_profile()


def test_no_location_policy(source, tmp_path, read_meta):
    output = tmp_path / "nogps.jpg"
    transfer(source, output, policy="no-location")
    exif, iptc, xmp = read_meta(output)
    assert [k for k in read_meta(source)[2] if "GPS" in k]  # the source had XMP GPS too
    assert not [k for k in exif if "GPS" in k]
    assert not [k for k in xmp if "GPS" in k]
    assert exif["Exif.Image.Make"] == "FUJIFILM"
    assert exif["Exif.Photo.DateTimeOriginal"] == \
        read_meta(source)[0]["Exif.Photo.DateTimeOriginal"]
    assert iptc["Iptc.Application2.Keywords"]
    assert read_record(output) == RECORD
    summary = read_summary(output)
    assert (summary["gps_lat"], summary["gps_lon"], summary["gps_alt"]) == (None, None, None)


def test_copyright_only_policy(source, tmp_path, read_meta):
    output = tmp_path / "rights.jpg"
    transfer(source, output, policy="copyright-only")
    exif, iptc, xmp = read_meta(output)
    src_exif, _, _ = read_meta(source)
    assert exif["Exif.Image.Artist"] == src_exif["Exif.Image.Artist"]
    assert exif["Exif.Image.Copyright"] == src_exif["Exif.Image.Copyright"]
    for gone in ("Exif.Image.Make", "Exif.Image.Model", "Exif.Photo.DateTimeOriginal",
                 "Exif.Photo.LensModel", "Exif.Photo.BodySerialNumber", "Exif.Image.Software"):
        assert gone not in exif, gone
    assert not [k for k in exif if "GPS" in k]
    assert exif["Exif.Image.Orientation"] == "1"
    assert iptc["Iptc.Application2.Copyright"]
    assert iptc["Iptc.Application2.Byline"] == ["Jane Doe"]
    assert "Iptc.Application2.Keywords" not in iptc and "Iptc.Application2.City" not in iptc
    assert xmp["Xmp.dc.creator"] == ["Jane Doe"]
    assert "Xmp.dc.rights" in xmp
    assert "Xmp.dc.subject" not in xmp and "Xmp.xmp.Rating" not in xmp
    assert not [k for k in xmp if "GPS" in k or k.startswith("Xmp.photoshop.City")]
    assert read_record(output) == RECORD


def test_none_policy(source, tmp_path, read_meta):
    output = tmp_path / "bare.jpg"
    transfer(source, output, policy="none")
    exif, iptc, xmp = read_meta(output)
    assert exif == {} and iptc == {}
    assert set(xmp) == {"Xmp.xmp.CreatorTool"} | {f"Xmp.photobatch.{k}" for k in RECORD}
    assert read_record(output) == RECORD
    assert icc_profile(output) == srgb_profile()  # colour, not metadata
    summary = read_summary(output)
    assert summary["make"] is None and summary["orientation"] is None


def test_unknown_policy_is_refused(source, tmp_path):
    output = tmp_path / "x.jpg"
    render(source, output)
    before = output.read_bytes()
    with pytest.raises(ValueError) as err:
        write_output_metadata(source, output, width=1, height=1, record={}, policy="no-gps")
    for allowed in POLICIES:
        assert allowed in str(err.value)
    assert output.read_bytes() == before


def test_bad_arguments_are_refused(source, tmp_path):
    output = tmp_path / "x.jpg"
    render(source, output)
    with pytest.raises(ValueError, match="record key"):
        write_output_metadata(source, output, width=1, height=1, record={"has space": "x"})
    with pytest.raises(TypeError, match="Params"):
        write_output_metadata(source, output, width=1, height=1, record={"Params": {"a": 1}})
    with pytest.raises(ValueError, match="width"):
        write_output_metadata(source, output, width=0, height=1, record={})
    with pytest.raises(ValueError, match="source file itself"):
        write_output_metadata(source, source, width=1, height=1, record={})
    with pytest.raises(MetadataError, match="missing.jpg"):
        write_output_metadata(tmp_path / "missing.jpg", output, width=1, height=1, record={})
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    with pytest.raises(MetadataError, match="notes.txt"):
        write_output_metadata(source, not_an_image, width=1, height=1, record={})


def test_non_ascii_file_names(tmp_path, read_meta, exiftool):
    folder = tmp_path / "Été 2026"
    source = write_sample_photo(folder / "Ölberg café 東京.jpg", size=(64, 48), orientation=3)
    output = folder / "Ölberg café 東京 – golden-hour.jpg"
    transfer(source, output)
    assert read_meta(output)[0]["Exif.Image.Make"] == "FUJIFILM"
    assert read_record(output)["SourceFile"] == "Ölberg café 東京.jpg"
    summary = read_summary(source)
    assert summary["warnings"] == [] and summary["orientation"] == 3
    assert icc_profile(source) == srgb_profile()
    assert validate_if_available(exiftool, output) == set()


def test_source_without_any_metadata(tmp_path, read_meta, exiftool):
    source = tmp_path / "bare-source.jpg"
    Image.new("RGB", (64, 48), (30, 60, 90)).save(source, quality=90)
    assert read_meta(source) == ({}, {}, {})
    output = tmp_path / "out.jpg"
    render(source, output)
    write_output_metadata(source, output, width=32, height=24, record=RECORD)
    exif, iptc, xmp = read_meta(output)
    assert exif["Exif.Image.Orientation"] == "1"
    assert exif["Exif.Photo.PixelXDimension"] == "32"
    assert exif["Exif.Photo.PixelYDimension"] == "24"
    assert "Exif.Image.Make" not in exif and iptc == {}
    assert read_record(output) == RECORD
    assert thumbnail(output)
    assert icc_profile(output) is None
    assert validate_if_available(exiftool, output) == set()


def test_reprocessing_replaces_the_record(source, tmp_path, read_meta):
    first = tmp_path / "first.jpg"
    transfer(source, first)
    second = tmp_path / "second.jpg"
    render(first, second, scale=1)
    write_output_metadata(first, second, width=120, height=160,
                          record={"Recipe": "winter", "Params": dumps_params({"b": 1, "a": 2})})
    assert read_record(second) == {"Recipe": "winter", "Params": '{"a":2,"b":1}'}
    assert read_meta(second)[0]["Exif.Image.Make"] == "FUJIFILM"


def _dng_like_tiff(path: Path, *, big_xmp: bool = False) -> Path:
    """A TIFF carrying RAW/DNG tags, standing in for a camera RAW exiv2 reads as TIFF."""
    buf = io.BytesIO()
    Image.new("RGB", (60, 40), (90, 90, 90)).save(buf, "TIFF")
    img = pyexiv2.ImageData(buf.getvalue())
    try:
        img.modify_exif({
            "Exif.Image.Make": "Canon", "Exif.Image.Model": "Canon EOS R5",
            "Exif.Image.DNGVersion": "1 4 0 0", "Exif.Image.DNGBackwardVersion": "1 1 0 0",
            "Exif.Image.UniqueCameraModel": "Canon EOS R5",
            "Exif.Image.ColorMatrix1": " ".join(["1/1", "0/1", "0/1", "0/1", "1/1", "0/1",
                                                 "0/1", "0/1", "1/1"]),
            "Exif.Image.CalibrationIlluminant1": "21",
            "Exif.Image.BaselineExposure": "0/1",
            "Exif.Photo.ExposureTime": "1/100", "Exif.Photo.FNumber": "4/1",
            "Exif.Photo.DateTimeOriginal": "2026:03:01 12:00:00",
            "Exif.Photo.CFAPattern": "2 0 2 0 0 1 1 2",
        })
        if big_xmp:
            ancestors = "".join(f"<rdf:li>xmp.did:{i:032x}</rdf:li>" for i in range(2500))
            img.modify_raw_xmp(
                '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
                '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""'
                ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
                ' xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"'
                ' xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
                ' crs:Exposure2012="+0.50" photoshop:City="Zürich">'
                "<dc:subject><rdf:Bag><rdf:li>kept</rdf:li></rdf:Bag></dc:subject>"
                f"<photoshop:DocumentAncestors><rdf:Bag>{ancestors}</rdf:Bag>"
                "</photoshop:DocumentAncestors></rdf:Description></rdf:RDF></x:xmpmeta>")
        path.write_bytes(img.get_bytes())
    finally:
        img.close()
    return path


def test_raw_only_tags_are_not_copied(tmp_path, read_meta, exiftool):
    source = _dng_like_tiff(tmp_path / "raw.tif")
    src_exif = read_meta(source)[0]
    assert "Exif.Image.DNGVersion" in src_exif and "Exif.Image.StripOffsets" in src_exif
    output = tmp_path / "raw.jpg"
    render(source, output, scale=1)
    write_output_metadata(source, output, width=60, height=40, record=RECORD)
    exif = read_meta(output)[0]
    assert exif["Exif.Image.Make"] == "Canon"
    assert exif["Exif.Photo.ExposureTime"] == "1/100"
    assert exif["Exif.Photo.DateTimeOriginal"] == "2026:03:01 12:00:00"
    for gone in ("Exif.Image.DNGVersion", "Exif.Image.DNGBackwardVersion",
                 "Exif.Image.UniqueCameraModel", "Exif.Image.ColorMatrix1",
                 "Exif.Image.CalibrationIlluminant1", "Exif.Image.BaselineExposure",
                 "Exif.Photo.CFAPattern", "Exif.Image.StripOffsets",
                 "Exif.Image.StripByteCounts", "Exif.Image.RowsPerStrip",
                 "Exif.Image.BitsPerSample", "Exif.Image.ImageWidth",
                 "Exif.Image.Compression", "Exif.Image.PhotometricInterpretation"):
        assert gone not in exif, gone
    assert validate_if_available(exiftool, output) == set()


def test_oversized_xmp_sheds_history_and_edit_settings(tmp_path, caplog, read_meta, exiftool):
    source = _dng_like_tiff(tmp_path / "photoshop.tif", big_xmp=True)
    assert len(read_meta(source)[2]["Xmp.photoshop.DocumentAncestors"]) == 2500
    output = tmp_path / "out.jpg"
    render(source, output, scale=1)
    with caplog.at_level(logging.WARNING, logger="photobatch.plugins.metadata"):
        write_output_metadata(source, output, width=60, height=40, record=RECORD)
    assert "XMP too large" in caplog.text
    exif, _, xmp = read_meta(output)
    assert exif["Exif.Image.Make"] == "Canon"
    assert xmp["Xmp.dc.subject"] == ["kept"] and xmp["Xmp.photoshop.City"] == "Zürich"
    assert "Xmp.photoshop.DocumentAncestors" not in xmp
    assert not [k for k in xmp if k.startswith("Xmp.crs.")]
    assert read_record(output) == RECORD
    assert validate_if_available(exiftool, output) == set()


def test_png_output(tmp_path):
    source = write_sample_photo(tmp_path / "s.jpg", size=(64, 48), orientation=8)
    output = tmp_path / "out.png"
    with Image.open(source) as img:
        ImageOps.exif_transpose(img).save(output)
    write_output_metadata(source, output, width=48, height=64, record=RECORD)
    summary = read_summary(output)
    assert (summary["make"], summary["orientation"]) == ("FUJIFILM", 1)
    assert read_record(output) == RECORD
    assert icc_profile(output) == srgb_profile()


@pytest.mark.parametrize("policy", POLICIES)
def test_exiftool_validates_outputs(source, tmp_path, policy, exiftool):
    source_warnings = validation_warnings(exiftool, source)
    output = tmp_path / f"{policy}.jpg"
    transfer(source, output, policy=policy)
    # No errors, and no warning the source did not already have (the samples have none).
    assert validation_warnings(exiftool, output) <= source_warnings


def test_exiftool_validates_unusual_outputs(tmp_path, exiftool):
    exiftool.require()  # fails under CI, skips elsewhere, when exiftool is missing
    named = write_sample_photo(tmp_path / "Ölberg café 東京.jpg", size=(64, 48), orientation=5)
    bare = tmp_path / "bare.jpg"
    Image.new("RGB", (64, 48), (30, 60, 90)).save(bare, quality=90)
    sources = [named, bare, _dng_like_tiff(tmp_path / "raw.tif"),
               _dng_like_tiff(tmp_path / "ps.tif", big_xmp=True)]
    for index, source in enumerate(sources):
        output = tmp_path / f"out {index} – ü.jpg"
        transfer(source, output, scale=1)
        assert validation_warnings(exiftool, output) == set(), source.name


# ---------------------------------------------------------------- read_summary


def test_read_summary_values(tmp_path):
    path = write_sample_photo(
        tmp_path / "dead-sea.jpg", make="Canon", model="Canon EOS R6m2",
        lens="RF24-105mm F4 L IS USM", exposure_time="1/8", f_number=4.0, iso=12800,
        focal_length=105.0, date_taken="2026:02:03 04:05:06", offset="+02:00",
        gps=(31.5590, 35.4732, -430.5), orientation=8, keywords=("desert", "Négev"), rating=5,
        label="Green")
    summary = read_summary(path)
    assert summary == {
        "make": "Canon",
        "model": "Canon EOS R6m2",
        "lens": "RF24-105mm F4 L IS USM",
        "exposure_time": "1/8",
        "f_number": 4.0,
        "iso": 12800,
        "focal_length": 105.0,
        "date_taken": "2026-02-03T04:05:06+02:00",
        "gps_lat": pytest.approx(31.559, abs=1e-5),
        "gps_lon": pytest.approx(35.4732, abs=1e-5),
        "gps_alt": -430.5,
        "orientation": 8,
        "rating": 5,
        "label": "Green",
        "keywords": ["desert", "Négev"],
        "exif": summary["exif"],
        "warnings": [],
    }
    raw = summary["exif"]
    assert raw["Exif.Image.Make"] == "Canon" and raw["Exif.Photo.ExposureTime"] == "1/8"
    assert raw["Exif.GPSInfo.GPSLatitudeRef"] == "N"
    json.dumps(summary)  # the catalog stores it as JSON
    assert all(isinstance(v, str) for v in raw.values())


def test_read_summary_without_offset_or_gps(tmp_path):
    path = write_sample_photo(tmp_path / "x.jpg", size=(64, 48), offset=None, gps=None,
                              exposure_time="2")
    summary = read_summary(path)
    assert summary["date_taken"] == "2026-06-21T19:42:10"
    assert summary["exposure_time"] == "2"
    assert (summary["gps_lat"], summary["gps_lon"], summary["gps_alt"]) == (None, None, None)


def test_read_summary_never_raises(tmp_path):
    good = write_sample_photo(tmp_path / "good.jpg", size=(256, 192))

    truncated = write_truncated_jpeg(tmp_path / "half.jpg", good)
    summary = read_summary(truncated)  # metadata sits before the cut
    assert summary["make"] == "FUJIFILM"

    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a photo at all" * 20)
    summary = read_summary(junk)
    assert summary["make"] is None and summary["warnings"]

    summary = read_summary(tmp_path / "missing.jpg")
    assert summary["warnings"] and summary["keywords"] == []

    # A corrupt IFD0: exiv2 (through pyexiv2) raises; we still get what can be read.
    data = bytearray(good.read_bytes())
    at = data.find(b"Exif\x00\x00") + 6
    data[at + 8 : at + 10] = b"\xff\xff"  # IFD0 entry count
    broken = tmp_path / "broken-exif.jpg"
    broken.write_bytes(bytes(data))
    summary = read_summary(broken)
    assert summary["warnings"]
    assert summary["keywords"] == ["sample", "photobatch"]  # IPTC/XMP survived

    # Nonsense values are ignored with a warning, not raised.
    img = pyexiv2.ImageData(good.read_bytes())
    img.modify_exif({"Exif.Photo.DateTimeOriginal": "0000:00:00 00:00:00",
                     "Exif.Image.Orientation": "9", "Exif.Photo.FNumber": "0/0",
                     "Exif.Image.Make": "Sch\xf6n"}, encoding="latin-1")
    odd = tmp_path / "odd.jpg"
    odd.write_bytes(img.get_bytes())
    img.close()
    summary = read_summary(odd)
    assert summary["make"] == "Schön"  # Latin-1 in an ASCII tag, as old cameras write
    assert summary["orientation"] is None and summary["f_number"] is None
    assert summary["date_taken"] == "2026-06-21T19:42:10+02:00"  # falls back to Digitized
    assert len(summary["warnings"]) == 3


def test_icc_profile_convenience(tmp_path):
    assert icc_profile(write_sample_photo(tmp_path / "a.jpg", size=(32, 24))) == srgb_profile()
    assert icc_profile(write_sample_photo(tmp_path / "b.jpg", size=(32, 24), icc=False)) is None
    with pytest.raises(MetadataError):
        icc_profile(tmp_path / "missing.jpg")


# ---------------------------------------------------------------- every source format


def test_maker_note_is_kept(source, tmp_path, read_meta):
    src_exif = read_meta(source)[0]
    assert src_exif["Exif.Fujifilm.Quality"] == "NORMAL" and "Exif.Photo.MakerNote" in src_exif
    output = tmp_path / "out.jpg"
    transfer(source, output)
    exif = read_meta(output)[0]
    for key in [k for k in src_exif if k.startswith("Exif.Fujifilm.")]:
        assert exif[key] == src_exif[key], key


@pytest.mark.parametrize("kind", ["dng", "heic", "tiff16", "png16"])
def test_every_source_format_to_jpeg_checked_by_exiftool(tmp_path, kind, exiftool):
    from photobatch.daemon import sample_formats as formats

    writers = {"dng": formats.write_sample_dng, "heic": formats.write_sample_heic,
               "tiff16": formats.write_sample_tiff16,
               "png16": lambda p, **kw: formats.write_sample_png(p, bits=16, **kw)}
    suffix = {"dng": ".dng", "heic": ".heic", "tiff16": ".tif", "png16": ".png"}[kind]
    source = writers[kind](tmp_path / f"src{suffix}", size=(96, 64),
                           gps=(40.6892, -74.0445, 10.0))
    output = tmp_path / f"{kind}.jpg"
    Image.new("RGB", (96, 64), (90, 120, 150)).save(output, quality=90)
    write_output_metadata(source, output, width=96, height=64, record=RECORD)
    src, out = exiftool.json(source, "-a", "-all"), exiftool.json(output, "-a", "-all")
    for tag in ("Make", "Model", "LensModel", "ExposureTime", "FNumber", "ISO", "FocalLength",
                "DateTimeOriginal", "GPSLatitude", "GPSLongitude", "GPSAltitude"):
        assert out[tag] == src[tag], (kind, tag)
    assert out["Orientation"] == 1
    assert validation_warnings(exiftool, output) == set()
    assert read_record(output) == RECORD
    summary = read_summary(output)
    assert summary["warnings"] == [] and summary["gps_lat"] == pytest.approx(40.6892, abs=1e-4)


def test_exiv2_warnings_stay_off_standard_output(tmp_path, capfd):
    # pyexiv2 prints exiv2's warnings to stdout from C++, where they would break the CLI's
    # JSON; copying a DNG's EXIF into a JPEG makes exiv2 warn about the DNG's strip offsets.
    from photobatch.daemon.sample_formats import write_sample_dng

    dng = write_sample_dng(tmp_path / "IMG_0001.dng", size=(96, 64), orientation=6)
    output = tmp_path / "out.jpg"
    Image.new("RGB", (96, 64)).save(output)
    capfd.readouterr()
    write_output_metadata(dng, output, width=96, height=64, record=RECORD)
    out, err = capfd.readouterr()
    assert "[warn]" not in out + err, out + err
    assert read_record(output) == RECORD


def test_inspect_prints_the_record_of_any_file(tmp_path):
    from click.testing import CliRunner

    from photobatch.daemon.cli import main
    from photobatch.daemon.sample_formats import write_sample_dng

    dng = write_sample_dng(tmp_path / "IMG_0001.dng", size=(96, 64), orientation=6)
    output = tmp_path / "out.jpg"
    Image.new("RGB", (96, 64)).save(output, icc_profile=srgb_profile())
    write_output_metadata(dng, output, width=96, height=64, record=RECORD)
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo")

    # Through `photobatch`, as users call it: a command invoked on its own caches a help
    # option without the group's -h, which later --help output (and docs/cli.md) would show.
    result = CliRunner().invoke(main, ["inspect", str(dng), str(output), str(junk)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "format        raw (DNG), 96x64" in text
    for line in ("camera make   Canon", "exposure      1/250 s", "aperture      f/5.6",
                 "taken         2026-06-21T19:42:10+02:00", "latitude      48.8584",
                 "orientation   6", "colour        sRGB built-in",
                 "photobatch    Recipe: golden-hour", "warning: not a photo format"):
        assert line in text, line
    data = json.loads(CliRunner().invoke(main, ["inspect", "--json", str(dng)]).output)
    assert (data["make"], data["width"], data["height"], data["iso"]) == ("Canon", 96, 64, 200)
    missing = CliRunner().invoke(main, ["inspect", str(tmp_path / "nope.jpg")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
