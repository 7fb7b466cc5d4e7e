"""``{caption}`` in a prompt: a captioning model (a tiny BLIP built in code, saved and loaded
back through the real code) says what each photo shows, and the prompt runs with its words;
the catalog, the XMP record and the gallery say the prompt as it ran."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import noise_photo

from photobatch.plugins.diffusion.captions import caption, load_captioner
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.settings import settings_from_recipe
from photobatch.plugins.diffusion.sources import ModelError, adapters_hash
from photobatch.recipes.runner_fields import DEFAULT_CAPTIONER
from photobatch.recipes.schema import RecipeError, recipe_from_dict


@pytest.fixture(scope="module")
def captioner(tmp_path_factory):
    from photobatch.plugins.diffusion.standin_addons import save_standin_captioner

    return str(save_standin_captioner(tmp_path_factory.mktemp("captioner") / "blip"))


def _recipe(**fields):
    return recipe_from_dict({"name": "c", "strength": 0.6, "steps": 5, "sampler": "Euler", **fields})


def test_the_prompt_runs_with_the_photos_caption_in_it(standin_model, captioner):
    runner = DiffusersImg2ImgRunner(native_size=64)
    model = str(standin_model)
    photo = noise_photo(seed=2)
    words = caption(load_captioner(captioner, "cpu"), photo)
    assert words and "{" not in words
    out = runner.run(photo, _recipe(prompt="{caption}, deep winter", captioner=captioner), 4, model)
    assert out.prompt == f"{words}, deep winter"
    literal = runner.run(photo, _recipe(prompt=f"{words}, deep winter"), 4, model)
    assert literal.prompt is None  # nothing was filled in
    assert np.array_equal(np.asarray(out.image), np.asarray(literal.image))
    # Batches caption each photo: one at a time, the same pictures.
    batching = DiffusersImg2ImgRunner(native_size=64, batch_on_cpu=True)
    recipe = _recipe(prompt="{caption}, deep winter", captioner=captioner, batch=2)
    both = batching.run_batch([photo, noise_photo(seed=3)], recipe, [4, 5], model)
    assert np.array_equal(np.asarray(both[0].image), np.asarray(out.image))
    assert both[1].prompt.endswith(", deep winter")


def test_captions_are_checked_and_counted(captioner, tmp_path):
    with pytest.raises(RecipeError, match="recipe 'c': captioner is set, but neither prompt says "
                                          r"\{caption\}"):
        _recipe(prompt="snow", captioner=captioner)
    plain = _recipe(prompt="{caption}, snow")
    assert "captioner" not in plain.params()
    assert _recipe(prompt="{caption}, snow", captioner=captioner).fingerprint != plain.fingerprint
    # The captioner is among the files a run reads: the default by its hub id, a folder by content.
    assert adapters_hash(settings_from_recipe(plain)) != adapters_hash(settings_from_recipe(_recipe(
        prompt="{caption}, snow", captioner=captioner)))
    assert adapters_hash(settings_from_recipe(_recipe(prompt="snow"))) is None
    with pytest.raises(ModelError, match=r"^captioner .*nowhere does not exist$"):
        load_captioner(str(tmp_path / "nowhere"), "cpu")


def test_an_uncached_default_captioner_offline_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ModelError, match=f"^captioner {DEFAULT_CAPTIONER} is not in the Hugging Face cache"):
        load_captioner(DEFAULT_CAPTIONER, "cpu")


def test_the_catalog_the_xmp_record_and_the_gallery_say_the_prompt_as_it_ran(standin_model, captioner,
                                                                              tmp_path):
    from photobatch.daemon.cli import main
    from photobatch.daemon.samples import write_sample_photo
    from photobatch.plugins.metadata import read_record

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "winter.toml").write_text(
        f'name = "winter"\nmodel = "{standin_model}"\nprompt = "{{caption}}, deep winter"\n'
        f'captioner = "{captioner}"\nstrength = 0.5\nsteps = 2\nsampler = "Euler"\n')
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    write_sample_photo(shoot / "DSCF0001.JPG", size=(96, 64), seed=1)
    base = ["--catalog", str(tmp_path / "c.db"), "--recipes", str(recipes)]

    def cli(*args):
        return CliRunner().invoke(main, [*base, *map(str, args)], catch_exceptions=False)

    assert cli("run", shoot, "--recipe", "winter", "--out", tmp_path / "out").exit_code == 0
    con = sqlite3.connect(tmp_path / "c.db")
    (prompt,) = con.execute("SELECT prompt FROM runs").fetchone()
    con.close()
    assert prompt.endswith(", deep winter") and "{caption}" not in prompt
    assert read_record(tmp_path / "out" / "DSCF0001_winter.jpg")["Prompt"] == prompt
    # Not stale because its words came from the photo: the recipe and its files are unchanged.
    assert "nothing to re-run" in cli("rerun", "--stale").output
    gallery = cli("export", "gallery", "--out", tmp_path / "gallery")
    assert gallery.exit_code == 0, gallery.output
    page = (tmp_path / "gallery" / "index.html").read_text(encoding="utf-8")
    assert prompt in page and "{caption}, deep winter" not in page
