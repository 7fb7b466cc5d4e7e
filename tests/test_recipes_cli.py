"""Recipes: extends, base files, and the ``photobatch recipes`` commands."""

from __future__ import annotations

import tomllib

import pytest
from PIL import Image
from click.testing import CliRunner

from photobatch.daemon.cli import main
from photobatch.recipes.loader import BUILTIN_DIR, load_recipes
from photobatch.recipes.schema import RecipeError


def _write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")


def test_extends_overrides_fields_and_merges_tables(tmp_path):
    _write(tmp_path, "_base", 'prompt = "base"\nstrength = 0.5\nsteps = 20\n'
                              'description = "the base"\n[output]\nquality = 80\nmetadata = "no-location"\n')
    _write(tmp_path, "child", 'extends = "_base"\nstrength = 0.6\n[output]\nquality = 92\n')
    _write(tmp_path, "grandchild", 'extends = "child"\nprompt = "other"\n')
    book = load_recipes([tmp_path])
    assert set(book) == {"child", "grandchild"}  # _base is a base only
    child, grand = book["child"], book["grandchild"]
    assert (child.prompt, child.strength, child.steps) == ("base", 0.6, 20)
    assert (child.output.quality, child.output.metadata) == (92, "no-location")
    assert child.description == "the base"
    assert (grand.prompt, grand.strength, grand.output.quality) == ("other", 0.6, 92)
    assert grand.name == "grandchild" and grand.source.endswith("grandchild.toml")


def test_extends_errors_name_the_file_and_the_problem(tmp_path):
    _write(tmp_path / "a", "x", 'extends = "nope"\n')
    with pytest.raises(RecipeError, match=r"recipe 'x' \(.*x.toml\): extends 'nope', which does not exist"):
        load_recipes([tmp_path / "a"])
    _write(tmp_path / "b", "p", 'extends = "q"\n')
    _write(tmp_path / "b", "q", 'extends = "p"\n')
    with pytest.raises(RecipeError, match="extends makes a cycle: p -> q -> p"):
        load_recipes([tmp_path / "b"])
    _write(tmp_path / "c", "bad", 'extends = "_b"\n')
    _write(tmp_path / "c", "_b", 'strength = 2.0\n')
    with pytest.raises(RecipeError, match="recipe 'bad' .*strength must be in"):
        load_recipes([tmp_path / "c"])


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_recipes_list_show_validate_new(tmp_path):
    listing = _cli("recipes", "list")
    assert listing.exit_code == 0
    assert "color-correct" in listing.output and str(BUILTIN_DIR) in listing.output
    shown = _cli("recipes", "show", "color-correct")
    assert shown.exit_code == 0
    data = tomllib.loads(shown.output)
    assert data["strength"] == 0.2 and data["output"]["quality"] == 95
    assert "# fingerprint " in shown.output
    unknown = _cli("recipes", "show", "colour-correct")
    assert unknown.exit_code == 1 and "no recipe called 'colour-correct'" in unknown.output

    created = _cli("recipes", "new", "my-look", "--from", "color-correct", "--dir", tmp_path)
    assert created.exit_code == 0, created.output
    path = tmp_path / "my-look.toml"
    text = path.read_text()
    assert 'extends = "color-correct"' in text and "# strength = 0.2" in text
    assert _cli("recipes", "validate", path).exit_code == 0
    # Uncommenting a line changes the recipe; the rest is still inherited.
    path.write_text(text.replace("# strength = 0.2", "strength = 0.25"))
    custom = _cli("--recipes", tmp_path, "recipes", "show", "my-look")
    assert tomllib.loads(custom.output)["strength"] == 0.25
    assert tomllib.loads(custom.output)["prompt"] == data["prompt"]
    again = _cli("--recipes", tmp_path, "recipes", "new", "my-look", "--from", "color-correct",
                 "--dir", tmp_path)
    assert again.exit_code == 1 and "exists already" in again.output

    broken = tmp_path / "broken.toml"
    broken.write_text('extends = "color-correct"\nstrength = 1.5\n')
    result = _cli("recipes", "validate", path, broken)
    assert result.exit_code == 1
    assert "ok       " in result.output and "strength must be in (0.0, 1.0], got 1.5" in result.output
    # Valid TOML and fields, but the files it names are not there: it could not run.
    absent = tmp_path / "absent.toml"
    absent.write_text('extends = "color-correct"\nmodel = "/nowhere/sd15"\n'
                      'loras = [{path = "film.safetensors", weight = 0.5}]\n')
    result = _cli("recipes", "validate", absent)
    assert result.exit_code == 1
    assert "reads files that are not there: lora film.safetensors" in result.output
    absent.write_text('extends = "color-correct"\nmodel = "/nowhere/sd15"\n')
    result = _cli("recipes", "validate", absent)
    assert result.exit_code == 1 and "model '/nowhere/sd15' does not exist" in result.output
    # A format no writer writes: a typo, or a writer plugin that is not installed.
    typo = tmp_path / "typo.toml"
    typo.write_text('extends = "color-correct"\n[output]\nformat = "jpg"\n')
    result = _cli("recipes", "validate", typo)
    assert result.exit_code == 1
    assert "output.format 'jpg' has no writer; did you mean 'jpeg'? (known: jpeg, lossless, png, " \
           "tiff; a writer plugin can add one)" in result.output

    # Without files: every recipe file of the folders, the built-in ones and --recipes.
    mine = tmp_path / "mine"
    _write(mine, "warm", 'extends = "color-correct"\nstrength = 0.3\n')
    result = _cli("--recipes", mine, "recipes", "validate")
    assert result.exit_code == 0, result.output
    checked = {line.split()[1].rstrip(":") for line in result.output.splitlines()}
    assert checked == {str(p) for p in BUILTIN_DIR.glob("*.toml")} | {str(mine / "warm.toml")}
    _write(mine, "film", 'extends = "color-correct"\nloras = [{path = "film.safetensors"}]\n')
    result = _cli("--recipes", mine, "recipes", "validate")
    assert result.exit_code == 1 and "lora film.safetensors" in result.output


def test_variants_become_recipes_with_a_default(tmp_path):
    _write(tmp_path, "tod", 'description = "base"\nprompt = "p"\nstrength = 0.5\nsteps = 20\n'
                            'default_variant = "dusk"\n[variants.dusk]\nprompt = "dusk"\n'
                            '[variants.night]\nprompt = "night"\nstrength = 0.6\n'
                            '[variants.night.output]\nquality = 90\n')
    book = load_recipes([tmp_path])
    assert set(book) == {"tod", "tod:dusk", "tod:night"}
    assert book["tod"].prompt == "dusk" and book["tod"].fingerprint == book["tod:dusk"].fingerprint
    night = book["tod:night"]
    assert (night.prompt, night.strength, night.steps, night.output.quality) == ("night", 0.6, 20, 90)
    _write(tmp_path / "bad", "x", 'default_variant = "y"\n[variants.z]\nprompt = "z"\n')
    with pytest.raises(RecipeError, match="default_variant 'y' is not one of its variants"):
        load_recipes([tmp_path / "bad"])


def test_builtin_recipes_are_in_their_ranges():
    book = load_recipes([BUILTIN_DIR])
    for name in ("season:winter", "season:spring", "season:summer", "season:autumn"):
        assert 0.45 <= book[name].strength <= 0.65 and 7 <= book[name].cfg <= 8, name
    for name in ("time-of-day", "time-of-day:golden-hour", "time-of-day:blue-hour",
                 "time-of-day:night", "time-of-day:overcast"):
        assert 0.40 <= book[name].strength <= 0.60 and 7 <= book[name].cfg <= 8, name
    assert book["time-of-day"].prompt == book["time-of-day:golden-hour"].prompt
    assert "season" not in book  # no default season: the user says which
    assert book["season:winter"].full_resolution == "tiled"
    assert len({book[n].fingerprint for n in book}) == len(book) - 1  # only the default alias repeats
    for recipe in book.values():
        assert "Karras" not in recipe.sampler  # strengths are tuned for non-Karras schedules
        assert recipe.description


def test_the_example_recipes_are_valid_and_use_what_they_show():
    from pathlib import Path

    examples = sorted((Path(__file__).resolve().parents[1] / "examples" / "recipes").glob("*.toml"))
    assert len(examples) >= 2
    result = CliRunner().invoke(main, ["recipes", "validate", *map(str, examples)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == len(examples)
    recipes = load_recipes([BUILTIN_DIR, examples[0].parent])
    winter = recipes["winter-keep-structure"]
    assert "{caption}" in winter.prompt and [u.preprocessor for u in winter.controlnet] == ["depth", "canny"]
    sdxl = recipes["golden-hour-sdxl"]
    assert sdxl.refiner.switch_at == 0.8 and sdxl.freeu and sdxl.pag.scale == 2.0


def test_new_with_set_keeps_what_compare_showed(tmp_path):
    made = _cli("recipes", "new", "warmer", "--from", "color-correct", "--dir", tmp_path,
                "--set", "strength=0.3", "--set", "sampler=DPM++ 2M Karras",
                "--set", "output.format=png", "--set", "output.bit_depth=16")
    assert made.exit_code == 0, made.output
    text = (tmp_path / "warmer.toml").read_text()
    assert "\nstrength = 0.3\n" in text and "# strength = 0.2" not in text
    shown = tomllib.loads(_cli("--recipes", tmp_path, "recipes", "show", "warmer").output)
    base = tomllib.loads(_cli("recipes", "show", "color-correct").output)
    assert (shown["strength"], shown["sampler"]) == (0.3, "DPM++ 2M Karras")
    assert (shown["output"]["format"], shown["output"]["bit_depth"]) == ("png", 16)
    assert shown["prompt"] == base["prompt"] and shown["cfg"] == base["cfg"]  # the rest inherited

    # A field of a table merges into the inherited table.
    _write(tmp_path, "styled", 'prompt = "p"\nstrength = 0.5\n[ip_adapter]\nmodel = "h94/IP-Adapter"\n'
                               'scale = 0.6\nreference = "ref.png"\n')
    Image.new("RGB", (32, 32)).save(tmp_path / "ref.png")
    table = _cli("--recipes", tmp_path, "recipes", "new", "stronger", "--from", "styled",
                 "--dir", tmp_path, "--set", "ip_adapter.scale=0.9")
    assert table.exit_code == 0, table.output
    stronger = tomllib.loads(_cli("--recipes", tmp_path, "recipes", "show", "stronger").output)
    assert stronger["ip_adapter"]["scale"] == 0.9 and stronger["ip_adapter"]["model"] == "h94/IP-Adapter"

    _write(tmp_path, "filmic", 'prompt = "p"\nstrength = 0.5\nloras = [{path = "a.safetensors", '
                             'weight = 0.8}, {path = "b.safetensors", weight = 0.5}]\n')
    lora = _cli("--recipes", tmp_path, "recipes", "new", "softer", "--from", "filmic",
                "--dir", tmp_path, "--set", "loras.2.weight=0.25")
    assert lora.exit_code == 0, lora.output
    softer = tomllib.loads(_cli("--recipes", tmp_path, "recipes", "show", "softer").output)
    assert softer["loras"] == [{"path": "a.safetensors", "weight": 0.8},
                               {"path": "b.safetensors", "weight": 0.25}]

    swapped = _cli("recipes", "new", "dusk", "--from", "time-of-day:golden-hour", "--dir",
                   tmp_path, "--set", "prompt/golden hour=blue hour")
    assert swapped.exit_code == 0, swapped.output
    dusk = tomllib.loads(_cli("--recipes", tmp_path, "recipes", "show", "dusk").output)
    assert "blue hour" in dusk["prompt"] and "golden hour" not in dusk["prompt"]

    bad = _cli("recipes", "new", "x", "--from", "color-correct", "--dir", tmp_path,
               "--set", "strength=2")
    assert bad.exit_code == 1 and "strength must be in (0.0, 1.0], got 2" in bad.output
    switched = _cli("--recipes", tmp_path, "recipes", "new", "y", "--from", "softer", "--dir",
                    tmp_path, "--set", "freeu=true")
    assert switched.exit_code == 0, switched.output
    assert "freeu" in tomllib.loads(_cli("--recipes", tmp_path, "recipes", "show", "y").output)
    off = _cli("--recipes", tmp_path, "recipes", "new", "z", "--from", "y", "--dir", tmp_path,
               "--set", "freeu=false")
    assert off.exit_code == 1 and "cannot take it away" in off.output
    deep = _cli("recipes", "new", "x", "--from", "color-correct", "--dir", tmp_path,
                "--set", "output.bit_depth=16")  # checked with the rest, as the file would be
    assert deep.exit_code == 1 and "needs format" in deep.output
    assert not (tmp_path / "x.toml").exists()


def test_new_takes_a_logo_or_reference_path_typed_in_the_shell_from_the_current_folder(
        tmp_path, monkeypatch):
    here = tmp_path / "shoot"
    here.mkdir()
    Image.new("RGBA", (40, 20)).save(here / "logo.png")
    Image.new("RGB", (32, 32)).save(here / "ref.jpg")
    monkeypatch.chdir(here)
    recipes = tmp_path / "recipes"
    made = _cli("recipes", "new", "branded", "--from", "color-correct", "--dir", recipes,
                "--set", "output.watermark_image=logo.png", "--set", "output.watermark_position=top")
    assert made.exit_code == 0, made.output
    look = _cli("recipes", "new", "my-look", "--from", "style-match", "--dir", recipes,
                "--set", "ip_adapter.reference=ref.jpg")
    assert look.exit_code == 0, look.output
    # Written as the files they are: a recipe file's own relative paths are from its folder.
    assert f'watermark_image = "{here / "logo.png"}"' in (recipes / "branded.toml").read_text()
    shown = tomllib.loads(_cli("--recipes", recipes, "recipes", "show", "branded").output)
    assert shown["output"]["watermark_image"] == str(here / "logo.png")
    assert "watermark_image_sha256" not in shown["output"]  # computed at load, not a field to write
    mine = tomllib.loads(_cli("--recipes", recipes, "recipes", "show", "my-look").output)
    assert mine["ip_adapter"]["reference"] == str(here / "ref.jpg")
    missing = _cli("recipes", "new", "other", "--from", "color-correct", "--dir", recipes,
                   "--set", "output.watermark_image=nope.png")
    assert missing.exit_code == 1 and not (recipes / "other.toml").exists()
    assert (f"recipe 'other': output.watermark_image {here / 'nope.png'} cannot be read "
            "(No such file or directory)") in missing.output
