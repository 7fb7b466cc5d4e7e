"""A recipe's `working_size` (A1111's width/height, as a pixel budget with the photo's aspect
kept): the model works at that size in global, tiled and inpainting runs; the catalog and the
output's XMP record say what size it worked at; unset, fingerprints are unchanged."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import pytest
from fakes import noise_photo
from click.testing import CliRunner
from PIL import Image

from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
from photobatch.plugins.diffusion.params import working_size
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.settings import settings_from_recipe
from photobatch.recipes.schema import RecipeError, recipe_from_dict


def _recipe(**fields):
    return recipe_from_dict({"name": "w", "prompt": "a photo", "strength": 0.5, "steps": 2,
                             "sampler": "Euler", **fields})


def _photo(width, height):
    return noise_photo(width, height, seed=3)


class _LatentSizes:
    """Records the (height, width) of the latents each UNet call gets."""

    def __init__(self, pipe):
        self.sizes: list[tuple[int, int]] = []
        self.handle = pipe.unet.register_forward_pre_hook(self._record)

    def _record(self, module, args):
        self.sizes.append(tuple(args[0].shape[-2:]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_working_size_counts_in_the_fingerprint_only_when_set():
    plain = _recipe()
    assert "working_size" not in plain.params()
    sized = _recipe(working_size=768)
    assert sized.params()["working_size"] == 768
    assert sized.fingerprint != plain.fingerprint != _recipe(working_size=1024).fingerprint


@pytest.mark.parametrize("value, message", [
    (100, "working_size must be in [256, 4096], got 100"),
    (8192, "working_size must be in [256, 4096], got 8192"),
    (768.5, "working_size must be a int, got 768.5"),
])
def test_a_working_size_out_of_range_is_refused_naming_the_recipe(value, message):
    with pytest.raises(RecipeError) as err:
        _recipe(working_size=value)
    assert str(err.value).startswith("recipe 'w': ")
    assert message in str(err.value)


def test_a_runner_given_a_plain_object_checks_it_too():
    with pytest.raises(ValueError, match=r"working_size must be in \[256, 4096\] pixels, got 64"):
        settings_from_recipe(SimpleNamespace(prompt="x", strength=0.5, steps=4, working_size=64))


def test_the_model_works_at_the_recipes_size_instead_of_its_native(standin_model):
    runner = DiffusersImg2ImgRunner(native_size=64)
    model = str(standin_model)
    photo = _photo(400, 300)
    with _LatentSizes(runner.pipeline(model)[0]) as seen:
        native = runner.run(photo, _recipe(), 1, model)
        native_calls = list(seen.sizes)
        seen.sizes.clear()
        sized = runner.run(photo, _recipe(working_size=256), 1, model)
    assert native.working_size == working_size(400, 300, 64) == (72, 64)
    assert sized.working_size == working_size(400, 300, 256) == (296, 224)
    assert sized.image.size == sized.model_input.size == (296, 224)
    # The model itself ran at that size: latents 8x smaller per side, in every step.
    assert set(native_calls) == {(8, 9)}
    assert seen.sizes and set(seen.sizes) == {(28, 37)}


def test_tiles_are_of_the_working_size(standin_model):
    runner = DiffusersImg2ImgRunner(native_size=64)
    model = str(standin_model)
    recipe = _recipe(full_resolution="tiled", working_size=256, tile_overlap=32)
    with _LatentSizes(runner.pipeline(model)[0]) as seen:
        out = runner.run(_photo(600, 400), recipe, 1, model)
    assert out.working_size == (256, 256)
    assert out.image.size == (600, 400)
    assert set(seen.sizes) == {(32, 32)}
    # 600 px in tiles of 256 overlapping by 32: 3 columns; 400 px: 2 rows; int(2 x 0.5) = 1
    # denoising step each.
    assert len(seen.sizes) == 3 * 2 * 1


def test_inpainting_processes_the_masked_crop_at_the_working_size(standin_model):
    runner = DiffusersInpaintRunner(native_size=64)
    photo = _photo(320, 240)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (100, 80, 180, 160))
    out = runner.run(photo, _recipe(working_size=256, mask_padding=16, mask_blur=0), 1,
                     str(standin_model), mask=mask)
    left, top, right, bottom = out.region
    assert out.working_size == working_size(right - left, bottom - top, 256)
    assert out.model_input.size == out.working_size
    assert out.working_size[0] * out.working_size[1] == pytest.approx(256 * 256, rel=0.1)


def test_the_catalog_and_the_xmp_record_say_what_size_the_model_worked_at(tmp_path, standin_model):
    from photobatch.daemon.cli import main
    from photobatch.daemon.samples import write_sample_photo
    from photobatch.plugins.metadata import read_record

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "big.toml").write_text(
        f'name = "big"\nmodel = "{standin_model}"\nprompt = "a photo"\nstrength = 0.5\n'
        'steps = 2\nsampler = "Euler"\nworking_size = 256\n')
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    write_sample_photo(shoot / "DSCF0001.JPG", size=(96, 64), seed=1)
    base = ["--catalog", str(tmp_path / "catalog.db"), "--recipes", str(recipes)]
    done = CliRunner().invoke(main, [*base, "run", str(shoot), "--recipe", "big",
                                     "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    con = sqlite3.connect(tmp_path / "catalog.db")
    status, size = con.execute("SELECT status, working_size FROM runs").fetchone()
    con.close()
    assert (status, size) == ("done", "312x208")  # about 256² pixels at 3:2
    output = tmp_path / "out" / "DSCF0001_big.jpg"
    assert read_record(output)["WorkingSize"] == "312x208"
    assert Image.open(output).size == (96, 64)  # the output is at the photo's size all the same
    shown = CliRunner().invoke(main, [*base, "catalog", "show", str(shoot / "DSCF0001.JPG")])
    assert "working_size       312x208" in shown.output
