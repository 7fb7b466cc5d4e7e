"""A recipe's [family.NAME] tables: how it runs on one model family (the built-in recipes use
them to run on FLUX.1 and SD 3.x), resolved to what runs before it is fingerprinted."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import noise_photo

from photobatch.daemon.cli import main
from photobatch.daemon.samples import write_sample_photo
from photobatch.recipes.loader import load_recipe_variants
from photobatch.recipes.schema import RecipeError, recipe_from_dict

BASE = {"name": "r", "prompt": "a photo", "strength": 0.5, "steps": 8, "cfg": 6.0,
        "sampler": "DPM++ 2M"}
TABLES = {"flux": {"sampler": "Euler", "cfg": 3.5}, "sd3": {"sampler": "Euler", "cfg": 4.5}}


@pytest.fixture(scope="module")
def flux_model(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    return str(save_standin_model(tmp_path_factory.mktemp("families") / "flux", kind="flux"))


def test_a_family_table_applies_on_its_family_only_and_leaves_sd_fingerprints_alone():
    plain = recipe_from_dict(BASE)
    tabled = recipe_from_dict({**BASE, "family": TABLES})
    assert tabled.family_tables == TABLES
    on_flux = tabled.for_family("flux")
    assert (on_flux.sampler, on_flux.cfg, on_flux.family) == ("Euler", 3.5, ())
    assert tabled.for_family("sd3").cfg == 4.5
    for family in ("sd1", "sd2", "sdxl"):  # no table: what ran before the tables existed
        assert tabled.for_family(family).fingerprint == plain.fingerprint
    assert on_flux.fingerprint != plain.fingerprint
    # Editing one family's table changes that family's recipe only.
    edited = recipe_from_dict({**BASE, "family": {**TABLES, "flux": {"sampler": "Euler", "cfg": 3.0}}})
    assert edited.for_family("flux").fingerprint != on_flux.fingerprint
    assert edited.for_family("sd3").fingerprint == tabled.for_family("sd3").fingerprint
    assert edited.for_family("sdxl").fingerprint == plain.fingerprint


@pytest.mark.parametrize("family, message", [
    ({"kandinsky": {"cfg": 4}}, "family.kandinsky is no model family (known: sd1, sd2, sdxl, sd3, "
                                "flux, kontext, fill, flux2, flux2_dev, qwenimage, qwenimage_edit, zimage, edit)"),
    ({"flux": {"loras": []}}, "unknown field 'family.flux.loras' (allowed: cfg, exact_steps, "
                              "ip_adapter, negative_prompt, prompt, sampler, schedule, steps, strength, "
                              "true_cfg)"),
    ({"zimage": {"exact_steps": "yes"}}, "family.zimage.exact_steps must be a bool"),
    ({"kontext": {"prompt": 3}}, "family.kontext.prompt"),
    ({"kontext": {"sampler": "DPM++ 2M"}}, "family.kontext runs sampler 'DPM++ 2M'"),
    ({"flux": {"cfg": "high"}}, "family.flux.cfg must be a float or int, got 'high'"),
    ({"flux": {"cfg": 99}}, "family.flux.cfg must be in [0.0, 30.0], got 99"),
    ({"flux": {"sampler": "DPM++ 2M"}}, "family.flux runs sampler 'DPM++ 2M'; flow-matching models "
                                        "take 'Euler', 'Euler a', 'LCM'"),
    ({"sdxl": {"steps": 1}}, "on sdxl models (family.sdxl): steps x strength must give at least one"),
    ({"sdxl": {"sampler": "DPM++ 2M Karras", "schedule": "Exponential"}},
     "on sdxl models (family.sdxl): schedule 'Exponential' does not go with sampler 'DPM++ 2M Karras'"),
    ({"flux": "Euler"}, "family must hold tables, e.g. [family.flux]"),
    ({"flux": {"ip_adapter": {"reference": "x.jpg"}}},
     "family.flux.ip_adapter has an unknown field 'reference' (allowed: model, scale, subfolder, "
     "weight_name)"),
    ({"flux": {"ip_adapter": {"scale": 1.0}}},
     "family.flux.ip_adapter changes the recipe's ip_adapter, and it has none"),
])
def test_family_tables_are_checked_like_the_fields_they_set(family, message):
    with pytest.raises(RecipeError) as refused:
        recipe_from_dict({**BASE, "family": family})
    assert message in str(refused.value)


def test_a_family_ip_adapter_table_changes_the_adapter_and_keeps_the_reference(tmp_path):
    reference = tmp_path / "look.jpg"
    write_sample_photo(reference, size=(32, 32), seed=1)
    recipe = recipe_from_dict({**BASE, "ip_adapter": {
        "model": "h94/IP-Adapter", "subfolder": "models", "weight_name": "ip-adapter_sd15.safetensors",
        "reference": str(reference), "scale": 0.6}, "family": {"sdxl": {"ip_adapter": {
            "subfolder": "sdxl_models", "weight_name": "ip-adapter_sdxl.safetensors"}}}})
    on_sdxl = recipe.for_family("sdxl").ip_adapter
    assert (on_sdxl.model, on_sdxl.subfolder, on_sdxl.weight_name, on_sdxl.reference, on_sdxl.scale) == (
        "h94/IP-Adapter", "sdxl_models", "ip-adapter_sdxl.safetensors", str(reference), 0.6)
    assert recipe.for_family("sd1").ip_adapter.weight_name == "ip-adapter_sd15.safetensors"
    assert recipe.family_tables["sdxl"]["ip_adapter"]["subfolder"] == "sdxl_models"


def test_extends_and_variants_merge_family_tables_key_by_key(tmp_path):
    (tmp_path / "base.toml").write_text(
        'name = "base"\nprompt = "a photo"\nstrength = 0.5\n'
        '[family.flux]\nsampler = "Euler"\ncfg = 3.5\n'
        '[variants.strong]\nstrength = 0.7\n[variants.strong.family.flux]\ncfg = 4.0\n')
    (tmp_path / "mine.toml").write_text(
        'extends = "base:strong"\nname = "mine"\n[family.flux]\nsteps = 40\n')
    strong = {r.name: r for r in load_recipe_variants(tmp_path / "base.toml")}["base:strong"]
    assert strong.family_tables == {"flux": {"sampler": "Euler", "cfg": 4.0}}
    mine = load_recipe_variants(tmp_path / "mine.toml", context=[tmp_path])[0]
    assert mine.family_tables == {"flux": {"sampler": "Euler", "cfg": 4.0, "steps": 40}}
    assert (mine.for_family("flux").strength, mine.for_family("flux").steps) == (0.7, 40)


def test_recipes_show_and_new_write_the_tables_as_tables(tmp_path):
    show = CliRunner().invoke(main, ["recipes", "show", "color-correct"])
    assert show.exit_code == 0
    assert '[family.flux]\ncfg = 3.5\nnegative_prompt = ""\nsampler = "Euler"' in show.output
    on_flux = CliRunner().invoke(main, ["recipes", "show", "color-correct", "--family", "flux"])
    assert 'sampler = "Euler"' in on_flux.output and "[family." not in on_flux.output
    new = CliRunner().invoke(main, ["recipes", "new", "mine", "--from", "color-correct", "--dir",
                                    str(tmp_path)])
    assert new.exit_code == 0, new.output
    text = (tmp_path / "mine.toml").read_text()
    line = next(li for li in text.splitlines() if li.startswith("# family = "))
    # Uncommented, the inherited tables are a valid recipe field with the same values.
    uncommented = text.replace(line, line[2:].split("    #")[0])
    (tmp_path / "mine.toml").write_text(uncommented)
    from photobatch.recipes.loader import BUILTIN_DIR

    mine = load_recipe_variants(tmp_path / "mine.toml", context=[BUILTIN_DIR])[0]
    assert mine.family_tables["flux"] == {"cfg": 3.5, "negative_prompt": "", "sampler": "Euler"}


def test_a_recipe_with_tables_given_to_the_runner_directly_resolves_them_itself(flux_model):
    """A hub id not yet downloaded cannot be told apart before it loads: the runner applies the
    table once it knows the family."""
    from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner

    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    tabled = recipe_from_dict({**BASE, "family": TABLES})
    photo = noise_photo(seed=1)
    resolved = runner.run(photo, tabled.for_family("flux"), 3, flux_model)
    direct = runner.run(photo, tabled, 3, flux_model)
    assert np.array_equal(np.asarray(direct.image), np.asarray(resolved.image))


def test_compare_varies_a_field_a_family_table_sets(tmp_path, flux_model):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "tone.toml").write_text(
        'name = "tone"\nprompt = "a photo"\nstrength = 0.5\nsteps = 8\nsampler = "DPM++ 2M"\n'
        '[family.flux]\nsampler = "Euler"\ncfg = 3.5\n')
    photo = tmp_path / "IMG_0001.JPG"
    write_sample_photo(photo, size=(96, 64), seed=2)

    def cli(*args):
        return CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "--recipes", str(recipes),
                                         *map(str, args)], catch_exceptions=False)

    result = cli("compare", photo, "--recipe", "tone", "--model", flux_model, "--vary", "cfg=1,6",
                 "--out", tmp_path / "c")
    assert result.exit_code == 0, result.output
    con = sqlite3.connect(tmp_path / "c.db")
    rows = con.execute("SELECT recipe, params, seed FROM runs ORDER BY id").fetchall()
    con.close()
    params = [json.loads(p) for _, p, _ in rows]
    # The varied value wins over the table; the table's sampler still applies.
    assert [(p["cfg"], p["sampler"]) for p in params] == [(1.0, "Euler"), (6.0, "Euler")]
    # One seed: the one `run` gives this photo with this recipe on this model.
    ran = cli("run", photo, "--recipe", "tone", "--model", flux_model, "--out", tmp_path / "o")
    assert ran.exit_code == 0, ran.output
    con = sqlite3.connect(tmp_path / "c.db")
    seeds = {seed for _, _, seed in con.execute("SELECT recipe, params, seed FROM runs").fetchall()}
    state = CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "--recipes", str(recipes),
                                      "catalog", "ls", "--recipe", "tone"])
    con.close()
    assert len(seeds) == 1
    # Nothing names a model now: the run's own model tells the family, so it is not stale.
    assert "done" in state.output and "stale" not in state.output
