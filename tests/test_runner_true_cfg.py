"""FLUX.1's true CFG (diffusers' true_cfg_scale): the negative prompt run as classifier-free
guidance on top of the distilled guidance, each step twice; for FLUX.1 and Kontext only, set
where it belongs ([family.flux]) and refused by name elsewhere. Tiny models built in code."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import cli_shoot, flow_recipe, last_run, noise_photo, pixels

from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.gallery.describe import recipe_facts
from photobatch.recipes.schema import RecipeError, recipe_from_dict


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    root = tmp_path_factory.mktemp("true-cfg")
    return {kind: str(save_standin_model(root / kind, kind=kind))
            for kind in ("flux", "flux-kontext", "flux-fill", "sd3")}


@pytest.fixture(scope="module")
def runner():
    return DiffusersImg2ImgRunner(device="cpu", native_size=128)


def _counting(loaded):
    calls, encoded = [], []
    hooks = [loaded.pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(1)),
             loaded.pipe.text_encoder_2.register_forward_pre_hook(lambda module, args: encoded.append(1))]
    return calls, encoded, hooks


@pytest.mark.parametrize("kind", ("flux", "flux-kontext"))
def test_true_cfg_runs_the_negative_prompt_each_step(models, runner, kind):
    photo = noise_photo(seed=3)
    model = models[kind]
    plain = pixels(runner.run(photo, flow_recipe(), 2, model))
    loaded = runner.cache.get(model)
    calls, encoded, hooks = _counting(loaded)
    try:
        guided = runner.run(photo, flow_recipe(true_cfg=4.0, negative_prompt="blurry"), 2, model)
        steps_guided, encoded_guided = len(calls), len(encoded)
        calls.clear()
        again = runner.run(photo, flow_recipe(true_cfg=4.0, negative_prompt="blurry"), 2, model)
    finally:
        for hook in hooks:
            hook.remove()
    assert steps_guided == 2 * 4  # int(8 x 0.5) steps, each with and without the prompt
    assert encoded_guided == 2 and len(calls) == 8  # prompt and negative, encoded once
    assert np.array_equal(pixels(guided), pixels(again))
    assert np.abs(pixels(guided) - plain).mean() > 0.5
    other = pixels(runner.run(photo, flow_recipe(true_cfg=4.0, negative_prompt="dark, noisy"), 2, model))
    assert np.abs(pixels(guided) - other).mean() > 0.2  # the negative prompt is read
    weaker = pixels(runner.run(photo, flow_recipe(true_cfg=1.5, negative_prompt="blurry"), 2, model))
    assert np.abs(pixels(guided) - weaker).mean() > 0.2  # so is the scale


def test_true_cfg_is_refused_by_name_where_it_cannot_run(models, runner, standin_model):
    photo = noise_photo(seed=4)
    for model, fields, words in (
            (standin_model, {"sampler": "DPM++ 2M", "cfg": 6.0},
             "true_cfg is for FLUX.1 models, whose cfg is distilled guidance; on SD 1.x cfg is"),
            (models["sd3"], {}, "true_cfg is for FLUX.1 models, whose cfg is distilled guidance; on SD 3.x"),
            (models["flux-fill"], {"cfg": 30.0}, "true_cfg does not go with FLUX.1 Fill models"),
            (models["flux"], {"controlnet": {"model": "InstantX/FLUX.1-dev-Controlnet-Canny"}},
             "true_cfg does not go with controlnet")):
        with pytest.raises(ValueError, match=words):
            runner.run(photo, flow_recipe(true_cfg=3.0, **fields), 1, model)
    # Without true CFG, FLUX.1 still runs no negative prompt, and says how it could.
    with pytest.raises(ValueError, match="or run it with true_cfg above 1 there"):
        runner.run(photo, flow_recipe(negative_prompt="blurry"), 1, models["flux"])
    with pytest.raises(RecipeError, match="true_cfg must be in"):
        recipe_from_dict({"name": "t", "true_cfg": 0.5})


def test_a_flux_table_sets_true_cfg_and_the_record_and_gallery_say_so(models, tmp_path, standin_model):
    run, _ = cli_shoot(tmp_path, guided=(
        'prompt = "a photo"\nnegative_prompt = "blurry, cartoon"\nstrength = 0.5\nsteps = 8\n'
        'sampler = "DPM++ 2M"\ncfg = 6.0\n'
        '[family.flux]\nsampler = "Euler"\ncfg = 3.5\ntrue_cfg = 3.0\n'),
        everywhere='prompt = "a photo"\nstrength = 0.5\nsteps = 8\ntrue_cfg = 3.0\n')
    on_flux = run("guided", models["flux"])
    assert on_flux.exit_code == 0, on_flux.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["true_cfg"] == 3.0 and params["negative_prompt"] == "blurry, cartoon"
    assert ("True CFG scale", "3") in recipe_facts(params, 1, models["flux"], None)
    on_sd = run("guided", standin_model)  # the table is FLUX.1's: SD runs the recipe as it is
    assert on_sd.exit_code == 0, on_sd.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and "true_cfg" not in params and params["sampler"] == "DPM++ 2M"
    refused = run("everywhere", standin_model)  # set for every model: SD is told before any photo
    assert refused.exit_code != 0 and "recipe 'everywhere': true_cfg is for FLUX.1 models" in refused.output
    plain = recipe_from_dict({"name": "p", "prompt": "a photo"})
    assert "true_cfg" not in plain.params()  # counted only when set: no output goes stale
