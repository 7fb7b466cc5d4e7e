"""Recipes: the built-in loads, validation names recipe/field/value/rule, fingerprints."""

from __future__ import annotations

import dataclasses

import pytest

from photobatch.recipes.loader import BUILTIN_DIR, load_recipe_file, load_recipes
from photobatch.recipes.schema import RecipeError, recipe_from_dict


def test_builtin_color_correct_is_low_strength_and_valid():
    recipe = load_recipes([BUILTIN_DIR])["color-correct"]
    assert 0.15 <= recipe.strength <= 0.25
    assert recipe.steps == 30 and 5 <= recipe.cfg <= 7
    assert recipe.denoising_steps == int(30 * recipe.strength) == 6
    assert recipe.prompt and recipe.negative_prompt
    assert recipe.source.endswith("color-correct.toml")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"strength": 1.4}, "recipe 'golden-hour': strength must be in (0.0, 1.0], got 1.4"),
        ({"strength": 0}, "strength must be in (0.0, 1.0], got 0"),
        ({"steps": "thirty"}, "recipe 'golden-hour': steps must be a int, got 'thirty'"),
        ({"steps": True}, "steps must be a int, got True"),
        ({"stregth": 0.3}, "recipe 'golden-hour': unknown field 'stregth'; did you mean 'strength'? (allowed: "),
        ({"sampler": "Euler b"}, "sampler must be one of 'Euler', 'Euler a'"),
        ({"sampler": "dpm++ 2m karas"}, "got 'dpm++ 2m karas'; did you mean 'DPM++ 2M Karras'?"),
        ({"sampler": "euler A"}, "got 'euler A'; did you mean 'Euler a'?"),
        ({"output": {"format": "JPG"}}, "output.format must be a writer's name ('jpeg', 'tiff', "
                                        "'png', 'lossless' or one a plugin adds); got 'JPG'; "
                                        "did you mean 'jpeg'?"),
        ({"output": {"quality": 101}}, "output.quality must be in [1, 100], got 101"),
        ({"output": {"qualty": 90}}, "unknown field 'output.qualty'; did you mean 'quality'?"),
        ({"mood": "happy"}, "unknown field 'mood' (allowed: "),  # nothing close: no guess
        ({"output": {"name": "{recipe}"}}, "output.name must contain {stem}"),
        ({"output": {"name": "{stem}_{lens}"}}, "output.name uses unknown token(s) lens"),
        ({"steps": 3, "strength": 0.3}, "steps x strength must give at least one denoising step, got 3 x 0.3"),
    ],
)
def test_invalid_recipes_are_errors_naming_recipe_field_and_value(data, message):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict({"name": "golden-hour", **data})
    assert message in str(err.value)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("strength = [", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"recipe file .*broken.toml: not valid TOML"):
        load_recipe_file(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("strenght = 0.2\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"recipe 'typo' \(.*typo.toml\): unknown field 'strenght'"):
        load_recipe_file(typo)


def test_duplicate_names_name_both_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "mine.toml").write_text('name = "same"\n', encoding="utf-8")
    with pytest.raises(RecipeError) as err:
        load_recipes([tmp_path / "a", tmp_path / "b"])
    assert "'same' is defined twice" in str(err.value)
    assert str(tmp_path / "a" / "mine.toml") in str(err.value)
    assert str(tmp_path / "b" / "mine.toml") in str(err.value)


def test_fingerprint_covers_output_fields_not_descriptions():
    base = recipe_from_dict({"name": "x", "strength": 0.2})
    same = dataclasses.replace(base, description="reworded", source="/elsewhere.toml")
    assert same.fingerprint == base.fingerprint
    assert recipe_from_dict({"name": "x", "strength": 0.25}).fingerprint != base.fingerprint
    assert recipe_from_dict({"name": "x", "output": {"quality": 90}}).fingerprint != base.fingerprint
    assert recipe_from_dict({"name": "x", "prompt": "warm"}).fingerprint != base.fingerprint
    assert len(base.fingerprint) == 64


def test_recipes_are_frozen():
    recipe = recipe_from_dict({"name": "x"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.strength = 0.9


# Fingerprints recorded in users' catalogs: a release that changes one makes every output made
# with it stale. These were taken before the fields added since (working_size, refiner, freeu,
# pag, captioner, ControlNet windows and depth models, reference lists) and must stay as they are.
KNOWN_FINGERPRINTS = {
    "color-correct": "5643f20a6b072c37", "portrait-retouch": "7fdc4f77d9eda143",
    "season:winter": "61efb88d66880244", "season:spring": "9a78920bfed12c12",
    "season:summer": "f7a2fdd457ad0b53", "season:autumn": "bafe5e455eed27ba",
    "style-match": "c367f16a778f7c60", "time-of-day:golden-hour": "bcc48b2c6546c995",
    "time-of-day:blue-hour": "d0eae4e492ed2216", "time-of-day:night": "8dbc2fa34d307043",
    "time-of-day:overcast": "3d16b75f224ddbc1",
}


def test_recipes_written_before_later_fields_keep_their_fingerprints():
    from photobatch.recipes.loader import BUILTIN_DIR, load_recipes
    from photobatch.recipes.schema import recipe_from_dict

    recipes = load_recipes([BUILTIN_DIR])
    # What a run on an SD model records: the recipe with its [family.NAME] tables resolved
    # (the built-ins' tables, added later, are for SD 3.x and FLUX.1 only).
    for family in ("sd1", "sd2", "sdxl"):
        # Except style-match on SDXL: its SD 1.5 adapter could not run there; its SDXL table
        # names the SDXL adapter now, so no SDXL output of it was ever made.
        names = [n for n in KNOWN_FINGERPRINTS if not (family == "sdxl" and n == "style-match")]
        assert {name: recipes[name].for_family(family).fingerprint[:16] for name in names} == {
            name: KNOWN_FINGERPRINTS[name] for name in names}
    assert recipes["style-match"].for_family("sdxl").ip_adapter.weight_name == "ip-adapter_sdxl.safetensors"
    adapters = recipe_from_dict({
        "name": "cn", "controlnet": {"model": "c", "preprocessor": "canny", "scale": 0.5},
        "ip_adapter": {"model": "m", "reference": "r.jpg", "scale": 0.7},
        "loras": [{"path": "a.safetensors", "weight": 0.5}]})
    assert adapters.fingerprint[:16] == "c3472cb895b93c25"  # taken at the same time
