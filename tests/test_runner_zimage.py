"""Z-Image (Tongyi-MAI's Z-Image Turbo and base): a tiny pipeline built in code (a Qwen3 text
encoder with its tokenizer and chat template, the single-stream transformer, FLUX.1's VAE), saved
as Z-Image-Turbo's folder is laid out and loaded back through the real loading code."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import cli_shoot, last_run, noise_photo, same_weights
from fakes import flow_recipe as _recipe
from fakes import pixels as _pixels

from photobatch.plugins.diffusion.families import ZIMAGE, family_of_folder, unsupported_pipeline
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    return str(save_standin_model(tmp_path_factory.mktemp("zimage") / "zimage", kind="zimage"))


@pytest.fixture(scope="module")
def runner():
    return DiffusersImg2ImgRunner(device="cpu", native_size=128)


def _transformer_inputs(pipe):
    """Record how many latents each transformer call gets (Z-Image's pipelines pass a list:
    two per image when classifier-free guidance runs)."""
    sizes = []
    return sizes, pipe.transformer.register_forward_pre_hook(
        lambda module, args: sizes.append(len(args[0])))


def test_z_image_is_told_from_its_folder_and_runs_through_its_own_pipelines(model, runner):
    info = family_of_folder(model)
    assert info.family is ZIMAGE and ZIMAGE.flow and ZIMAGE.multiple == 16
    assert ZIMAGE.label == "Z-Image" and info.table == "zimage"
    loaded = runner.cache.get(model)
    assert type(loaded.pipe).__name__ == "ZImageImg2ImgPipeline"
    assert loaded.info.family is ZIMAGE and loaded.info.native == 1024
    assert unsupported_pipeline("ZImagePipeline", "m") is None
    assert unsupported_pipeline("ZImageInpaintPipeline", "m") is None
    # Its ControlNet and Omni pipelines take other inputs: refused by name.
    assert "ZImageControlNetPipeline" in unsupported_pipeline("ZImageControlNetPipeline", "model x")
    assert "ZImageOmniPipeline" in unsupported_pipeline("ZImageOmniPipeline", "model x")


def test_cfg_means_what_it_means_in_a1111_and_comfyui_one_is_off(model, runner):
    """diffusers' Z-Image pipelines count guidance from 0 (cond + w (cond - uncond)); a
    recipe's cfg counts as SD's does (uncond + cfg (cond - uncond)), so the pipeline gets
    cfg - 1, and cfg 1 runs no guidance, how Z-Image Turbo is run."""
    pipe = runner.cache.get(model).pipe
    sizes, hook = _transformer_inputs(pipe)
    photo = noise_photo(seed=2)
    try:
        off = _pixels(runner.run(photo, _recipe(cfg=1.0), 3, model))
        assert set(sizes) == {1} and pipe.guidance_scale == 0.0
        sizes.clear()
        guided = _pixels(runner.run(photo, _recipe(cfg=4.0), 3, model))
        assert set(sizes) == {2} and pipe.guidance_scale == 3.0
    finally:
        hook.remove()
    negative = _pixels(runner.run(photo, _recipe(cfg=4.0, negative_prompt="blurry"), 3, model))
    assert np.abs(off - guided).mean() > 0.5
    assert np.abs(guided - negative).mean() > 0.1  # the negative prompt is read with guidance


def test_the_guidance_matches_classifier_free_guidance_at_the_same_cfg(model, runner):
    """The step a recipe at cfg c takes is uncond + c (cond - uncond): checked against the
    transformer's own two outputs at one step."""
    import torch

    pipe = runner.cache.get(model).pipe
    seen = []
    hook = pipe.transformer.register_forward_hook(
        lambda module, args, out: seen.append([t.clone() for t in out[0]]))
    steps = []
    original = pipe.scheduler.__class__.step

    def record(self, model_output, *args, **kwargs):
        steps.append(model_output.clone())
        return original(self, model_output, *args, **kwargs)

    pipe.scheduler.__class__.step = record
    try:
        runner.run(noise_photo(seed=4), _recipe(cfg=2.5, negative_prompt="blurry", strength=0.25,
                                                steps=4), 1, model)
    finally:
        hook.remove()
        pipe.scheduler.__class__.step = original
    cond, uncond = seen[0][0].float(), seen[0][1].float()
    # The pipeline steps with the negated prediction (its transformer predicts the other way).
    expected = -(uncond + 2.5 * (cond - uncond)).squeeze(1)
    assert torch.allclose(steps[0][0], expected, atol=1e-5)


@pytest.mark.parametrize("fields, words", [
    ({"cfg": 1.0, "negative_prompt": "blurry"},
     "negative_prompt is not read by Z-Image models at cfg 1"),
    ({"clip_skip": 2}, "Z-Image reads Qwen3 and takes none"),
    ({"true_cfg": 3.0}, "true_cfg is for FLUX.1 models"),
    ({"sampler": "DPM++ 2M"}, "sampler 'DPM++ 2M' does not run on Z-Image models"),
    ({"prompt": "a (snowy:1.3) photo"}, "Z-Image reads the prompt as written"),
    ({"controlnet": {"model": "some/controlnet"}}, "no Z-Image ControlNet img2img pipeline"),
    ({"ip_adapter": {"model": "h94/IP-Adapter", "reference": "ref.jpg"}},
     "photobatch has no Z-Image IP-Adapter"),
])
def test_what_z_image_cannot_run_is_refused_by_name(model, runner, fields, words):
    with pytest.raises(ValueError) as err:
        runner.run(noise_photo(), _recipe(**fields), 1, model)
    assert words in str(err.value)


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_a_z_image_single_file_loads_with_its_base_model_as_model_config(model, tmp_path, prefix):
    """A fine-tune shared as Tongyi's single file (fused q/k/v; or ComfyUI's naming): the
    transformer from the file, the Qwen3 encoder, VAE and scheduler from model_config."""
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.families import family_of_single_file
    from photobatch.plugins.diffusion.standin import save_standin_model
    from photobatch.plugins.diffusion.standin_zimage import save_zimage_single_file

    tuned = DiffusionPipeline.from_pretrained(
        str(save_standin_model(tmp_path / "tuned", kind="zimage", seed=5))).transformer
    single = tmp_path / "z-image-finetune.safetensors"
    save_zimage_single_file(tuned, single, prefix)
    assert family_of_single_file(single).family is ZIMAGE
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    out = runner.run(noise_photo(seed=1), _recipe(model_config=model), 3, str(single))
    loaded = runner.cache.get(str(single), model)
    assert type(loaded.pipe).__name__ == "ZImageImg2ImgPipeline"
    assert loaded.info.family is ZIMAGE and loaded.ref.kind == "single-file"
    assert same_weights(tuned.state_dict(), loaded.pipe.transformer.state_dict())
    base = runner.run(noise_photo(seed=1), _recipe(), 3, model)
    assert np.abs(_pixels(out) - _pixels(base)).mean() > 1  # the file's weights, not the base's


def test_the_built_in_recipes_run_on_z_image_turbo_by_their_family_table(model, tmp_path, read_meta):
    """color-correct (DPM++ 2M at CFG 6, 30 steps at strength 0.2 on SD) runs on Z-Image as
    Turbo is run: Euler, cfg 1 and no negative prompt, its 8 steps whatever the strength."""
    from photobatch.recipes.loader import BUILTIN_DIR, load_recipes

    run, cli = cli_shoot(tmp_path)
    done = run("color-correct", model)
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done"
    assert (params["sampler"], params["cfg"], params["steps"], params["exact_steps"]) == (
        "Euler", 1.0, 8, True)
    assert params["negative_prompt"] == "" and params["strength"] == 0.2
    exif, _, xmp = read_meta(tmp_path / "out" / "DSCF0001_color-correct.jpg")
    assert exif["Exif.Image.Model"]
    assert '"cfg":1.0' in "".join(v for k, v in xmp.items() if k.endswith("Params"))
    shown = cli("recipes", "show", "season:winter", "--family", "zimage")
    assert shown.exit_code == 0, shown.output
    assert "exact_steps = true" in shown.output and "cfg = 1.0" in shown.output
    for name, recipe in load_recipes([BUILTIN_DIR]).items():
        if recipe.ip_adapter is None:  # style-match needs an IP-Adapter, which Z-Image lacks
            on_zimage = recipe.for_family("zimage")
            assert (on_zimage.cfg, on_zimage.steps, on_zimage.exact_steps) == (1.0, 8, True), name
            assert on_zimage.denoising_steps == 8, name
