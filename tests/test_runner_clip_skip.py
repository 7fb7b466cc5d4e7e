"""A1111's Clip skip: the prompt is encoded by an earlier text-encoder layer; recipes that do not
set it keep their fingerprints (an upgrade makes no output stale)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.schema import RecipeError, recipe_from_dict


def _recipe(**fields):
    return recipe_from_dict({"name": "c", "prompt": "a photo of snow", "strength": 0.5, "steps": 4,
                             "sampler": "Euler", **fields})


def test_clip_skip_counts_only_when_set():
    plain = _recipe()
    assert "clip_skip" not in plain.params()
    assert _recipe(clip_skip=1).fingerprint == plain.fingerprint
    assert _recipe(clip_skip=2).params()["clip_skip"] == 2
    assert _recipe(clip_skip=2).fingerprint != plain.fingerprint


@pytest.mark.parametrize("value", [0, 13, 1.5])
def test_clip_skip_out_of_range_is_refused_by_name(value):
    with pytest.raises(RecipeError, match="clip_skip"):
        _recipe(clip_skip=value)


def test_clip_skip_encodes_the_prompt_with_an_earlier_layer(standin_model):
    runner = DiffusersImg2ImgRunner(native_size=64)
    pipe = runner.pipeline(str(standin_model))[0]
    calls = []
    handle = pipe.text_encoder.register_forward_hook(
        lambda module, args, kwargs, out: calls.append(bool(kwargs.get("output_hidden_states"))),
        with_kwargs=True)
    photo = Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    try:
        last = np.asarray(runner.run(photo, _recipe(), 3, str(standin_model)).image, dtype=int)
        assert calls and not any(calls)
        calls.clear()
        skipped = np.asarray(runner.run(photo, _recipe(clip_skip=2), 3, str(standin_model)).image, dtype=int)
        assert calls and all(calls)  # diffusers reads the hidden states to pick the layer
    finally:
        handle.remove()
    assert np.abs(last - skipped).mean() > 0.5  # another conditioning, another picture


def test_clip_skip_1_is_the_encoders_own_output_and_too_deep_is_refused(standin_model):
    import torch

    from photobatch.plugins.diffusion.prompts import encode_skipping

    pipe = DiffusersImg2ImgRunner(native_size=64).pipeline(str(standin_model))[0]
    ids = pipe.tokenizer(["a photo of snow"], padding="max_length", max_length=77,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        last = pipe.text_encoder(ids)[0]
    assert torch.allclose(encode_skipping(pipe, ["a photo of snow"], 1), last, atol=1e-5)
    assert not torch.allclose(encode_skipping(pipe, ["a photo of snow"], 2), last, atol=1e-3)
    with pytest.raises(ValueError, match="clip_skip 7 is more than the text encoder's 5 layers"):
        encode_skipping(pipe, ["a photo"], 7)


def test_sdxl_skips_clip_layers_through_diffusers(tmp_path):
    from photobatch.plugins.diffusion.standin import save_standin_model

    model = str(save_standin_model(tmp_path / "sdxl", kind="sdxl"))
    runner = DiffusersImg2ImgRunner(native_size=64)
    photo = Image.fromarray(np.random.default_rng(4).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    last = np.asarray(runner.run(photo, _recipe(), 3, model).image, dtype=int)
    skipped = np.asarray(runner.run(photo, _recipe(clip_skip=2), 3, model).image, dtype=int)
    assert np.abs(last - skipped).mean() > 0.5


def test_inpainting_takes_clip_skip_too(standin_model):
    from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner

    runner = DiffusersInpaintRunner(native_size=64)
    photo = Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    fields = {"only_masked": False}
    last = np.asarray(runner.run(photo, _recipe(**fields), 3, str(standin_model), mask=mask).image, int)
    skipped = np.asarray(runner.run(photo, _recipe(clip_skip=3, **fields), 3, str(standin_model),
                                    mask=mask).image, int)
    assert np.abs(last - skipped).mean() > 0.1
