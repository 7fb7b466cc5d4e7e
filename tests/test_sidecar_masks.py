"""``mask = "sidecar"``: a mask painted beside the photo (IMG_0001.mask.png) says where the
recipe may change it; the real CLI, catalog, inpaint runner and stand-in model."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from photobatch.daemon.cli import main
from photobatch.daemon.paths import expand_inputs, is_candidate, mask_path_for
from photobatch.daemon.samples import write_sample_photo
from photobatch.daemon.sidecar_masks import sidecar_mask
from photobatch.plugins.images import NothingToDo
from photobatch.recipes.schema import RecipeError, recipe_from_dict

RECIPE = '''name = "remove"
runner = "inpaint"
mask = "sidecar"
prompt = "empty street"
strength = 0.9
steps = 4
sampler = "Euler"
mask_blur = 0
[output]
format = "png"
'''


@pytest.fixture()
def shoot(tmp_path):
    folder = tmp_path / "shoot"
    folder.mkdir()
    # Orientation 6: stored sideways, seen upright 120 wide and 160 high.
    write_sample_photo(folder / "IMG_0001.JPG", size=(120, 160), seed=1, orientation=6)
    write_sample_photo(folder / "IMG_0002.JPG", size=(120, 80), seed=2)
    mask = Image.new("L", (120, 160), 0)
    mask.paste(255, (30, 40, 80, 100))
    mask.save(folder / "IMG_0001.mask.png")
    return folder


def _cli(tmp_path, *args):
    recipes = tmp_path / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / "remove.toml").write_text(RECIPE)
    return CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "--recipes", str(recipes),
                                     *map(str, args)], catch_exceptions=False)


def test_masks_are_never_taken_for_photos(shoot):
    assert mask_path_for(shoot / "IMG_0001.JPG") == shoot / "IMG_0001.mask.png"
    assert not is_candidate(shoot / "IMG_0001.mask.png") and is_candidate(shoot / "IMG_0001.JPG")
    assert [p.name for p in expand_inputs([shoot])] == ["IMG_0001.JPG", "IMG_0002.JPG"]


def test_only_the_painted_area_changes_and_a_photo_without_a_mask_is_skipped(shoot, tmp_path,
                                                                             standin_model):
    result = _cli(tmp_path, "run", shoot, "--recipe", "remove", "--model", standin_model,
                  "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "1 done, 1 skipped, 0 failed" in result.output
    rows = sqlite3.connect(tmp_path / "c.db").execute(
        "SELECT f.path, r.status, r.error FROM runs r JOIN files f ON f.id = r.file_id ORDER BY f.path"
    ).fetchall()
    assert [(p.rsplit("/", 1)[1], s, e) for p, s, e in rows] == [
        ("IMG_0001.JPG", "done", None),
        ("IMG_0002.JPG", "skipped", "no mask IMG_0002.mask.png beside it")]
    with Image.open(shoot / "IMG_0001.JPG") as img:
        source = np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=int)
    output = np.asarray(Image.open(tmp_path / "out" / "IMG_0001_remove.png").convert("RGB"), dtype=int)
    mask = np.asarray(Image.open(shoot / "IMG_0001.mask.png")) > 0
    assert output.shape == source.shape == (160, 120, 3)
    assert np.array_equal(output[~mask], source[~mask])  # bit for bit outside the mask
    assert np.abs(output[mask] - source[mask]).mean() > 5  # the painted area changed


def test_a_mask_drawn_on_the_sideways_photo_is_refused_naming_it(shoot, tmp_path, standin_model):
    Image.new("L", (160, 120), 255).save(shoot / "IMG_0001.mask.png")
    result = _cli(tmp_path, "run", shoot / "IMG_0001.JPG", "--recipe", "remove", "--model",
                  standin_model, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert ("mask IMG_0001.mask.png is 160x120 but the photo is 120x160 as it is seen: draw the "
            "mask on the upright photo") in result.output


def test_alpha_marks_a_layer_painted_over_the_photo_and_an_empty_mask_is_a_skip(tmp_path):
    photo = tmp_path / "IMG_0003.JPG"
    layer = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (10, 10, 20, 20))
    layer.save(mask_path_for(photo))
    mask = np.asarray(sidecar_mask(photo, (120, 80)).image)
    assert mask.shape == (80, 120) and mask[30, 30] == 255 and mask[70, 100] == 0
    Image.new("L", (60, 40), 0).save(mask_path_for(photo))
    with pytest.raises(NothingToDo, match="mask IMG_0003.mask.png is empty"):
        sidecar_mask(photo, (120, 80))


def test_a_masked_recipe_needs_the_inpaint_runner():
    with pytest.raises(RecipeError, match="recipe 'r': mask = 'sidecar' needs runner = \"inpaint\""):
        recipe_from_dict({"name": "r", "mask": "sidecar"})


def _states(tmp_path):
    import json
    listed = _cli(tmp_path, "catalog", "ls", "--json")
    assert listed.exit_code == 0, listed.output
    return {row["path"].rsplit("/", 1)[1]: row["state"] for row in json.loads(listed.output)
            if row["status"] != "skipped"}


def test_a_repainted_mask_makes_the_output_stale_for_run_and_rerun(shoot, tmp_path, standin_model):
    args = ("--recipe", "remove", "--model", standin_model, "--out", tmp_path / "out")
    photo, out = shoot / "IMG_0001.JPG", tmp_path / "out" / "IMG_0001_remove.png"
    assert "1 done" in _cli(tmp_path, "run", photo, *args).output
    first = np.asarray(Image.open(out).convert("RGB"), dtype=int)
    assert "already done" in _cli(tmp_path, "run", photo, *args).output  # same mask: nothing to do
    assert _states(tmp_path) == {"IMG_0001.JPG": "up to date"}

    repainted = Image.new("L", (120, 160), 0)
    repainted.paste(255, (10, 110, 60, 150))  # another area: the first one is left alone now
    repainted.save(mask_path_for(photo))
    assert _states(tmp_path) == {"IMG_0001.JPG": "stale: mask changed"}
    again = _cli(tmp_path, "run", photo, *args)
    assert "1 done" in again.output, again.output
    second = np.asarray(Image.open(out).convert("RGB"), dtype=int)
    with Image.open(photo) as img:
        source = np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=int)
    area = np.asarray(repainted) > 0
    assert np.array_equal(second[~area], source[~area])  # the first area is the photo's again
    assert not np.array_equal(first, second)
    recorded = sqlite3.connect(tmp_path / "c.db").execute(
        "SELECT mask_sha256 FROM runs WHERE status = 'done' ORDER BY id").fetchall()
    import hashlib
    assert recorded[-1][0] == hashlib.sha256(mask_path_for(photo).read_bytes()).hexdigest()
    assert recorded[0][0] != recorded[-1][0]
    assert _states(tmp_path) == {"IMG_0001.JPG": "up to date"}

    repainted.paste(255, (70, 20, 110, 60))
    repainted.save(mask_path_for(photo))
    rerun = _cli(tmp_path, "rerun", "--stale", "--now", "--model", standin_model)
    assert rerun.exit_code == 0 and "1 done" in rerun.output, rerun.output
    assert _states(tmp_path) == {"IMG_0001.JPG": "up to date"}

    mask_path_for(photo).unlink()  # nothing to redo it with: the output stays as it is
    assert _states(tmp_path) == {"IMG_0001.JPG": "up to date"}
    assert "already done" in _cli(tmp_path, "run", photo, *args).output
