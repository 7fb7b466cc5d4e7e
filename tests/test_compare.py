"""``photobatch compare``: a recipe's variations on one photo with one seed, full-size results
with their EXIF, a contact sheet, and runs in the catalog that never pass for the recipe's own;
the real CLI, catalog and stand-in model."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from photobatch.daemon.cli import main
from photobatch.daemon.contact_sheet import Cell, contact_sheet
from photobatch.daemon.samples import write_sample_photo
from photobatch.daemon.session import derive_seed
from photobatch.catalog.hashing import file_sha256
from photobatch.recipes.schema import RecipeError, recipe_from_dict
from photobatch.recipes.variations import combinations, parse_axis, variation_name, vary

RECIPE = '''name = "tone"
prompt = "warm evening light"
strength = 0.3
steps = 8
cfg = 5.0
sampler = "Euler"
full_resolution = "detail-transfer"
'''


def _cli(tmp_path, *args):
    recipes = tmp_path / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / "tone.toml").write_text(RECIPE)
    return CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "--recipes", str(recipes),
                                     *map(str, args)], catch_exceptions=False)


def test_values_are_read_as_toml_and_bare_words_as_text():
    assert parse_axis("strength=0.2,0.35").values == (0.2, 0.35)
    assert parse_axis("sampler=Euler a,DPM++ 2M").values == ("Euler a", "DPM++ 2M")
    assert parse_axis('prompt="dusk, soft","noon"').values == ("dusk, soft", "noon")
    assert parse_axis("color_match=true,false").values == (True, False)
    with pytest.raises(ValueError, match="write FIELD=VALUE,VALUE"):
        parse_axis("strength")
    with pytest.raises(ValueError, match="a value is given twice"):
        parse_axis("cfg=5,5")
    with pytest.raises(ValueError, match="more than 64"):
        combinations([parse_axis("seed=" + ",".join(map(str, range(9)))),
                      parse_axis("steps=" + ",".join(map(str, range(10, 18))))])


def test_each_variation_is_checked_like_a_recipe_file():
    recipe = recipe_from_dict({"name": "tone", "strength": 0.3, "steps": 8,
                               "ip_adapter": {"model": "h94/IP-Adapter", "scale": 0.6,
                                              "reference": "ref.jpg"}})
    varied = vary(recipe, {"cfg": 9, "ip_adapter.scale": 1, "output.quality": 80},
                  name=variation_name("tone", {"cfg": 9}))
    assert (varied.cfg, varied.ip_adapter.scale, varied.output.quality) == (9.0, 1.0, 80)
    assert isinstance(varied.cfg, float) and varied.name == "tone [cfg=9]"
    assert varied.ip_adapter.model == "h94/IP-Adapter" and recipe.cfg == 6.0  # the rest as it was
    assert varied.fingerprint != recipe.fingerprint
    _refused(recipe, [({"strength": 1.5}, "strength must be"),
                      ({"sampler": "Heun++"}, "sampler must be one of"),
                      ({"loras": []}, "'loras' cannot be varied"),
                      ({"controlnet.scale": 0.5}, "has no \\[controlnet\\] whose scale"),
                      ({"ip_adapter.scale": 5.0}, "ip_adapter.scale must be"),
                      ({"steps": 2}, "steps x strength must give at least one")])


def _refused(recipe, cases):
    """Each (changes, message pattern): ``vary`` refuses the changes with that message."""
    for changes, message in cases:
        with pytest.raises(RecipeError, match=message):
            vary(recipe, changes)


def test_compare_writes_each_variation_full_size_with_one_seed_and_a_sheet(tmp_path, standin_model):
    photo = tmp_path / "shoot" / "IMG_0001.JPG"
    photo.parent.mkdir()
    write_sample_photo(photo, size=(240, 160), seed=5)
    other = write_sample_photo(tmp_path / "shoot" / "IMG_0002.JPG", size=(120, 80), seed=7)
    out = tmp_path / "compare"
    result = _cli(tmp_path, "compare", photo, other, "--recipe", "tone", "--vary",
                  "strength=0.15,0.6", "--vary", "cfg=2,9", "--model", standin_model, "--out", out,
                  "--size", "128")
    assert result.exit_code == 0, result.output
    assert "8 of 8 variations done" in result.output
    assert ("photobatch recipes new NAME --from tone --set strength=0.15 --set cfg=2"
            in result.output)
    assert (out / "IMG_0002_tone_compare.jpg").exists()  # a sheet for each photo
    second = sqlite3.connect(tmp_path / "c.db").execute(
        "SELECT DISTINCT r.seed FROM runs r JOIN files f ON f.id = r.file_id "
        "WHERE f.path LIKE '%IMG_0002.JPG'").fetchall()
    base = recipe_from_dict({**__import__("tomllib").loads(RECIPE)})
    assert second == [(derive_seed(file_sha256(other), base.fingerprint),)]  # its own seed

    rows = sqlite3.connect(tmp_path / "c.db").execute(
        "SELECT r.recipe, r.status, r.seed, r.output_path FROM runs r JOIN files f "
        "ON f.id = r.file_id WHERE f.path LIKE '%IMG_0001.JPG' ORDER BY r.id").fetchall()
    assert [r[0] for r in rows] == ["tone [strength=0.15, cfg=2]", "tone [strength=0.15, cfg=9]",
                                    "tone [strength=0.6, cfg=2]", "tone [strength=0.6, cfg=9]"]
    assert {r[1] for r in rows} == {"done"}
    # Every variation with the seed the recipe itself runs this photo with.
    assert {r[2] for r in rows} == {derive_seed(file_sha256(photo), base.fingerprint)}
    outputs = [np.asarray(Image.open(r[3]).convert("RGB"), dtype=float) for r in rows]
    with Image.open(rows[0][3]) as first, Image.open(photo) as original:
        assert first.size == original.size  # full size
        assert first.getexif()[0x0110] == original.getexif()[0x0110]  # the camera's EXIF kept
    params = [json.loads(r[0]) for r in sqlite3.connect(tmp_path / "c.db").execute(
        "SELECT r.params FROM runs r JOIN files f ON f.id = r.file_id "
        "WHERE f.path LIKE '%IMG_0001.JPG' ORDER BY r.id")]
    assert [(p["strength"], p["cfg"]) for p in params] == [(0.15, 2.0), (0.15, 9.0), (0.6, 2.0),
                                                           (0.6, 9.0)]
    assert all(p["steps"] == 8 and p["sampler"] == "Euler" for p in params)  # the rest as it was
    # Each value made its own picture (the seed being one).
    assert all(not np.array_equal(outputs[i], outputs[j]) for i in range(4) for j in range(i))

    sheet = np.asarray(Image.open(out / "IMG_0001_tone_compare.jpg").convert("RGB"), dtype=float)
    # The same layout as a sheet made here from the outputs: the original, then two rows of
    # two columns, 128 px pictures; each place holds its own variation.
    layout = contact_sheet(Image.open(photo), [Cell(Image.open(r[3]), "x") for r in rows],
                           columns=2, size=128, title="t")
    assert sheet.shape[:2] == (layout.image.height, layout.image.width) and len(layout.boxes) == 5
    assert layout.boxes[0][2] - layout.boxes[0][0] == 128  # the photo's long side
    for n in range(len(outputs)):
        left, top, right, bottom = layout.boxes[n + 1]
        errors = [np.abs(sheet[top:bottom, left:right] - np.asarray(
            Image.fromarray(o.astype(np.uint8)).resize((right - left, bottom - top),
                                                       Image.Resampling.LANCZOS), dtype=float)).mean()
                  for o in outputs]
        assert np.argmin(errors) == n and errors[n] < 6, errors

    listed = json.loads(_cli(tmp_path, "catalog", "ls", "--json").output)
    assert {row["state"] for row in listed} == {"comparison"}  # never the recipe's own outputs
    nothing = _cli(tmp_path, "export", "gallery", "--out", tmp_path / "gallery")
    assert nothing.exit_code == 1 and "no outputs match" in nothing.output  # trials stay out
    named = _cli(tmp_path, "export", "gallery", "--recipe", rows[3][0], "--out", tmp_path / "gallery")
    assert named.exit_code == 0, named.output
    assert (tmp_path / "gallery" / "index.html").exists()
    rerun = _cli(tmp_path, "rerun", "--recipe", "tone", "--model", standin_model, "--out",
                 tmp_path / "o")
    assert "queued 2 run(s) (2 never run)" in rerun.output, rerun.output  # the recipe itself


def test_a_variation_that_cannot_run_is_refused_before_any_photo(tmp_path, standin_model):
    photo = tmp_path / "IMG_0002.JPG"
    write_sample_photo(photo, size=(120, 80), seed=6)
    result = _cli(tmp_path, "compare", photo, "--recipe", "tone", "--vary",
                  f"model={standin_model},{tmp_path / 'nowhere'}", "--out", tmp_path / "c")
    assert result.exit_code == 1
    assert "nowhere" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "c").exists()
    (tmp_path / "card2").mkdir()
    twin = write_sample_photo(tmp_path / "card2" / "IMG_0002.JPG", size=(120, 80), seed=7)
    same_name = _cli(tmp_path, "compare", photo, twin, "--recipe", "tone", "--vary", "cfg=2,3")
    assert same_name.exit_code == 2 and "two photos share a name" in same_name.output
    bad = _cli(tmp_path, "compare", photo, "--recipe", "tone", "--vary", "strength=0.2,2",
               "--model", standin_model)
    assert bad.exit_code == 1 and "strength must be" in bad.output
    three = _cli(tmp_path, "compare", photo, "--recipe", "tone", "--vary", "cfg=2,3",
                 "--vary", "steps=8,9", "--vary", "seed=1,2", "--model", standin_model)
    assert three.exit_code == 2 and "at most 2 fields" in three.output


def test_prompt_search_and_replace_as_a1111_does():
    recipe = recipe_from_dict({"name": "tod", "prompt": "a street at golden hour, warm light",
                               "negative_prompt": "no golden hour glare", "strength": 0.5})
    axis = parse_axis("prompt/golden hour=golden hour,blue hour,night")
    assert axis.field == "prompt/golden hour"
    same, blue, night = (vary(recipe, {axis.field: v}) for v in axis.values)
    assert same.fingerprint == recipe.fingerprint  # the first value: the recipe as it is
    assert blue.prompt == "a street at blue hour, warm light"
    assert blue.negative_prompt == "no blue hour glare"  # both prompts, as A1111
    assert night.prompt == "a street at night, warm light"
    with pytest.raises(RecipeError, match="neither prompt says 'winter'"):
        vary(recipe, {"prompt/winter": "summer"})


def test_freeu_and_pag_can_be_switched_on_and_off():
    plain = recipe_from_dict({"name": "p", "strength": 0.5})
    on = vary(plain, {"freeu": True, "pag": True})
    assert on.freeu is not None and on.pag is not None
    off = vary(on, {"freeu": False, "pag": False})
    assert off.freeu is None and off.pag is None and off.fingerprint == plain.fingerprint


def test_a_loras_weight_can_be_varied_and_says_which():
    one = recipe_from_dict({"name": "film", "loras": [{"path": "film.safetensors", "weight": 0.8}]})
    assert vary(one, {"lora.weight": 0.4}).loras[0].weight == 0.4
    two = recipe_from_dict({"name": "mix", "loras": [{"path": "a.safetensors", "weight": 0.8},
                                                     {"path": "b.safetensors", "weight": 0.5}]})
    varied = vary(two, {"loras.2.weight": 1})
    assert [(x.path, x.weight) for x in varied.loras] == [("a.safetensors", 0.8), ("b.safetensors", 1.0)]
    assert varied.fingerprint != two.fingerprint
    _refused(two, [({"lora.weight": 0.3}, "has 2 LoRAs: say which"),
                   ({"loras.3.weight": 0.3}, "there is no loras.3"),
                   ({"loras.1.weight": 9.0}, "loras.1.weight must be"),
                   ({"loras.1.path": "c.safetensors"}, "can be varied, not its path")])
