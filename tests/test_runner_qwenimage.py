"""Qwen-Image (Alibaba's Qwen/Qwen-Image): a tiny pipeline built in code (a Qwen2.5-VL model with
a Qwen tokenizer and chat template, the MMDiT transformer, the Wan-style VAE), saved as
Qwen-Image's folder is laid out and loaded back through the real loading code."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import cli_shoot, last_run, noise_photo, same_weights
from fakes import flow_recipe as _recipe
from fakes import pixels as _pixels
from fakes import transformer_calls

from photobatch.plugins.diffusion.families import QWENIMAGE, family_of_folder, unsupported_pipeline
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    return str(save_standin_model(tmp_path_factory.mktemp("qwen") / "Qwen-Image", kind="qwenimage"))


@pytest.fixture(scope="module")
def runner():
    return DiffusersImg2ImgRunner(device="cpu", native_size=128)


def test_qwen_image_is_told_from_its_folder_and_runs_through_its_own_pipelines(model, runner):
    info = family_of_folder(model)
    assert info.family is QWENIMAGE and QWENIMAGE.label == "Qwen-Image" and info.table == "qwenimage"
    loaded = runner.cache.get(model)
    assert type(loaded.pipe).__name__ == "QwenImageImg2ImgPipeline"
    assert loaded.info.family is QWENIMAGE and loaded.info.native == 1024
    # Its layered pipeline makes other outputs (RGBA layers).
    assert "QwenImageLayeredPipeline" in unsupported_pipeline("QwenImageLayeredPipeline", "model x")


def test_cfg_is_classifier_free_guidance_run_as_its_pipelines_true_cfg(model, runner):
    """cfg 1 runs one transformer call a step; above 1 two, with the recipe's negative prompt
    (diffusers' true_cfg_scale: its guidance_scale is for distilled transformers it lacks)."""
    pipe = runner.cache.get(model).pipe
    calls, hook = transformer_calls(pipe)
    photo = noise_photo(seed=2)
    try:
        off = _pixels(runner.run(photo, _recipe(cfg=1.0, strength=0.5, steps=8), 3, model))
        assert len(calls) == 4  # int(8 x 0.5)
        calls.clear()
        runner.run(photo, _recipe(cfg=4.0, strength=0.5, steps=8), 3, model)
        assert len(calls) == 8
    finally:
        hook.remove()
    # (A strong scale: Qwen-Image's guidance rescales the result to the prompt's norm, and the
    # tiny model's prompt moves its picture little.)
    guided = _pixels(runner.run(photo, _recipe(cfg=12.0), 3, model))
    negative = _pixels(runner.run(photo, _recipe(cfg=12.0, negative_prompt="blurry"), 3, model))
    assert np.abs(off - guided).mean() > 0.5
    assert np.abs(guided - negative).mean() > 0.2


@pytest.mark.parametrize("fields, words", [
    ({"cfg": 1.0, "negative_prompt": "blurry"}, "negative_prompt is not read by Qwen-Image models at cfg 1"),
    ({"clip_skip": 2}, "Qwen-Image reads Qwen2.5-VL and takes none"),
    ({"sampler": "DPM++ 2M"}, "sampler 'DPM++ 2M' does not run on Qwen-Image models"),
    ({"true_cfg": 3.0}, "true_cfg is for FLUX.1 models"),
    ({"controlnet": {"model": "some/controlnet"}}, "no Qwen-Image ControlNet img2img pipeline"),
])
def test_what_qwen_image_cannot_run_is_refused_by_name(model, runner, fields, words):
    with pytest.raises(ValueError) as err:
        runner.run(noise_photo(), _recipe(**fields), 1, model)
    assert words in str(err.value)


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_a_qwen_image_single_file_loads_with_its_base_model_as_model_config(model, tmp_path, prefix):
    """Qwen-Image fine-tunes are shared as the transformer in diffusers' own names (ComfyUI's
    files with its prefix): told by the text norm no other family has."""
    from diffusers import DiffusionPipeline
    from safetensors.torch import save_file

    from photobatch.plugins.diffusion.families import family_of_single_file
    from photobatch.plugins.diffusion.standin import save_standin_model

    tuned = DiffusionPipeline.from_pretrained(
        str(save_standin_model(tmp_path / "tuned", kind="qwenimage", seed=5))).transformer
    single = tmp_path / "qwen-image-finetune.safetensors"
    save_file({prefix + k: v.contiguous() for k, v in tuned.state_dict().items()}, str(single))
    assert family_of_single_file(single).family is QWENIMAGE
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    out = runner.run(noise_photo(seed=1), _recipe(model_config=model), 3, str(single))
    loaded = runner.cache.get(str(single), model)
    assert type(loaded.pipe).__name__ == "QwenImageImg2ImgPipeline" and loaded.ref.kind == "single-file"
    assert same_weights(tuned.state_dict(), loaded.pipe.transformer.state_dict())
    base = runner.run(noise_photo(seed=1), _recipe(), 3, model)
    assert np.abs(_pixels(out) - _pixels(base)).mean() > 1


def test_the_built_in_recipes_run_on_qwen_image_by_their_family_table(model, tmp_path, read_meta):
    run, cli = cli_shoot(tmp_path)
    done = run("time-of-day:night", model)
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and (params["sampler"], params["cfg"]) == ("Euler", 4.0)
    assert params["negative_prompt"] and params["strength"] == 0.6  # read with guidance: kept
    exif, _, _ = read_meta(tmp_path / "out" / "DSCF0001_time-of-day-night.jpg")
    assert exif["Exif.Image.Model"]
    shown = cli("recipes", "show", "color-correct", "--family", "qwenimage")
    assert shown.exit_code == 0 and 'sampler = "Euler"' in shown.output
