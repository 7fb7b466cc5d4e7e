"""The prompt's conditioning is encoded once per prompt and model and reused: a cached run gives
the picture an uncached one gives, and anything that changes the conditioning re-encodes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.schema import recipe_from_dict


def _photo(seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (64, 96, 3), dtype=np.uint8))


def _recipe(**fields):
    return recipe_from_dict({"name": "c", "prompt": "a photo of snow", "negative_prompt": "blurry",
                             "strength": 0.5, "steps": 4, "sampler": "Euler", **fields})


def _encodes(pipe):
    """A list that gets one entry per text-encoder call on ``pipe``."""
    calls = []
    handles = [pipe.text_encoder.register_forward_hook(lambda *a: calls.append(1))]
    if getattr(pipe, "text_encoder_2", None) is not None:
        handles.append(pipe.text_encoder_2.register_forward_hook(lambda *a: calls.append(2)))
    return calls, handles


@pytest.fixture(scope="module")
def te_lora(standin_model, tmp_path_factory):
    from photobatch.plugins.diffusion.standin_addons import save_standin_lora

    pipe = DiffusersImg2ImgRunner(native_size=64).pipeline(str(standin_model))[0]
    return save_standin_lora(pipe, tmp_path_factory.mktemp("lora") / "te.safetensors", seed=3,
                             text_encoder=True)


def test_one_prompt_is_encoded_once_for_many_photos(standin_model):
    runner = DiffusersImg2ImgRunner(native_size=64)
    model = str(standin_model)
    pipe = runner.pipeline(model)[0]
    calls, handles = _encodes(pipe)
    try:
        for seed in range(3):
            runner.run(_photo(seed), _recipe(), seed, model)
        assert len(calls) == 2  # the prompt and the negative prompt, once
        runner.run(_photo(), _recipe(prompt="a photo of rain"), 0, model)
        assert len(calls) == 4  # a new prompt is encoded
        runner.run(_photo(), _recipe(clip_skip=2), 0, model)
        assert len(calls) == 6  # another layer: another conditioning
        runner.run(_photo(), _recipe(), 0, model)
        assert len(calls) == 6  # the first one is still kept
    finally:
        for handle in handles:
            handle.remove()


def test_cached_conditioning_gives_the_uncached_picture(standin_model):
    # What the plain pipeline gives for the same prompt, seed and input, to the bit.
    from photobatch.plugins.diffusion.samplers import make_scheduler

    runner = DiffusersImg2ImgRunner(native_size=64)
    model = str(standin_model)
    photo = _photo(1)
    first = runner.run(photo, _recipe(), 7, model)
    again = runner.run(photo, _recipe(), 7, model)
    pipe = runner.pipeline(model)[0]
    previous = pipe.scheduler
    pipe.scheduler = make_scheduler("Euler", previous.config)
    try:
        plain = pipe(prompt="a photo of snow", negative_prompt="blurry", image=first.model_input,
                     strength=0.5, num_inference_steps=4, guidance_scale=_recipe().cfg,
                     generator=torch.Generator("cpu").manual_seed(7)).images[0]
    finally:
        pipe.scheduler = previous
    assert np.array_equal(np.asarray(first.image), np.asarray(plain))
    assert np.array_equal(np.asarray(again.image), np.asarray(plain))


def test_a_text_encoder_lora_is_part_of_the_key(standin_model, te_lora):
    # A shared runner (its cache seeing every recipe in turn) matches a fresh runner per recipe.
    model = str(standin_model)
    base = _recipe()
    recipes = [base,
               dataclasses.replace(base, loras=[{"path": str(te_lora), "weight": 1.0}]),
               base,
               dataclasses.replace(base, loras=[{"path": str(te_lora), "weight": 0.5}]),
               dataclasses.replace(base, loras=[{"path": str(te_lora), "weight": 1.0}])]
    shared = DiffusersImg2ImgRunner(native_size=64)
    outputs = [np.asarray(shared.run(_photo(2), r, 5, model).image, dtype=int) for r in recipes]
    for recipe, got in zip(recipes, outputs):
        fresh = DiffusersImg2ImgRunner(native_size=64)
        assert np.array_equal(got, np.asarray(fresh.run(_photo(2), recipe, 5, model).image, dtype=int))
    assert np.abs(outputs[0] - outputs[1]).mean() > 0.5  # the LoRA changes the picture
    # ... and the conditioning itself: its text-encoder layers are in use.
    kept = list(shared.cache.get(model, None).conditioning.values())
    assert len(kept) == 3  # base, weight 1.0, weight 0.5
    embeds = [k["prompt_embeds"] for k in kept]
    assert not torch.allclose(embeds[0], embeds[1]) and not torch.allclose(embeds[1], embeds[2])
    assert np.array_equal(outputs[0], outputs[2]) and np.array_equal(outputs[1], outputs[4])


def test_sdxl_conditioning_is_cached_with_its_pooled_embeddings(tmp_path):
    from photobatch.plugins.diffusion.standin import save_standin_model

    model = str(save_standin_model(tmp_path / "sdxl", kind="sdxl"))
    runner = DiffusersImg2ImgRunner(native_size=64)
    pipe = runner.pipeline(model)[0]
    calls, handles = _encodes(pipe)
    try:
        first = np.asarray(runner.run(_photo(3), _recipe(), 2, model).image, dtype=int)
        count = len(calls)
        again = np.asarray(runner.run(_photo(3), _recipe(), 2, model).image, dtype=int)
        assert count == 4 and len(calls) == count  # two encoders, two prompts; then none
    finally:
        for handle in handles:
            handle.remove()
    assert np.array_equal(first, again)
    fresh = DiffusersImg2ImgRunner(native_size=64)
    assert np.array_equal(first, np.asarray(fresh.run(_photo(3), _recipe(), 2, model).image, dtype=int))
    # An empty negative prompt: SDXL's zeros, as the pipeline itself would use.
    no_negative = np.asarray(runner.run(_photo(3), _recipe(negative_prompt=""), 2, model).image, dtype=int)
    assert np.abs(no_negative - first).mean() > 0.1
