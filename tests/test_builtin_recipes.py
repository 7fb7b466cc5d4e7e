"""Every built-in recipe end to end through ``photobatch run`` with the stand-in model, plus the
portrait retouch's exactness outside the face masks, the no-face skip, style match's reference
checks, naming tokens, collisions and recipe-named post steps."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from photobatch.daemon.app import App
from photobatch.daemon.cli import main
from photobatch.daemon.faces import face_mask
from photobatch.daemon.samples import write_sample_photo
from photobatch.daemon.session import Session
from photobatch.plugins import hookimpl
from photobatch.plugins.builtin.face_detector import HaarFaceDetector
from photobatch.plugins.diffusion.masks import feather
from photobatch.plugins.manager import build_plugin_manager
from photobatch.recipes.schema import RecipeError


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_sample_photo(folder / "LAND.JPG", size=(320, 240), seed=1, scene="landscape")
    write_sample_photo(folder / "FACE.JPG", size=(384, 384), seed=2, scene="portrait",
                       make="Canon", model="EOS R6m2", date_taken="2026:03:01 07:15:00")
    return folder


@pytest.mark.parametrize("recipe", ["color-correct", "time-of-day", "time-of-day:golden-hour",
                                    "time-of-day:blue-hour", "time-of-day:night",
                                    "time-of-day:overcast", "season:winter", "season:spring",
                                    "season:summer", "season:autumn"])
def test_global_builtin_recipes_run_end_to_end(recipe, photos, tmp_path, standin_model):
    out = tmp_path / "out"
    result = _cli("--catalog", tmp_path / "c.db", "run", photos / "LAND.JPG", "--recipe", recipe,
                  "--model", standin_model, "--out", out)
    assert result.exit_code == 0, result.output
    output = out / f"LAND_{recipe.replace(':', '-')}.jpg"
    with Image.open(output) as img:
        assert img.size == (320, 240)


def _retouch_png_recipe(folder):
    folder.mkdir(exist_ok=True)
    (folder / "retouch-png.toml").write_text(
        'extends = "portrait-retouch"\n[output]\nformat = "png"\n', encoding="utf-8")
    return folder


def test_portrait_retouch_changes_faces_only(photos, tmp_path, standin_model):
    recipes = _retouch_png_recipe(tmp_path / "recipes")
    out = tmp_path / "out"
    result = _cli("--catalog", tmp_path / "c.db", "--recipes", recipes, "run", photos / "FACE.JPG",
                  "--recipe", "retouch-png", "--model", standin_model, "--out", out)
    assert result.exit_code == 0, result.output
    with Image.open(photos / "FACE.JPG") as img:
        source = ImageOps.exif_transpose(img).convert("RGB")
    output = Image.open(out / "FACE_retouch-png.png").convert("RGB")
    app = App(catalog_path=tmp_path / "x.db", recipe_dirs=[recipes])
    recipe = app.recipe("retouch-png")
    faces = HaarFaceDetector().detect(source)
    assert len(faces) == 1
    masks = [np.asarray(feather(face_mask(source.size, f, recipe.face_expand), recipe.mask_blur))
             for f in faces]
    outside = np.all([m == 0 for m in masks], axis=0)
    src, dst = np.asarray(source), np.asarray(output)
    assert outside.mean() > 0.5  # the test checks most of the photo
    assert np.array_equal(src[outside], dst[outside])  # bit for bit outside the face
    inside = np.any([m == 255 for m in masks], axis=0)
    assert np.abs(src[inside].astype(int) - dst[inside].astype(int)).mean() > 1  # the face changed


def test_portrait_retouch_with_a_caption_records_each_faces_prompt(photos, tmp_path, standin_model):
    from photobatch.plugins.diffusion.standin_addons import save_standin_captioner

    captioner = save_standin_captioner(tmp_path / "blip")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "retouch-captioned.toml").write_text(
        f'extends = "portrait-retouch"\nprompt = "{{caption}}, natural skin"\ncaptioner = "{captioner}"\n',
        encoding="utf-8")
    result = _cli("--catalog", tmp_path / "c.db", "--recipes", recipes, "run", photos / "FACE.JPG",
                  "--recipe", "retouch-captioned", "--model", standin_model, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (prompt,) = sqlite3.connect(tmp_path / "c.db").execute("SELECT prompt FROM runs").fetchone()
    assert prompt.endswith(", natural skin") and "{caption}" not in prompt  # one face: one prompt


def test_portrait_retouch_skips_a_photo_without_a_face(photos, tmp_path, standin_model):
    db = tmp_path / "c.db"
    result = _cli("--catalog", db, "run", photos / "LAND.JPG", "--recipe", "portrait-retouch",
                  "--model", standin_model, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "0 done, 1 skipped, 0 failed" in result.output
    assert "no face found by opencv-haar" in result.output
    rows = sqlite3.connect(db).execute("SELECT status, error FROM runs").fetchall()
    assert rows == [("skipped", "no face found by opencv-haar")]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_style_match_needs_a_reference_before_any_file(photos, tmp_path, standin_model):
    db = tmp_path / "c.db"
    result = _cli("--catalog", db, "run", photos, "--recipe", "style-match", "--model", standin_model,
                  "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "recipe 'style-match' needs a reference photo" in result.output
    assert not db.exists() or sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone() == (0,)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "look.toml").write_text('extends = "style-match"\n[ip_adapter]\n'
                                       'reference = "missing.jpg"\n', encoding="utf-8")
    broken = _cli("--recipes", recipes, "recipes", "list")
    assert broken.exit_code == 1
    assert f"ip_adapter.reference {recipes / 'missing.jpg'} cannot be read" in broken.output


def test_style_match_with_a_reference_runs_end_to_end(photos, tmp_path, standin_model):
    from diffusers import AutoPipelineForImage2Image

    from photobatch.plugins.diffusion.standin_addons import save_standin_ip_adapter

    pipe = AutoPipelineForImage2Image.from_pretrained(str(standin_model))
    adapter = save_standin_ip_adapter(pipe, tmp_path / "ip-adapter")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    write_sample_photo(recipes / "reference.jpg", size=(256, 256), scene="city", seed=5)
    (recipes / "my-look.toml").write_text(
        f'extends = "style-match"\n[ip_adapter]\nmodel = "{adapter}"\nreference = "reference.jpg"\n',
        encoding="utf-8")
    out = tmp_path / "out"
    result = _cli("--catalog", tmp_path / "c.db", "--recipes", recipes, "run", photos / "LAND.JPG",
                  "--recipe", "my-look", "--model", standin_model, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "LAND_my-look.jpg").exists()
    # A new reference photo is a new recipe version: the old output becomes stale.
    app = App(catalog_path=tmp_path / "x.db", recipe_dirs=[recipes])
    before = app.recipe("my-look").fingerprint
    write_sample_photo(recipes / "reference.jpg", size=(256, 256), scene="landscape", seed=6)
    after = App(catalog_path=tmp_path / "x.db", recipe_dirs=[recipes]).recipe("my-look").fingerprint
    assert before != after


def test_style_match_from_a_set_of_reference_photos(photos, tmp_path, standin_model):
    from diffusers import AutoPipelineForImage2Image

    from photobatch.plugins.diffusion.standin_addons import save_standin_ip_adapter

    pipe = AutoPipelineForImage2Image.from_pretrained(str(standin_model))
    adapter = save_standin_ip_adapter(pipe, tmp_path / "ip-adapter")
    recipes = tmp_path / "recipes"
    (recipes / "portfolio").mkdir(parents=True)
    for n, scene in enumerate(("city", "landscape"), start=1):
        write_sample_photo(recipes / "portfolio" / f"{n}.jpg", size=(256, 256), scene=scene, seed=n)
    (recipes / "set.toml").write_text(
        f'extends = "style-match"\nreference_colors = "after"\n[ip_adapter]\nmodel = "{adapter}"\n'
        'reference = ["portfolio/1.jpg", "portfolio/2.jpg"]\n', encoding="utf-8")
    (recipes / "one.toml").write_text(
        f'extends = "style-match"\nreference_colors = "after"\n[ip_adapter]\nmodel = "{adapter}"\n'
        'reference = "portfolio/1.jpg"\n', encoding="utf-8")
    app = App(catalog_path=tmp_path / "x.db", recipe_dirs=[recipes])
    recipe = app.recipe("set")
    # Relative to the recipe file, each checked when the recipe loads.
    assert recipe.ip_adapter.reference == (str(recipes / "portfolio" / "1.jpg"),
                                           str(recipes / "portfolio" / "2.jpg"))
    out = tmp_path / "out"
    for name in ("set", "one"):
        result = _cli("--catalog", tmp_path / "c.db", "--recipes", recipes, "run", photos / "LAND.JPG",
                      "--recipe", name, "--model", standin_model, "--out", out)
        assert result.exit_code == 0, result.output
    both = np.asarray(Image.open(out / "LAND_set.jpg"), dtype=int)
    first = np.asarray(Image.open(out / "LAND_one.jpg"), dtype=int)
    assert np.abs(both - first).max() > 10
    # Any photo of the set replaced: a new recipe version, the outputs stale.
    write_sample_photo(recipes / "portfolio" / "2.jpg", size=(256, 256), scene="portrait", seed=9)
    assert App(catalog_path=tmp_path / "x.db", recipe_dirs=[recipes]).recipe("set").fingerprint \
        != recipe.fingerprint
    (recipes / "bad.toml").write_text('extends = "style-match"\n[ip_adapter]\nreference = ["a.jpg", 3]\n',
                                      encoding="utf-8")
    broken = _cli("--recipes", recipes, "recipes", "list")
    assert broken.exit_code == 1
    assert "ip_adapter reference must be a photo's path or a list of them" in broken.output


def test_naming_tokens_subfolder_and_collisions(photos, tmp_path, standin_model):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for policy in ("suffix", "overwrite", "skip"):
        (recipes / f"named-{policy}.toml").write_text(
            f'extends = "color-correct"\n[output]\nname = "{{camera}}_{{stem}}_{{seq}}"\n'
            f'subfolder = "{{date}}"\ncollision = "{policy}"\n', encoding="utf-8")
    out = tmp_path / "out"
    folder = out / "2026-03-01"
    folder.mkdir(parents=True)
    app = App(catalog_path=tmp_path / "c.db", recipe_dirs=[recipes], model=str(standin_model))
    session = Session(app, out)
    first = session.process(photos / "FACE.JPG", app.recipe("named-suffix"))
    assert first.status == "done", first.error
    assert first.output.parent == folder and first.output.name.startswith("EOS R6m2_FACE_")
    # Someone else's file under the name a recipe wants:
    taken = first.output
    foreign = Image.new("RGB", (8, 8))
    first.output.rename(taken.with_name("mine.jpg"))
    foreign.save(taken)
    suffixed = Session(app, out, force=True).process(photos / "FACE.JPG", app.recipe("named-suffix"))
    assert suffixed.output.name == taken.stem + "-1.jpg"
    skipped = Session(app, out).process(photos / "FACE.JPG", app.recipe("named-skip"))
    assert skipped.status == "skipped" and "collision = skip" in skipped.error
    assert Image.open(taken).size == (8, 8)
    overwritten = Session(app, out).process(photos / "FACE.JPG", app.recipe("named-overwrite"))
    assert overwritten.output == taken and Image.open(taken).size == (384, 384)


class FramePlugin:
    class Frame:
        name = "frame"

        def apply(self, image, params, source):
            width = int(params.get("width", 4))
            framed = image.copy()
            framed.paste((255, 255, 255), (0, 0, image.width, width))
            return framed

    @hookimpl
    def photobatch_steps(self):
        return [self.Frame()]


def test_recipes_name_their_post_steps(photos, tmp_path, standin_model):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "framed.toml").write_text(
        'extends = "color-correct"\npost = [{ step = "frame", width = 10 }]\n'
        '[output]\nformat = "png"\n', encoding="utf-8")
    app = App(catalog_path=tmp_path / "c.db", recipe_dirs=[recipes], model=str(standin_model),
              plugin_manager=build_plugin_manager(extra=[FramePlugin()]))
    outcome = Session(app, tmp_path / "out").process(photos / "LAND.JPG", app.recipe("framed"))
    assert outcome.status == "done", outcome.error
    top = np.asarray(Image.open(outcome.output).convert("RGB"))[:10]
    assert (top == 255).all()
    assert "post" in outcome.timings
    with pytest.raises(RecipeError, match="post step 'frame' is not contributed by any plugin"):
        App(catalog_path=tmp_path / "c.db", recipe_dirs=[recipes])
