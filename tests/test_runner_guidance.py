"""Guidance on the UNet itself: perturbed-attention guidance (ComfyUI's node, Forge's built-in)
through diffusers' PAG pipelines made from the loaded model with from_pipe, and FreeU (the
recipe's factors or the model family's published ones), each for its recipe's calls only."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import noise_photo

from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.runner_fields import FREEU_DEFAULTS, FreeUSettings
from photobatch.recipes.schema import RecipeError, recipe_from_dict


def _recipe(**fields):
    return recipe_from_dict({"name": "g", "prompt": "a photo", "strength": 0.6, "steps": 5,
                             "sampler": "Euler", **fields})


def test_pag_changes_the_picture_and_leaves_the_shared_unet_as_it_was(standin_model):
    runner = DiffusersImg2ImgRunner(native_size=64)
    model = str(standin_model)
    photo = noise_photo(seed=8)
    unet = runner.pipeline(model)[0].unet
    before = {name: type(proc).__name__ for name, proc in unet.attn_processors.items()}

    def run(recipe):
        return np.asarray(runner.run(photo, recipe, 2, model).image, dtype=int)

    plain = run(_recipe())
    calls = []
    handle = unet.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        guided = run(_recipe(pag=True))
    finally:
        handle.remove()
    # CFG and PAG in one batch: unconditional, conditional, perturbed; int(5 x 0.6) = 3 steps.
    assert calls == [3, 3, 3]
    assert np.abs(guided - plain).max() > 5
    stronger = run(_recipe(pag={"scale": 6.0, "layers": ["mid"]}))
    assert np.abs(stronger - guided).max() > 5
    assert np.array_equal(run(_recipe(pag={"scale": 0.0})), plain)  # scale 0: no guidance
    assert {name: type(proc).__name__ for name, proc in unet.attn_processors.items()} == before
    assert np.array_equal(run(_recipe()), plain)
    pipe = runner.cache.get(model).task_pipes[("img2img", None, None, ("mid",))]
    assert type(pipe).__name__ == "StableDiffusionPAGImg2ImgPipeline" and pipe.unet is unet


def test_an_unknown_layer_fails_the_run_with_diffusers_reason(standin_model):
    runner = DiffusersImg2ImgRunner(native_size=64)
    model = str(standin_model)
    plain = np.asarray(runner.run(noise_photo(), _recipe(), 1, model).image)
    with pytest.raises(ValueError, match="nowhere"):
        runner.run(noise_photo(), _recipe(pag={"layers": ["nowhere"]}), 1, model)
    # The shared UNet is as it was after the failed call.
    assert np.array_equal(np.asarray(runner.run(noise_photo(), _recipe(), 1, model).image), plain)


def test_pag_where_diffusers_has_no_pipeline_says_so(standin_model, tmp_path):
    from photobatch.plugins.diffusion.standin_addons import save_standin_controlnet

    runner = DiffusersImg2ImgRunner(native_size=64)
    model = str(standin_model)
    controlnet = save_standin_controlnet(runner.pipeline(model)[0], tmp_path / "cn")
    recipe = _recipe(pag=True, controlnet={"model": str(controlnet)})
    with pytest.raises(ValueError, match=r"^diffusers has no perturbed-attention guidance pipeline "
                                         r"for SD 1.x img2img with a ControlNet; leave out pag or "
                                         r"the controlnet$"):
        runner.run(noise_photo(), recipe, 1, model)


def test_pag_is_checked_and_counted_only_when_set():
    plain = _recipe()
    assert "pag" not in plain.params()
    assert _recipe(pag=True).pag.layers == ("mid",) and _recipe(pag=True).pag.scale == 3.0
    assert _recipe(pag=True).fingerprint != plain.fingerprint
    for value, message in [(False, "pag must be true or a table"),
                           ({"scale": 50}, "pag scale must be in [0.0, 20.0], got 50"),
                           ({"layers": []}, "pag layers must be a list of layer names"),
                           ({"layer": ["mid"]}, "pag has an unknown field 'layer'")]:
        with pytest.raises(RecipeError) as err:
            _recipe(pag=value)
        assert f"recipe 'g': {message}" in str(err.value)


def test_pag_inpaints_and_runs_on_sdxl(standin_model, tmp_path):
    from PIL import Image

    from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
    from photobatch.plugins.diffusion.standin import save_standin_model

    photo = noise_photo(128, 96, seed=3)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (40, 30, 90, 70))
    inpaint = DiffusersInpaintRunner(native_size=64)
    plain = inpaint.run(photo, _recipe(mask_blur=0), 1, str(standin_model), mask=mask)
    guided = inpaint.run(photo, _recipe(mask_blur=0, pag=True), 1, str(standin_model), mask=mask)
    assert np.abs(np.asarray(guided.image, dtype=int) - np.asarray(plain.image, dtype=int)).max() > 5
    pipes = inpaint.cache.get(str(standin_model)).task_pipes
    assert type(pipes[("inpaint", None, None, ("mid",))]).__name__ == "StableDiffusionPAGInpaintPipeline"

    sdxl = str(save_standin_model(tmp_path / "sdxl", kind="sdxl"))
    runner = DiffusersImg2ImgRunner(native_size=64)
    a = np.asarray(runner.run(photo, _recipe(), 1, sdxl).image, dtype=int)
    b = np.asarray(runner.run(photo, _recipe(pag=True), 1, sdxl).image, dtype=int)
    assert np.abs(a - b).max() > 5


def test_freeu_changes_the_picture_for_its_recipe_only(standin_model):
    runner = DiffusersImg2ImgRunner(native_size=64)
    model = str(standin_model)
    photo = noise_photo(seed=6)

    def run(recipe):
        return np.asarray(runner.run(photo, recipe, 2, model).image, dtype=int)

    plain = run(_recipe())
    published = run(_recipe(freeu=True))
    own = run(_recipe(freeu={"b1": 1.1, "b2": 1.2}))
    assert np.abs(published - plain).max() > 5 and np.abs(own - published).max() > 5
    assert np.array_equal(run(_recipe(freeu=True)), published)
    # The shared UNet is itself again for the next recipe.
    assert np.array_equal(run(_recipe()), plain)
    up = runner.pipeline(model)[0].unet.up_blocks
    assert all(getattr(block, "b1", None) is None for block in up)
    # Factors that change nothing give the plain picture (within a level: the skip features
    # still go through an FFT and back, which is exact only up to float rounding).
    assert np.abs(run(_recipe(freeu={"s1": 1, "s2": 1, "b1": 1, "b2": 1})) - plain).max() <= 1


def test_left_out_factors_are_the_families_published_ones():
    assert FreeUSettings().values("sdxl") == FREEU_DEFAULTS["sdxl"] == {"s1": 0.9, "s2": 0.2,
                                                                        "b1": 1.3, "b2": 1.4}
    assert FreeUSettings(b1=1.1).values("sd1") == {"s1": 0.9, "s2": 0.2, "b1": 1.1, "b2": 1.6}


def test_freeu_is_checked_and_counted_only_when_set():
    plain = _recipe()
    assert "freeu" not in plain.params()
    assert _recipe(freeu=True).fingerprint not in (plain.fingerprint, _recipe(freeu={"b1": 1.1}).fingerprint)
    for value, message in [(False, "freeu must be true or a table"),
                           ({"b3": 1.0}, "freeu has an unknown field 'b3'"),
                           ({"b1": 9}, "freeu b1 must be in [0.0, 4.0], got 9"),
                           ({"s1": "x"}, "freeu s1 must be a float or int, got 'x'")]:
        with pytest.raises(RecipeError) as err:
            _recipe(freeu=value)
        assert f"recipe 'g': {message}" in str(err.value)


def test_the_cli_refuses_pag_where_diffusers_has_no_pipeline_before_any_photo(standin_model, tmp_path):
    from click.testing import CliRunner

    from photobatch.daemon.cli import main
    from photobatch.daemon.samples import write_sample_photo

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "guided.toml").write_text('name = "guided"\nprompt = "a photo"\nstrength = 0.5\n'
                                         'steps = 4\npag = true\n[controlnet]\nmodel = "org/cn"\n')
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    write_sample_photo(shoot / "DSCF0001.JPG", size=(96, 64), seed=1)
    result = CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "--recipes", str(recipes),
                                       "run", str(shoot), "--recipe", "guided", "--model",
                                       str(standin_model), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert ("recipe 'guided': diffusers has no perturbed-attention guidance pipeline for SD 1.x "
            "img2img with a ControlNet" in result.output)
    assert not (tmp_path / "out").exists()
