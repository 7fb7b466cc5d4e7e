"""Perturbed-attention guidance (ComfyUI's node, Forge's built-in) through diffusers' PAG
pipelines, made from the loaded model with from_pipe like every task pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import noise_photo

from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.schema import RecipeError, recipe_from_dict


def _recipe(**fields):
    return recipe_from_dict({"name": "p", "prompt": "a photo", "strength": 0.6, "steps": 5,
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
        assert f"recipe 'p': {message}" in str(err.value)
