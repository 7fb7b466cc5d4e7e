"""Qwen-Image-Edit: a tiny Edit pipeline built in code (Qwen-Image's stand-in, its Qwen2.5-VL
told its vision tokens, a processor with an image processor and Qwen's vision tokens), saved as
Qwen's folders are and loaded back through the real loading code. It runs as strength-based
img2img through diffusers' Edit inpainting pipeline, reading the photo beside the noise and,
through Qwen2.5-VL, with the instruction; the recipes' [family.edit] instructions apply."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import cli_shoot, first_transformer_input, last_run, noise_photo
from PIL import Image

from photobatch.plugins.diffusion.families import QWENIMAGE, family_of_folder
from photobatch.plugins.diffusion.qwen_edit import edit_size
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.schema import recipe_from_dict


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    return str(save_standin_model(tmp_path_factory.mktemp("qwen-edit") / "edit", kind="qwenimage-edit"))


@pytest.fixture(scope="module")
def plus_model(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    return str(save_standin_model(tmp_path_factory.mktemp("qwen-edit-plus") / "plus",
                                  kind="qwenimage-edit-plus"))


def _recipe(**fields):
    return recipe_from_dict({"name": "e", "prompt": "Make it winter", "strength": 0.5, "steps": 4,
                             "cfg": 1.0, "sampler": "Euler", **fields})


def _pixels(out):
    return np.asarray(out.image, dtype=float)


@pytest.mark.parametrize("width, height", [(6000, 4000), (4000, 6000), (4032, 3024), (1920, 1080),
                                           (1000, 1000), (1000, 777), (150, 100)])
def test_the_working_size_is_the_one_the_edit_pipeline_keeps(width, height):
    """diffusers' Edit pipeline scales what it is given to about a megapixel at its aspect: the
    runner hands it a photo of exactly that size, so nothing is scaled twice."""
    from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_inpaint import calculate_dimensions

    w, h = edit_size(width, height)
    kept_w, kept_h, _ = calculate_dimensions(1024 * 1024, w / h)
    assert (kept_w // 16 * 16, kept_h // 16 * 16) == (w, h)
    assert w % 32 == 0 and h % 32 == 0 and abs(w * h / (1024 * 1024) - 1) < 0.1
    assert abs(w / h - width / height) < 0.05 * width / height


def test_a_qwen_image_edit_folder_reads_the_photo_with_the_instruction(model):
    info = family_of_folder(model)
    assert info.family is QWENIMAGE and info.edit and info.label == "Qwen-Image-Edit"
    assert info.table == "qwenimage_edit" and info.reads_photo
    runner = DiffusersImg2ImgRunner(device="cpu")
    loaded = runner.cache.get(model)
    # Loaded through its processor folder without torchvision, which transformers' own needs.
    assert type(loaded.pipe).__name__ == "QwenImageEditPipeline"
    seen, tokens = [], []
    encoder = loaded.pipe.text_encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("pixel_values")), with_kwargs=True)
    transformer = loaded.pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: tokens.append(kwargs["hidden_states"].shape[1]), with_kwargs=True)
    photo = noise_photo(150, 100, seed=1)
    try:
        out = runner.run(photo, _recipe(), 3, model)
    finally:
        encoder.remove()
        transformer.remove()
    assert out.family == "qwenimage_edit" and out.working_size == out.image.size == (1248, 832)
    assert [type(p).__name__ for p in loaded.task_pipes.values()] == ["QwenImageEditInpaintPipeline"]
    # The instruction is read with the photo (its pixels go to Qwen2.5-VL's vision tower) ...
    assert seen and all(pixels is not None and pixels.numel() > 0 for pixels in seen)
    # ... and the transformer sees the noise's 78 x 52 packed latents and the photo's beside them.
    assert tokens == [2 * 78 * 52] * 2  # 4 steps at strength 0.5
    again = runner.run(photo, _recipe(), 3, model)
    assert np.array_equal(_pixels(out), _pixels(again))
    other = runner.run(photo, _recipe(prompt="Make it night"), 3, model)
    # The instruction counts. (How much it moves the tiny random model's picture depends on
    # the precision: 0.0003 levels on average in fp32; so that it moves at all is asserted.)
    assert not np.array_equal(_pixels(out), _pixels(other))


def test_a_batch_gives_the_single_calls_pictures(model):
    """Several photos in one call: each photo's instruction read with its own photo. (In fp32:
    bf16 rounds a batch differently.)"""
    runner = DiffusersImg2ImgRunner(device="cpu", batch_on_cpu=True, precision="fp32")
    photos = [noise_photo(150, 100, seed=s) for s in (1, 2)]
    recipe = _recipe(batch=2)
    together = runner.run_batch(photos, recipe, [5, 6], model)
    for photo, seed, out in zip(photos, (5, 6), together):
        assert np.abs(_pixels(out) - _pixels(runner.run(photo, recipe, seed, model))).max() <= 1


def test_masked_work_leaves_every_pixel_outside_the_mask_as_it_was(model):
    from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
    from photobatch.plugins.diffusion.masks import paste_back

    runner = DiffusersInpaintRunner(device="cpu")
    photo = noise_photo(160, 112, seed=6)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (40, 30, 120, 90))
    out = runner.run(photo, _recipe(), 4, model, mask=mask)
    left, top, right, bottom = out.region
    edited = np.asarray(paste_back(photo, out.image.resize((right - left, bottom - top)), out.mask, out.region))
    outside = np.asarray(out.mask) == 0
    assert outside.any() and np.array_equal(np.asarray(photo)[outside], edited[outside])
    inside = np.asarray(out.mask) == 255
    assert np.abs(np.asarray(photo, float)[inside] - edited[inside].astype(float)).mean() > 1


def test_the_builtin_season_runs_with_its_edit_instruction_and_a_working_size_is_refused(model, tmp_path):
    """season:winter through the CLI: its [family.edit] instruction over qwenimage's table (a
    small photo's tiles scaled back from the megapixel the pipeline works at); a recipe that
    sets working_size is refused by name before any photo."""
    run, _ = cli_shoot(tmp_path, sized='extends = "color-correct"\nname = "sized"\nworking_size = 768\n')
    done = run("season:winter", model)
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["prompt"].startswith("Change the season of this photograph to winter")
    assert params["cfg"] == 4.0 and params["sampler"] == "Euler" and params["full_resolution"] == "tiled"
    with Image.open(tmp_path / "out" / "DSCF0001_season-winter.jpg") as img:
        assert img.size == (96, 64)
    refused = run("sized", model)
    assert refused.exit_code == 1
    assert "working_size is not read by Qwen-Image-Edit models" in refused.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["DSCF0001_season-winter.jpg"]


def test_an_edit_transformer_file_and_its_gguf_run_with_the_folder_as_model_config(model, tmp_path):
    """Qwen-Image-Edit fine-tunes are shared as the transformer in diffusers' names (and
    city96's GGUFs of it): with the Edit folder as model_config they run as the folder does."""
    from diffusers import QwenImageTransformer2DModel
    from fakes import save_gguf
    from safetensors.torch import save_file

    single = tmp_path / "qwen-image-edit.safetensors"
    transformer = QwenImageTransformer2DModel.from_pretrained(model, subfolder="transformer")
    save_file({k: v.contiguous() for k, v in transformer.state_dict().items()}, str(single))
    quantised = save_gguf(single, tmp_path / "qwen-image-edit-Q8_0.gguf")
    runner = DiffusersImg2ImgRunner(device="cpu")
    photo = noise_photo(150, 100, seed=2)
    folder = runner.run(photo, _recipe(), 7, model)
    for path in (single, quantised):
        out = runner.run(photo, _recipe(model_config=model), 7, str(path))
        loaded = runner.cache.get(str(path), model)
        assert loaded.info.edit and type(loaded.pipe).__name__ == "QwenImageEditPipeline"
        assert out.working_size == (1248, 832)
        assert np.abs(_pixels(out) - _pixels(folder)).mean() < (0.01 if path == single else 2)


def test_a_plus_model_is_conditioned_as_its_own_pipeline_conditions(model, plus_model):
    """Qwen-Image-Edit 2509 and later (Plus) see the photo at about 384² pixels as "Picture 1"
    in their own prompt template: the strength-taking pipeline photobatch runs them through gives
    each photo of a batch exactly the conditioning Plus's own pipeline gives that photo alone."""
    import torch
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as plus

    assert family_of_folder(plus_model).label == "Qwen-Image-Edit Plus"
    runner = DiffusersImg2ImgRunner(device="cpu", precision="fp32")
    photo = noise_photo(150, 100, seed=1)
    out = runner.run(photo, _recipe(), 3, plus_model)
    loaded = runner.cache.get(plus_model)
    assert type(loaded.pipe).__name__ == "QwenImageEditPlusPipeline" and out.working_size == (1248, 832)
    (task,) = loaded.task_pipes.values()
    assert type(task).__name__ == "QwenImageEditPlusInpaintPipeline"
    assert (task.prompt_template_encode, task.prompt_template_encode_start_idx) == (
        loaded.pipe.prompt_template_encode, loaded.pipe.prompt_template_encode_start_idx)
    photos = [task.image_processor.resize(noise_photo(150, 100, seed=s), 832, 1248) for s in (1, 2)]
    prompts = ["Make it winter", "Relight this photograph at golden hour: warm low sunlight"]
    embeds, mask = task._get_qwen_prompt_embeds(prompts, photos)
    for i, (prompt, picture) in enumerate(zip(prompts, photos)):
        w, h = plus.calculate_dimensions(plus.CONDITION_IMAGE_SIZE, picture.width / picture.height)[:2]
        own, _ = loaded.pipe._get_qwen_prompt_embeds([prompt], [loaded.pipe.image_processor.resize(picture, h, w)])
        assert torch.equal(embeds[i, :own.shape[1]], own[0]) and int(mask[i].sum()) == own.shape[1]
    # The same weights read as the first Edit reads them give another picture.
    first = DiffusersImg2ImgRunner(device="cpu", precision="fp32").run(photo, _recipe(), 3, model)
    assert np.abs(_pixels(out) - _pixels(first)).mean() > 0.05  # (measured: 0.1 on the stand-ins)


def test_a_cached_hub_id_loads_with_its_processor_from_the_cache(model, tmp_path, monkeypatch):
    """Qwen/Qwen-Image-Edit as a hub id, offline, from the Hugging Face cache: its processor is
    read from the cached copy's processor folder, as a folder's is."""
    from fakes import cache_on_hub

    cache_on_hub(tmp_path, "Qwen/Qwen-Image-Edit", model, monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = DiffusersImg2ImgRunner(device="cpu")
    out = runner.run(noise_photo(150, 100, seed=1), _recipe(), 3, "Qwen/Qwen-Image-Edit")
    loaded = runner.cache.get("Qwen/Qwen-Image-Edit")
    assert loaded.ref.kind == "hub" and loaded.info.edit and out.working_size == (1248, 832)
    assert type(loaded.pipe.processor).__name__ == "ImageOnlyQwen2VLProcessor"


@pytest.mark.parametrize("variant", ["edit", "edit-plus"])
def test_a_working_size_is_refused_for_the_first_edit_and_for_plus(variant):
    """Both Edit pipelines work at their own megapixel: a recipe's working_size would be
    recorded and not read, so it is refused for either."""
    from photobatch.plugins.diffusion.flow import flow_problem
    from photobatch.plugins.diffusion.settings import settings_from_recipe

    problem = flow_problem(settings_from_recipe(_recipe(working_size=768)), QWENIMAGE, variant)
    assert problem and problem.startswith("working_size is not read by Qwen-Image-Edit models")
    assert flow_problem(settings_from_recipe(_recipe()), QWENIMAGE, variant) is None


def test_plus_reads_reference_photos_as_its_own_pipeline_reads_the_images_after_the_first(plus_model):
    """A reference photo on Qwen-Image-Edit Plus (ip_adapter model "native"): the transformer and
    Qwen2.5-VL see it exactly as Plus's own pipeline shows them a second image, "Picture 2",
    whose latents go beside the photo's; the photo stays "Picture 1" and sets the output's size.
    The references go to every photo of a batch, and leave the pipeline as they came."""
    import torch

    runner = DiffusersImg2ImgRunner(device="cpu", precision="fp32")
    photo = noise_photo(150, 100, seed=1).resize((1248, 832))
    looks = [noise_photo(90, 120, seed=7), noise_photo(200, 100, seed=8)]
    loaded = runner.cache.get(plus_model)
    task = runner.cache.task_pipe(loaded, "inpaint")
    assert type(task).__name__ == "QwenImageEditPlusInpaintPipeline"
    generator = torch.Generator("cpu").manual_seed(1)
    own = first_transformer_input(loaded.pipe, image=[photo, *looks], prompt="Give Picture 1 the look of Picture 2",
                             num_inference_steps=2, generator=generator, height=832, width=1248)
    ours = first_transformer_input(task, image=[photo, photo], mask_image=[Image.new("L", photo.size, 255)] * 2,
                              prompt=["Give Picture 1 the look of Picture 2"] * 2, image_reference=looks,
                              strength=1.0, num_inference_steps=2, height=832, width=1248,
                              generator=[torch.Generator("cpu").manual_seed(s) for s in (1, 2)])
    assert ours["img_shapes"] == own["img_shapes"] * 2
    assert own["img_shapes"][0][2:] == [(1, 74, 56), (1, 46, 90)]  # each reference at ~1 megapixel
    # The photo's tokens, then each reference's: the references' are Plus's own, in both photos.
    references = sum(h * w for _, h, w in own["img_shapes"][0][2:])
    assert ours["hidden_states"].shape[1] == own["hidden_states"].shape[1] == 2 * 78 * 52 + references
    for i in range(2):
        assert torch.equal(ours["hidden_states"][i, -references:], own["hidden_states"][0, -references:])
        assert torch.equal(ours["encoder_hidden_states"][i], own["encoder_hidden_states"][0])
        # (A mask of all ones is dropped by the pipelines: None.)
        masks = ours["encoder_hidden_states_mask"], own["encoder_hidden_states_mask"]
        assert masks == (None, None) or torch.equal(masks[0][i], masks[1][0])
    assert not task.transformer._forward_pre_hooks and task._references == ()
    plain = first_transformer_input(task, image=[photo], mask_image=[Image.new("L", photo.size, 255)],
                               prompt="Give Picture 1 the look of Picture 2", strength=1.0,
                               num_inference_steps=2, height=832, width=1248)
    assert plain["hidden_states"].shape[1] == 2 * 78 * 52 and len(plain["img_shapes"][0]) == 2


def test_style_match_runs_on_plus_with_its_reference_and_is_refused_on_the_first_edit(
        model, plus_model, tmp_path, read_meta):
    """The built-in style-match, given a reference: on Qwen-Image-Edit Plus its
    [family.qwenimage_edit] table hands the photo to the model ("Picture 2" in its instruction,
    no adapter) and the picture follows the reference; the catalog records what ran and the EXIF
    is kept. The first Qwen-Image-Edit reads one picture only: refused before any photo, and so
    is a third reference on Plus."""
    look, other = tmp_path / "look.png", tmp_path / "other.png"
    noise_photo(96, 64, seed=3).save(look)
    noise_photo(64, 96, seed=4).save(other)
    # (One seed and no colour transfer: the pictures differ by what the model reads alone.)
    # Lossless and resized, not detail-transferred, so that a small move shows.
    same = ('steps = 4\nseed = 1\nreference_colors = "none"\nfull_resolution = "resize"\n\n'
            '[output]\nformat = "png"\n')
    run, _ = cli_shoot(tmp_path, mine=f'extends = "style-match"\nname = "mine"\n{same}\n'
                                      f'[ip_adapter]\nreference = "{look}"\n',
                       yours=f'extends = "style-match"\nname = "yours"\n{same}\n'
                               f'[ip_adapter]\nreference = "{other}"\n',
                       three=f'extends = "style-match"\nname = "three"\n\n'
                               f'[ip_adapter]\nreference = ["{look}", "{other}", "{look}"]\n')
    done = run("mine", plus_model)
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["ip_adapter"]["model"] == "native"
    assert params["prompt"].startswith("Give Picture 1 the look of Picture 2")
    assert (params["sampler"], params["cfg"]) == ("Euler", 4.0)
    exif, _, _ = read_meta(tmp_path / "out" / "DSCF0001_mine.png")
    assert exif["Exif.Image.Model"]
    assert run("yours", plus_model).exit_code == 0
    with Image.open(tmp_path / "out" / "DSCF0001_mine.png") as a, \
            Image.open(tmp_path / "out" / "DSCF0001_yours.png") as b:
        # The reference counts: the runs are deterministic, so a model that did not read it
        # would give the same picture for both (measured: 0.78 levels apart in bf16; how far
        # depends on the precision, so that they differ at all is asserted).
        assert not np.array_equal(np.asarray(a), np.asarray(b))
    refused = run("three", plus_model)
    assert refused.exit_code == 1
    assert ("Qwen-Image-Edit Plus models read at most 2 reference photos (ip_adapter model "
            "\"native\"), not 3") in refused.output
    first = run("mine", model)
    assert first.exit_code == 1
    assert ("which FLUX.2 and Qwen-Image-Edit Plus models take and Qwen-Image-Edit models "
            "do not: run this recipe with Qwen-Image-Edit 2509 or later") in first.output
