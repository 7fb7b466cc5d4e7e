"""``photobatch run`` end to end: generated JPEGs in, full-size outputs with the source's EXIF out."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3

import numpy as np
import pyexiv2
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from photobatch.daemon.cli import main
from photobatch.daemon.samples import write_sample_photo, write_truncated_jpeg

KEPT_TAGS = ("Exif.Image.Make", "Exif.Image.Model", "Exif.Photo.DateTimeOriginal",
             "Exif.GPSInfo.GPSLatitude", "Exif.GPSInfo.GPSLatitudeRef",
             "Exif.GPSInfo.GPSLongitude", "Exif.GPSInfo.GPSLongitudeRef", "Exif.Photo.LensModel")


@pytest.fixture()
def shoot(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_sample_photo(inbox / "DSCF0001.JPG", size=(320, 240), orientation=1, seed=1)
    write_sample_photo(inbox / "IMG_0002.JPG", size=(240, 320), orientation=6, seed=2,
                       make="Canon", model="EOS R6m2", lens="RF24-105mm F4 L IS USM",
                       gps=(-33.8568, 151.2153, 12.0), date_taken="2026:03:01 07:15:00",
                       offset="+11:00", scene="portrait")
    write_truncated_jpeg(inbox / "DSCF0003.JPG", inbox / "DSCF0001.JPG")
    (inbox / "notes.txt").write_text("not a photo")  # not a photo name: ignored when walking
    (inbox / ".DSCF0004.JPG.part").write_bytes(b"half")  # a copy in progress: ignored
    return inbox


def _exif(path):
    with pyexiv2.Image(str(path)) as img:
        return img.read_exif()


def _icc(path):
    with Image.open(path) as img:
        return img.info.get("icc_profile")


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_run_writes_full_size_outputs_with_the_source_metadata(shoot, tmp_path, standin_model):
    db, out = tmp_path / "catalog.db", tmp_path / "out"
    originals = {p.name: _sha(p) for p in shoot.iterdir()}
    result = _invoke("--catalog", db, "run", shoot, "--recipe", "color-correct",
                     "--model", standin_model, "--out", out)
    assert result.exit_code == 1, result.output  # the truncated file failed
    assert "2 done, 0 skipped, 1 failed" in result.output
    assert "DSCF0003.JPG: error while reading DSCF0003.JPG: cannot be decoded" in result.output

    for name in ("DSCF0001", "IMG_0002"):
        src, dst = shoot / f"{name}.JPG", out / f"{name}_color-correct.jpg"
        with Image.open(src) as s, Image.open(dst) as d:
            assert d.size == ImageOps.exif_transpose(s).size
        src_exif, dst_exif = _exif(src), _exif(dst)
        for tag in KEPT_TAGS:
            assert dst_exif.get(tag) == src_exif.get(tag), tag
        assert dst_exif["Exif.Image.Orientation"] == "1"
        assert (dst_exif["Exif.Photo.PixelXDimension"], dst_exif["Exif.Photo.PixelYDimension"]) == (
            str(d.size[0]), str(d.size[1]))
        assert _icc(dst) == _icc(src) is not None
    assert sorted(p.name for p in out.iterdir()) == ["DSCF0001_color-correct.jpg",
                                                     "IMG_0002_color-correct.jpg"]
    # Originals are never modified.
    assert {p.name: _sha(p) for p in shoot.iterdir()} == originals

    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    files = {r["path"].rsplit("/", 1)[1]: dict(r) for r in con.execute("SELECT * FROM files")}
    assert set(files) == {"DSCF0001.JPG", "IMG_0002.JPG", "DSCF0003.JPG"}
    good = files["IMG_0002.JPG"]
    assert good["sha256"] == originals["IMG_0002.JPG"]
    assert good["size"] == (shoot / "IMG_0002.JPG").stat().st_size and good["mtime"] > 0
    assert (good["format"], good["width"], good["height"]) == ("jpeg", 240, 320)
    assert (good["camera_make"], good["camera_model"]) == ("Canon", "EOS R6m2")
    assert good["date_taken"].startswith("2026-03-01T07:15:00")
    assert json.loads(good["exif"])["gps_lat"] == pytest.approx(-33.8568, abs=1e-4)
    runs = {r["file_id"]: dict(r) for r in con.execute("SELECT * FROM runs")}
    run = runs[good["id"]]
    assert run["status"] == "done" and run["attempts"] == 1 and run["recipe"] == "color-correct"
    assert len(run["recipe_fingerprint"]) == 64 and run["model_id"] == str(standin_model)
    assert json.loads(run["params"])["strength"] == 0.2 and isinstance(run["seed"], int)
    assert set(json.loads(run["timings"])) == {"identify", "read", "run", "restore", "write"}
    assert run["output_sha256"] == _sha(out / "IMG_0002_color-correct.jpg")
    bad = runs[files["DSCF0003.JPG"]["id"]]
    assert bad["status"] == "failed" and "truncated" in bad["error"]

    # The XMP record says what was done.
    with pyexiv2.Image(str(out / "IMG_0002_color-correct.jpg")) as img:
        xmp = img.read_xmp()
    assert xmp["Xmp.photobatch.Recipe"] == "color-correct"
    assert xmp["Xmp.photobatch.Seed"] == str(run["seed"])
    assert xmp["Xmp.photobatch.SourceSHA256"] == originals["IMG_0002.JPG"]


def test_second_run_skips_and_force_reproduces_the_same_pixels(shoot, tmp_path, standin_model):
    db, out = tmp_path / "catalog.db", tmp_path / "out"
    args = ("--catalog", db, "run", shoot / "DSCF0001.JPG", "--recipe", "color-correct",
            "--model", standin_model, "--out", out)
    assert _invoke(*args).exit_code == 0
    output = out / "DSCF0001_color-correct.jpg"
    first_pixels = np.asarray(Image.open(output))
    first_mtime = output.stat().st_mtime_ns

    again = _invoke(*args)
    assert again.exit_code == 0 and "0 done, 1 skipped, 0 failed" in again.output
    assert output.stat().st_mtime_ns == first_mtime

    forced = _invoke(*args, "--force")
    assert forced.exit_code == 0 and "1 done, 0 skipped, 0 failed" in forced.output
    assert np.array_equal(np.asarray(Image.open(output)), first_pixels)  # same seed, same pixels
    assert sorted(p.name for p in out.iterdir()) == ["DSCF0001_color-correct.jpg"]
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT status FROM runs ORDER BY id")] == ["done", "done"]
    seeds = {r[0] for r in con.execute("SELECT seed FROM runs")}
    assert len(seeds) == 1

    # Another output folder asked for is one more output, the same pixels: done there is not
    # done here (as an export to another folder in Lightroom exports again).
    elsewhere = tmp_path / "for-the-client"
    forced_mtime = output.stat().st_mtime_ns
    other = _invoke(*args[:-1], elsewhere)
    assert other.exit_code == 0 and "1 done, 0 skipped, 0 failed" in other.output
    assert np.array_equal(np.asarray(Image.open(elsewhere / "DSCF0001_color-correct.jpg")), first_pixels)
    assert output.stat().st_mtime_ns == forced_mtime  # the first folder's is left as it was
    assert "0 done, 1 skipped" in _invoke(*args[:-1], elsewhere).output


def test_catalog_ls_and_show(shoot, tmp_path, standin_model):
    db = tmp_path / "catalog.db"
    _invoke("--catalog", db, "run", shoot, "--recipe", "color-correct", "--model", standin_model,
            "--out", tmp_path / "out")
    listing = _invoke("--catalog", db, "catalog", "ls")
    assert listing.exit_code == 0
    lines = listing.output.splitlines()
    assert lines[0].split() == ["file", "camera", "taken", "rating", "recipe", "status", "output",
                                "/", "error"]
    row = next(line for line in lines if line.startswith("IMG_0002.JPG"))
    assert "EOS R6m2" in row and "done" in row and "IMG_0002_color-correct.jpg" in row
    assert " ★★★ " in row  # the sample's own XMP rating
    assert "failed" in next(line for line in lines if line.startswith("DSCF0003.JPG"))
    as_json = json.loads(_invoke("--catalog", db, "catalog", "ls", "--json").output)
    assert {r["status"] for r in as_json} == {"done", "failed"}

    shown = _invoke("--catalog", db, "catalog", "show", shoot / "IMG_0002.JPG")
    assert shown.exit_code == 0
    assert re.search(r"^run \d+: color-correct done$", shown.output, re.M)
    for expected in ("camera_model  EOS R6m2", "seed ",
                     "recipe_fingerprint", "model_id", "timings", "output_sha256"):
        assert expected in shown.output
    # Read as a photographer reads them, not as a JSON blob.
    assert re.search(r"^  exposure +1/\d+ s · f/[\d.]+ · ISO \d+ · \d+ mm$", shown.output, re.M)
    assert re.search(r"^  timings +identify [\d.]+ s · read [\d.]+ s · run [\d.]+ s", shown.output, re.M)
    assert re.search(r"^  metadata +\d+ EXIF tag\(s\) recorded", shown.output, re.M)
    assert re.search(r"^  settings +strength 0.2 · steps 30 \(6 denoising\) · CFG 6(\.0)? · "
                     r"sampler DPM\+\+ 2M", shown.output, re.M)
    assert re.search(r"^  prompt +a professional photograph", shown.output, re.M)
    # Rated in Lightroom since: the sidecar's stars and label are what is shown.
    (shoot / "IMG_0002.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmp:Rating="2" xmp:Label="Red"/></rdf:RDF></x:xmpmeta>')
    rated = _invoke("--catalog", db, "catalog", "show", shoot / "IMG_0002.JPG")
    assert re.search(r"^  rating +★★☆☆☆ · Red$", rated.output, re.M)
    as_json = json.loads(_invoke("--catalog", db, "catalog", "show", shoot / "IMG_0002.JPG",
                                 "--json").output)
    assert (as_json["rating"], as_json["labels"]) == (2, ["Red"])
    assert as_json["metadata"]["exif"]["Exif.Image.Model"].endswith("EOS R6m2")
    [run] = as_json["runs"]
    assert run["status"] == "done" and run["params"]["strength"] == 0.2
    assert set(run["timings"]) >= {"read", "run", "write"}
    missing = _invoke("--catalog", db, "catalog", "show", tmp_path / "nope.jpg")
    assert missing.exit_code == 1 and "is not in the catalog" in missing.output


def test_unknown_recipe_and_missing_model_are_one_line_errors(shoot, tmp_path, standin_model):
    db = tmp_path / "c.db"
    unknown = _invoke("--catalog", db, "run", shoot, "--recipe", "colour-correct", "--model", standin_model)
    assert unknown.exit_code == 1
    assert re.search(r"Error: no recipe called 'colour-correct'; did you mean 'color-correct'\? "
                     r"\(known: .*color-correct", unknown.output)
    no_model = _invoke("--catalog", db, "run", shoot, "--recipe", "color-correct")
    assert no_model.exit_code == 1 and "pass --model PATH" in no_model.output
    assert "Traceback" not in unknown.output + no_model.output
    # A recipe of variants with no default: the variants to choose from.
    season = _invoke("--catalog", db, "run", shoot, "--recipe", "season", "--model", standin_model)
    assert season.exit_code == 1
    assert ("Error: recipe 'season' has variants and no default; say which: season:autumn, "
            "season:spring, season:summer, season:winter") in season.output
    # Every recipe is checked before any photo: a typo in the second runs nothing.
    second = _invoke("--catalog", db, "run", shoot, "--recipe", "color-correct", "--recipe",
                     "seasn:winter", "--model", standin_model, "--out", tmp_path / "out")
    assert second.exit_code == 1 and "did you mean 'season:winter'?" in second.output
    assert not (tmp_path / "out").exists()


def test_run_with_several_recipes_gives_each_photo_an_output_of_each(shoot, tmp_path, standin_model):
    db, out = tmp_path / "c.db", tmp_path / "out"
    result = _invoke("--catalog", db, "run", shoot / "DSCF0001.JPG", shoot / "IMG_0002.JPG",
                     "--recipe", "color-correct", "--recipe", "time-of-day:blue-hour",
                     "--recipe", "color-correct", "--model", standin_model, "--out", out)
    assert result.exit_code == 0, result.output
    assert "4 done, 0 skipped, 0 failed" in result.output  # the repeated recipe runs once
    assert re.search(r"^done +IMG_0002.JPG \[time-of-day:blue-hour\] -> ", result.output, re.M)
    assert sorted(p.name for p in out.iterdir()) == [
        "DSCF0001_color-correct.jpg", "DSCF0001_time-of-day-blue-hour.jpg",
        "IMG_0002_color-correct.jpg", "IMG_0002_time-of-day-blue-hour.jpg"]
    runs = sqlite3.connect(db).execute(
        "SELECT recipe, status, count(*) FROM runs GROUP BY recipe, status ORDER BY recipe").fetchall()
    assert runs == [("color-correct", "done", 2), ("time-of-day:blue-hour", "done", 2)]
