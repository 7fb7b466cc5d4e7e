"""``photobatch export files``: Lightroom's Export dialog over the catalog's outputs: sized,
converted, sharpened, marked, named, under a file size, metadata filtered; never over a file
it did not write, and exporting again updates only what changed."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pyexiv2
import pytest
from PIL import Image

from photobatch.plugins.colour import profile_description
from photobatch.plugins.files_export import file_size, sizing
from tests.test_gallery import Studio, private_home


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-files")
    with pytest.MonkeyPatch.context() as mp:
        private_home(mp, root)
        yield Studio(root)


def _export(studio, out, *args, code=0):
    result = studio.cli("export", "files", "--out", out, *args)
    assert result.exit_code == code, result.output
    return result


def _meta(path):
    with pyexiv2.Image(str(path)) as img:
        return img.read_exif(), img.read_xmp(), img.read_iptc()


def _outputs(studio):
    return sorted(studio.out.glob("*.jpg"))


def test_files_are_sized_named_in_the_order_taken_and_lose_the_location(studio, tmp_path):
    out = tmp_path / "web"
    result = _export(studio, out, "--long-edge", "300", "--name", "Alps-{n}_{stem}")
    assert "exported 3 file(s)" in result.output and "3 written" in result.output
    names = sorted(p.name for p in out.glob("*.jpg"))
    # In the order taken: DSCF0001 (21 June), IMG_0002 (22 June), DSCF0003 (23 June).
    assert names == ["Alps-001_DSCF0001.jpg", "Alps-002_IMG_0002.jpg", "Alps-003_DSCF0003.jpg"]
    for name in names:
        stem = name.split("_", 1)[1][:-4]
        output = next(p for p in _outputs(studio) if p.name.startswith(stem))
        with Image.open(output) as full, Image.open(out / name) as small:
            assert max(small.size) == 300
            assert small.size[0] / small.size[1] == pytest.approx(full.size[0] / full.size[1], abs=0.01)
            assert profile_description(small.info.get("icc_profile")) == "sRGB built-in"
        exif, xmp, _ = _meta(out / name)
        assert not [k for k in exif if k.startswith("Exif.GPSInfo.")]  # no-location by default
        assert exif["Exif.Photo.PixelXDimension"] == str(small.size[0])
        assert xmp["Xmp.photobatch.Recipe"] == "golden-hour"  # the record goes along
        assert exif["Exif.Image.Model"]


def test_a_picture_is_never_enlarged_and_metadata_policies_hold(studio, tmp_path):
    out = tmp_path / "lab"
    _export(studio, out, "--long-edge", "5000", "--metadata", "copyright-only", "--format", "tiff")
    files = sorted(out.glob("*.tif"))
    assert len(files) == 3
    by_size = {Image.open(p).size for p in _outputs(studio)}
    assert {Image.open(p).size for p in files} == by_size  # the outputs' own sizes
    exif, xmp, iptc = _meta(files[0])
    assert "Exif.Image.Model" not in exif and not [k for k in xmp if "photobatch" in k]
    assert exif["Exif.Image.Copyright"] == "Copyright 2026 Jane Doe, all rights reserved"
    _export(studio, tmp_path / "bare", "--metadata", "none")
    exif, xmp, _ = _meta(next((tmp_path / "bare").glob("*.jpg")))
    assert "Exif.Image.Copyright" not in exif and "Exif.Image.Model" not in exif


def test_adobe_rgb_files_carry_the_profile_and_the_colours_converted(studio, tmp_path):
    _export(studio, tmp_path / "srgb", "--name", "{stem}", "--quality", "100")
    _export(studio, tmp_path / "argb", "--name", "{stem}", "--quality", "100", "--color-space", "adobe-rgb")
    with Image.open(tmp_path / "srgb" / "DSCF0001.jpg") as s, Image.open(tmp_path / "argb" / "DSCF0001.jpg") as a:
        assert profile_description(a.info["icc_profile"]).startswith("Adobe RGB (1998)")
        srgb, argb = np.asarray(s, dtype=float), np.asarray(a, dtype=float)
    # Adobe RGB's wider primaries take smaller numbers for the same saturated colour.
    saturation = lambda px: (px.max(axis=2) - px.min(axis=2)).mean()  # noqa: E731
    assert saturation(argb) < saturation(srgb) - 2


def test_sharpening_for_screen_adds_fine_contrast(studio, tmp_path):
    _export(studio, tmp_path / "soft", "--long-edge", "400", "--name", "{stem}", "--quality", "100")
    _export(studio, tmp_path / "sharp", "--long-edge", "400", "--name", "{stem}", "--quality", "100",
            "--sharpen", "screen", "--sharpen-amount", "high")

    def detail(path):
        grey = np.asarray(Image.open(path).convert("L"), dtype=float)
        return np.abs(np.diff(grey, axis=1)).mean()

    soft, sharp = detail(tmp_path / "soft" / "IMG_0002.jpg"), detail(tmp_path / "sharp" / "IMG_0002.jpg")
    assert sharp > soft * 1.1


def test_max_size_gives_the_best_quality_under_the_limit_metadata_included(studio, tmp_path):
    out = tmp_path / "email"
    _export(studio, out, "--max-size", "60K", "--quality", "95")
    files = sorted(out.glob("*.jpg"))
    assert len(files) == 3 and all(p.stat().st_size <= 60_000 for p in files)
    assert max(p.stat().st_size for p in files) > 54_000  # not lowered further than needed
    tiny = _export(studio, tmp_path / "tiny", "--max-size", "10K", "--quality", "95", code=1)
    assert "over 10K even at quality 30 (its metadata takes" in tiny.output


def test_quality_search_takes_the_highest_that_fits():
    sizes = {q: 1000 + 100 * q for q in range(1, 101)}  # bigger with quality, as JPEGs are
    calls = []

    def encode(q):
        calls.append(q)
        return b"x" * sizes[q]

    data, quality = file_size.encode_within(encode, limit=8000, quality=95)
    assert quality == 70 and len(data) == 8000 and len(calls) <= 8
    assert file_size.encode_within(encode, limit=20_000, quality=90)[1] == 90
    with pytest.raises(file_size.TooBigForLimit, match="even at quality 30"):
        file_size.encode_within(encode, limit=3000, quality=95)


def test_sizes_and_file_sizes_as_people_write_them():
    assert sizing.fitted_size(6000, 4000, long_edge=2048) == (2048, 1365)
    assert sizing.fitted_size(4000, 6000, short_edge=1080) == (1080, 1620)
    assert sizing.fitted_size(6000, 4000, megapixels=6) == (3000, 2000)
    assert sizing.fitted_size(800, 600, long_edge=2048) == (800, 600)  # never enlarged
    assert sizing.fitted_size(800, 600) == (800, 600)
    assert sizing.parse_file_size("500K") == 500_000
    assert sizing.parse_file_size("2.5 MB") == 2_500_000
    assert sizing.parse_file_size("800000") == 800_000
    for bad in ("lots", "5K", "-2M"):
        with pytest.raises(ValueError):
            sizing.parse_file_size(bad)


def test_exporting_again_skips_what_is_unchanged_and_never_overwrites_a_stranger(studio, tmp_path):
    out = tmp_path / "client"
    out.mkdir()
    stranger = out / "Alps-002.jpg"
    stranger.write_bytes(b"the client's own file")
    first = _export(studio, out, "--name", "Alps-{n}", "--long-edge", "200", "--zip")
    assert "3 written" in first.output
    names = sorted(p.name for p in out.glob("*.jpg"))
    assert names == ["Alps-001.jpg", "Alps-002-2.jpg", "Alps-002.jpg", "Alps-003.jpg"]
    assert stranger.read_bytes() == b"the client's own file"
    with zipfile.ZipFile(out / "client.zip") as archive:
        assert sorted(archive.namelist()) == ["Alps-001.jpg", "Alps-002-2.jpg", "Alps-003.jpg"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("Alps-00?*.jpg")}

    again = _export(studio, out, "--name", "Alps-{n}", "--long-edge", "200")
    assert "0 written, 3 unchanged" in again.output
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("Alps-00?*.jpg")} == mtimes

    bigger = _export(studio, out, "--name", "Alps-{n}", "--long-edge", "250")
    assert "3 written" in bigger.output  # other settings: made again, under the same names
    assert sorted(p.name for p in out.glob("*.jpg")) == names
    assert max(Image.open(out / "Alps-002-2.jpg").size) == 250
    assert stranger.read_bytes() == b"the client's own file"
    manifest = json.loads((out / ".photobatch-export.json").read_text())
    assert sorted(manifest["files"]) == ["Alps-001.jpg", "Alps-002-2.jpg", "Alps-003.jpg"]


def test_a_watermark_takes_each_photos_year_and_artist(studio, tmp_path):
    _export(studio, tmp_path / "plain", "--name", "{stem}", "--quality", "100")
    _export(studio, tmp_path / "marked", "--name", "{stem}", "--quality", "100",
            "--watermark", "© {year} {artist}", "--watermark-position", "top-left")
    plain = np.asarray(Image.open(tmp_path / "plain" / "IMG_0002.jpg"), dtype=float)
    marked = np.asarray(Image.open(tmp_path / "marked" / "IMG_0002.jpg"), dtype=float)
    h, w = plain.shape[:2]
    changed = np.abs(marked - plain).max(axis=2) > 40
    assert changed[: h // 4, : w // 2].mean() > 0.005  # the mark, top left
    assert changed[h // 2:, w // 2:].mean() < 0.001  # nothing elsewhere


def test_a_photo_that_cannot_be_exported_is_left_out_with_why_and_the_rest_go(studio, tmp_path):
    from photobatch.plugins.exporting import ExportOptions
    from photobatch.plugins.files_export import FilesExporter
    from photobatch.plugins.manager import build_plugin_manager, collect

    pm = build_plugin_manager(entrypoints=False)
    readers, writers = collect(pm, "photobatch_readers", "reader"), collect(pm, "photobatch_writers", "writer")
    good = _item(_outputs(studio)[0], {"exif": {"Exif.Image.Artist": "Jane Doe"}})
    broken_output = tmp_path / "IMG_0009_golden-hour.jpg"
    broken_output.write_bytes(b"\xff\xd8\xff not a JPEG")
    no_artist = _item(_outputs(studio)[1], {"exif": {}})
    said = []
    result = FilesExporter().export(
        [good, _item(broken_output, good.metadata), no_artist], tmp_path / "out",
        ExportOptions(values={"watermark": "{artist}"}, readers=list(readers), writers=writers,
                      echo=said.append))
    assert [p.name for p in result.written] == [good.output.name]
    assert sorted(said) == [
        f"left out {no_artist.source.name} [golden-hour]: the watermark takes {{artist}} from the "
        "photo, whose metadata has none",
        f"left out {broken_output.with_suffix('.JPG').name} [golden-hour]: {broken_output.name}: "
        "not an image Pillow can read"]
    assert len(result.left_out) == 2 and "left out" in str(result)


def _item(output, metadata):
    from photobatch.plugins.exporting import ExportItem

    return ExportItem(source=output.with_suffix(".JPG"), output=output, recipe="golden-hour",
                      params={}, seed=1, model="m", run_id=1, source_sha256="0" * 64,
                      output_sha256=None, processed_at=None, metadata=metadata)


def test_options_that_cannot_work_are_one_line_errors(studio, tmp_path):
    for args, message in (
        (("--long-edge", "300", "--short-edge", "200"), "--long-edge and --short-edge: a file is fitted to one"),
        (("--format", "webp"), "--format webp: no writer for it (known: jpeg, png, tiff"),
        (("--format", "png", "--max-size", "1M"), "--max-size is for JPEG files"),
        (("--max-size", "lots"), "--max-size: 'lots' is not a file size"),
        (("--name", "{shoot}"), "--name '{shoot}' has an unknown token {shoot}"),
    ):
        result = _export(studio, tmp_path / "x", *args, code=1)
        assert message in result.output and "Traceback" not in result.output


def test_an_export_into_a_watched_folder_is_refused(studio, tmp_path):
    inbox = tmp_path / "Inbox"
    config = tmp_path / "config.toml"
    config.write_text(f'[[watch]]\npath = "{inbox}"\nrecipes = ["golden-hour"]\n'
                      f'output = "{tmp_path / "Enhanced"}"\n')
    for exporter in ("files", "gallery"):
        result = studio.cli("--config", config, "export", exporter, "--out", inbox / "for-client")
        assert result.exit_code == 1
        assert (f"--out {inbox / 'for-client'} is inside the watched folder {inbox}: the daemon "
                "would take the exported files for new photos") in result.output
        assert not (inbox / "for-client").exists()


def _exporter_parts():
    from photobatch.plugins.manager import build_plugin_manager, collect

    pm = build_plugin_manager(entrypoints=False)
    return list(collect(pm, "photobatch_readers", "reader")), collect(pm, "photobatch_writers", "writer")


def _export_items(items, out, **values):
    from photobatch.plugins.exporting import ExportOptions
    from photobatch.plugins.files_export import FilesExporter

    readers, writers = _exporter_parts()
    from photobatch.plugins.exporting import ExportError

    said = []
    try:
        result = FilesExporter().export(items, out, ExportOptions(
            values=values, readers=readers, writers=writers, echo=said.append))
    except ExportError as exc:
        said.append(str(exc))
        result = None
    return result, said


def test_a_16_bit_output_stays_16_bit_in_its_own_space_and_8_when_converted(tmp_path):
    import tifffile

    from photobatch.plugins.builtin.tiff_writer import TiffWriter
    from photobatch.plugins.colour import profile_for

    ramp = np.linspace(0, 65535, 300, dtype=np.float64)
    pixels = np.stack([np.tile(ramp, (200, 1)), np.tile(ramp[::-1], (200, 1)),
                       np.full((200, 300), 30000.0)], axis=-1).astype(np.uint16)
    output = tmp_path / "IMG_0001_look.tif"
    TiffWriter().write(pixels, output, icc_profile=profile_for("srgb"), bit_depth=16)
    item = _item(output, {})

    result, _ = _export_items([item], tmp_path / "lab", file_format="tiff", long_edge=150)
    kept = tifffile.imread(result.written[0])
    assert kept.dtype == np.uint16 and kept.shape == (100, 150, 3)
    assert np.count_nonzero(kept % 257) > kept.size // 2  # real 16-bit values, not 8 bits x 257
    result, _ = _export_items([item], tmp_path / "argb", file_format="tiff", color_space="adobe-rgb")
    assert tifffile.imread(result.written[0]).dtype == np.uint8  # converted: LittleCMS at 8 bits
    result, said = _export_items([item], tmp_path / "asked", file_format="tiff", bit_depth="16",
                                 color_space="adobe-rgb")
    assert result is None and said == [
        "left out IMG_0001_look.JPG [golden-hour]: 16 bits are kept in the output's own colour "
        "space only: add --color-space source", "no file could be exported (see the reasons above)"]
    result, _ = _export_items([item], tmp_path / "web", long_edge=150)
    assert Image.open(result.written[0]).mode == "RGB"  # a JPEG: 8 bits


def test_a_cut_out_keeps_its_transparency_in_png_and_goes_on_white_in_jpeg(tmp_path):
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 40, 40)
    yy, xx = np.mgrid[:200, :200]
    rgba[..., 3] = np.where((yy - 100) ** 2 + (xx - 100) ** 2 < 70 ** 2, 255, 0)  # a red disc
    output = tmp_path / "PROD_1_cutout.png"
    Image.fromarray(rgba, "RGBA").save(output)
    item = _item(output, {})

    result, _ = _export_items([item], tmp_path / "shop", file_format="png", long_edge=100)
    with Image.open(result.written[0]) as png:
        assert png.mode == "RGBA" and png.size == (100, 100)
        a = np.asarray(png)
    assert a[0, 0, 3] == 0 and a[50, 50, 3] == 255 and tuple(a[50, 50, :3]) == (200, 40, 40)
    edge = (a[..., 3] > 20) & (a[..., 3] < 235)
    # Edge pixels keep the disc's red (Lanczos rings a little darker), not a mix with white.
    assert edge.any() and (a[edge][:, 1:3].astype(int) - 40).max() <= 15
    result, _ = _export_items([item], tmp_path / "web", long_edge=100)
    with Image.open(result.written[0]) as jpeg:
        assert jpeg.mode == "RGB" and min(jpeg.getpixel((2, 2))) >= 250  # on white


def test_sync_removes_what_the_selection_no_longer_has_but_never_a_stranger(studio, tmp_path):
    out = tmp_path / "publish"
    out.mkdir()
    (out / "notes.txt").write_text("the client's")
    assert "3 written" in _export(studio, out).output
    one = studio.shoot / "DSCF0001.JPG"
    kept = _export(studio, out, one)  # without --sync an export only adds
    assert "0 written, 1 unchanged" in kept.output and len(list(out.glob("*.jpg"))) == 3
    touched = next(p for p in out.glob("IMG_0002*.jpg"))
    touched.write_bytes(touched.read_bytes() + b"edited by hand")  # no longer as exported
    synced = _export(studio, out, one, "--sync")
    assert "0 written, 1 unchanged, 1 removed" in synced.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "DSCF0001_golden-hour.jpg", touched.name, "notes.txt"]


def test_photos_made_side_by_side_are_the_files_made_one_by_one(studio, tmp_path):
    _export(studio, tmp_path / "one", "--jobs", "1", "--long-edge", "300", "--sharpen", "screen")
    _export(studio, tmp_path / "three", "--jobs", "3", "--long-edge", "300", "--sharpen", "screen")
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").glob("*.jpg")}
    three = {p.name: p.read_bytes() for p in (tmp_path / "three").glob("*.jpg")}
    assert len(one) == 3 and one == three


def test_a_file_half_written_by_a_killed_export_is_cleaned_up(studio, tmp_path):
    out = tmp_path / "web"
    out.mkdir()
    dead = out / ".DSCF0001_golden-hour.jpg.999999999.tmp"  # no such process
    dead.write_bytes(b"half a JPEG")
    running = out / f".Shoot-001.jpg.{os.getpid()}.tmp"  # another export going on now
    running.write_bytes(b"being written")
    _export(studio, out, "--long-edge", "100")
    assert not dead.exists() and running.exists()


def test_a_slash_in_the_name_makes_subfolders_which_sync_and_zip_follow(studio, tmp_path):
    out = tmp_path / "by-day"
    _export(studio, out, "--name", "{date}/{stem}", "--long-edge", "100", "--zip")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == [
        "2026-06-21/DSCF0001.jpg", "2026-06-22/IMG_0002.jpg", "2026-06-23/DSCF0003.jpg"]
    with zipfile.ZipFile(out / "by-day.zip") as archive:
        assert sorted(archive.namelist()) == [
            "2026-06-21/DSCF0001.jpg", "2026-06-22/IMG_0002.jpg", "2026-06-23/DSCF0003.jpg"]
    # Nothing climbs out of the destination, whatever the template says.
    _export(studio, tmp_path / "safe", "--name", "../../{stem}", "--long-edge", "100")
    assert sorted(p.name for p in (tmp_path / "safe").glob("*.jpg")) == [
        "DSCF0001.jpg", "DSCF0003.jpg", "IMG_0002.jpg"]
    one = studio.shoot / "DSCF0001.JPG"
    synced = _export(studio, out, one, "--name", "{date}/{stem}", "--long-edge", "100", "--sync")
    assert "2 removed" in synced.output
    assert sorted(p.relative_to(out).as_posix() for p in out.iterdir() if p.is_dir()) == ["2026-06-21"]
