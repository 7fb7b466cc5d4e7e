"""The example plugins, end to end through ``photobatch run`` with the stand-in model.

- ``examples/photobatch-frame``: a package installed with pip (into a private folder put on
  sys.path), found through its ``photobatch`` entry point; it adds a step, a recipe that uses
  it and a command.
- ``examples/dropins/output_log.py``: a drop-in file that logs every output written.
- ``examples/dropins/webp_writer.py``: a drop-in writer a recipe picks by its format name.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from photobatch.daemon.cli import main
from photobatch.daemon.samples import write_sample_photo

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="session")
def frame_install(tmp_path_factory):
    """pip-install examples/photobatch-frame into a private target folder (once per run)."""
    work = tmp_path_factory.mktemp("frame-plugin")
    # Build from a copy: an in-tree build leaves build/ and an egg-info in examples/.
    shutil.copytree(EXAMPLES / "photobatch-frame", work / "src")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(work / "site"), str(work / "src")],
                   check=True, capture_output=True, text=True)
    return work / "site"


@pytest.fixture()
def frame_installed(frame_install, monkeypatch):
    """The example package, visible to this test's process as if installed."""
    monkeypatch.syspath_prepend(str(frame_install))
    yield frame_install
    for name in [m for m in sys.modules if m.startswith("photobatch_frame")]:
        del sys.modules[name]


@pytest.fixture()
def shoot(tmp_path):
    inbox = tmp_path / "inbox"
    write_sample_photo(inbox / "DSCF0001.JPG", size=(192, 128), seed=1)
    write_sample_photo(inbox / "IMG_0002.JPG", size=(128, 192), orientation=6, seed=2, scene="portrait")
    return inbox


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def test_the_installed_package_plugin_is_listed_from_its_entry_point(frame_installed):
    # A separate process, as a user would run it: only the entry point makes it known.
    env = dict(os.environ, PYTHONPATH=str(frame_installed))
    listing = subprocess.run([sys.executable, "-m", "photobatch.daemon.cli", "plugins"], env=env,
                             capture_output=True, text=True, check=True).stdout
    row = next(line for line in listing.splitlines() if line.startswith("frame "))
    assert row.split() == ["frame", "1.0.0", "package", "commands,", "post_steps,", "recipe_dirs,", "steps"]
    verbose = invoke("plugins", "--verbose").stdout
    assert "frame 1.0.0 (package: photobatch-frame (photobatch_frame))" in verbose
    assert "  steps: frame\n" in verbose and "  commands: frame\n" in verbose


def test_the_package_plugin_frames_its_recipe_outputs_through_photobatch_run(
        frame_installed, shoot, tmp_path, standin_model):
    db, out = tmp_path / "catalog.db", tmp_path / "out"
    result = invoke("--catalog", db, "run", shoot, "--recipe", "framed", "--model", standin_model,
                    "--out", out)
    assert result.exit_code == 0, result.output
    assert "2 done, 0 skipped, 0 failed" in result.stdout
    for name, size in (("DSCF0001", (192, 128)), ("IMG_0002", (128, 192))):
        pixels = np.asarray(Image.open(out / f"{name}_framed.jpg").convert("RGB")).astype(int)
        assert pixels.shape[1::-1] == size  # full size, upright (the second one is stored rotated)
        border = np.concatenate([pixels[:6].reshape(-1, 3), pixels[-6:].reshape(-1, 3),
                                 pixels[:, :6].reshape(-1, 3), pixels[:, -6:].reshape(-1, 3)])
        assert border.min() >= 235  # the 8 px white frame (JPEG blurs its inner edge)
        assert pixels[16:-16, 16:-16].mean() < 235  # the stand-in's noise inside the frame
    timings = [json.loads(t) for (t,) in sqlite3.connect(db).execute("SELECT timings FROM runs")]
    assert all("post" in t for t in timings)

    # Other recipes are not framed: the plugin selects its step for its own recipe only.
    plain = invoke("--catalog", db, "run", shoot / "DSCF0001.JPG", "--recipe", "color-correct",
                   "--model", standin_model, "--out", out)
    assert plain.exit_code == 0
    corner = np.asarray(Image.open(out / "DSCF0001_color-correct.jpg").convert("RGB"))[:6, :6]
    assert corner.min() < 235


def test_the_package_plugin_command(frame_installed, shoot, tmp_path):
    framed = tmp_path / "framed.png"
    result = invoke("frame", shoot / "DSCF0001.JPG", framed, "--width", "4", "--color", "black")
    assert result.exit_code == 0 and result.stdout.startswith("framed ")
    pixels = np.asarray(Image.open(framed))
    assert pixels[:4].max() == 0 and pixels[:, -4:].max() == 0 and pixels[4:-4, 4:-4].max() > 0
    bad = CliRunner().invoke(main, ["frame", str(shoot / "DSCF0001.JPG"), str(framed), "--width", "0"])
    assert bad.exit_code == 1 and "Error: frame width must be a whole number of pixels >= 1, got 0" in bad.output


def test_the_dropin_plugin_logs_every_output_written_through_photobatch_run(shoot, tmp_path, standin_model):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(EXAMPLES / "dropins" / "output_log.py", plugins)
    log, db, out = tmp_path / "outputs.tsv", tmp_path / "catalog.db", tmp_path / "out"
    result = invoke("--plugins-dir", plugins, "--catalog", db, "run", shoot, "--recipe", "color-correct",
                    "--model", standin_model, "--out", out, env={"PHOTOBATCH_OUTPUT_LOG": str(log)})
    assert result.exit_code == 0, result.output
    runs = {row[0]: row[1:] for row in sqlite3.connect(db).execute(
        "SELECT r.id, f.path, r.output_path FROM runs r JOIN files f ON f.id = r.file_id")}
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    assert len(lines) == 2 == len(runs)
    for run_id, recipe, source, output in lines:
        assert recipe == "color-correct"
        assert (source, output) == runs[int(run_id)]
        assert Path(output).exists()

    # A second run skips both files: nothing is written, so nothing is logged.
    again = invoke("--plugins-dir", plugins, "--catalog", db, "run", shoot, "--recipe", "color-correct",
                   "--model", standin_model, "--out", out, env={"PHOTOBATCH_OUTPUT_LOG": str(log)})
    assert "0 done, 2 skipped" in again.stdout
    assert len(log.read_text().splitlines()) == 2


def test_the_dropin_writer_writes_a_recipes_outputs_with_their_metadata(shoot, tmp_path, standin_model):
    from photobatch.plugins.metadata import read_record, read_summary

    plugins, recipes = tmp_path / "plugins", tmp_path / "recipes"
    plugins.mkdir()
    recipes.mkdir()
    (recipes / "web.toml").write_text('extends = "color-correct"\n[output]\nformat = "webp"\n'
                                      'quality = 90\n')
    db, out = tmp_path / "catalog.db", tmp_path / "out"
    args = ("--catalog", db, "--recipes", recipes, "run", shoot, "--recipe", "web",
            "--model", standin_model, "--out", out)
    # Without the plugin the format names no writer: said once, before any photo.
    missing = invoke(*args)
    assert missing.exit_code == 1
    assert ("recipe 'web' (" in missing.output and "output.format 'webp' has no writer (known: "
            "jpeg, lossless, png, tiff; a writer plugin can add one)" in missing.output)
    shutil.copy(EXAMPLES / "dropins" / "webp_writer.py", plugins)
    result = invoke("--plugins-dir", plugins, *args)
    assert result.exit_code == 0, result.output
    outputs = sorted(out.glob("*"))
    assert [p.name for p in outputs] == ["DSCF0001_web.webp", "IMG_0002_web.webp"]
    for output in outputs:
        with Image.open(output) as img:
            assert img.format == "WEBP"
        assert read_summary(output)["make"] in ("FUJIFILM", "Canon")
        assert read_record(output)["Recipe"] == "web"

    # A bit depth the writer does not have is refused before any photo too.
    (recipes / "web.toml").write_text('extends = "color-correct"\n[output]\nformat = "webp"\n'
                                      'bit_depth = 16\n')
    deep = invoke("--plugins-dir", plugins, *args, "--force")
    assert deep.exit_code == 1
    assert "output.bit_depth 16: the webp writer writes 8 bits per channel" in deep.output
