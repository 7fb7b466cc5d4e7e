"""FLUX.2 [klein] (BFL's 4B and 9B, distilled and base): tiny pipelines built in code (a Qwen3
causal LM with its tokenizer and chat template, the FLUX.2 transformer, FLUX.2's VAE with its
latent batch norm), saved as FLUX.2-klein-4B's folder is laid out and loaded back through the real
loading code."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import cli_shoot, last_run, noise_photo, same_weights
from fakes import pixels as _pixels
from PIL import Image

from photobatch.plugins.diffusion.families import FLUX2, family_of_folder, unsupported_pipeline
from photobatch.plugins.diffusion.params import working_size
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    root = tmp_path_factory.mktemp("flux2")
    return {kind: str(save_standin_model(root / kind, kind=kind)) for kind in ("flux2", "flux2-base")}


@pytest.fixture(scope="module")
def runner():
    return DiffusersImg2ImgRunner(device="cpu", native_size=128)


def _recipe(**fields):
    """A recipe distilled FLUX.2 [klein] runs: Euler, 8 steps at strength 0.5, no guidance."""
    from photobatch.recipes.schema import recipe_from_dict

    return recipe_from_dict({"name": "r", "prompt": "a photo of snow", "strength": 0.5, "steps": 8,
                             "cfg": 1.0, "sampler": "Euler", **fields})


def _transformer_tokens(pipe):
    """Record the image tokens each transformer call gets."""
    tokens = []
    return tokens, pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: tokens.append(kwargs["hidden_states"].shape[1]), with_kwargs=True)


def test_flux2_klein_is_told_from_its_folder_and_runs_through_its_strength_pipeline(models, runner):
    info, base = family_of_folder(models["flux2"]), family_of_folder(models["flux2-base"])
    assert info.family is FLUX2 is base.family and FLUX2.label == "FLUX.2"
    assert info.distilled and not base.distilled and info.reads_photo and info.table == "flux2"
    runner.run(noise_photo(), _recipe(), 1, models["flux2"])
    loaded = runner.cache.get(models["flux2"])
    assert type(loaded.pipe).__name__ == "Flux2KleinPipeline" and loaded.info.distilled
    # diffusers' img2img AutoPipeline gives klein's text-to-image pipeline, which takes no
    # strength: img2img runs through its inpainting one, everything masked.
    assert [type(p).__name__ for p in loaded.task_pipes.values()] == ["Flux2KleinInpaintPipeline"]
    assert unsupported_pipeline("Flux2KleinPipeline", "m") is None
    # FLUX.2 [dev] runs too (test_runner_flux2_dev.py); a FLUX.2 pipeline of no known kind does not.
    assert unsupported_pipeline("Flux2Pipeline", "m") is None
    assert "Flux2KontextPipeline" in unsupported_pipeline("Flux2KontextPipeline", "model x")


def test_it_runs_img2img_at_its_working_size_reading_the_photo_itself(models, runner):
    pipe = runner.cache.get(models["flux2"]).pipe
    photo = noise_photo(150, 100, seed=1)
    tokens, hook = _transformer_tokens(runner.cache.task_pipe(runner.cache.get(models["flux2"]),
                                                              "inpaint"))
    try:
        out = runner.run(photo, _recipe(), 7, models["flux2"])
    finally:
        hook.remove()
    assert out.working_size == (160, 112) and out.image.size == (160, 112)
    # The noise's 10 x 7 tokens, and the photo's own beside them.
    assert tokens == [2 * 10 * 7] * 4  # int(8 x 0.5) steps
    assert np.array_equal(_pixels(out), _pixels(runner.run(photo, _recipe(), 7, models["flux2"])))
    assert np.abs(_pixels(out) - _pixels(runner.run(photo, _recipe(), 8, models["flux2"]))).mean() > 1
    assert pipe is runner.cache.get(models["flux2"]).pipe


def test_strength_and_exact_steps(models, runner):
    pipe = runner.cache.task_pipe(runner.cache.get(models["flux2"]), "inpaint")
    tokens, hook = _transformer_tokens(pipe)
    try:
        runner.run(noise_photo(), _recipe(strength=0.25, steps=8), 1, models["flux2"])
        quarter = len(tokens)
        tokens.clear()
        runner.run(noise_photo(), _recipe(strength=0.25, steps=4, exact_steps=True), 1, models["flux2"])
        exact = len(tokens)
    finally:
        hook.remove()
    assert (quarter, exact) == (2, 4)


def test_distilled_klein_refuses_guidance_and_the_base_model_runs_it(models, runner):
    for fields, words in (({"cfg": 4.0}, "cfg above 1 is not read by distilled FLUX.2 [klein]"),
                          ({"negative_prompt": "blurry"},
                           "negative_prompt is not read by distilled FLUX.2 [klein]")):
        with pytest.raises(ValueError) as err:
            runner.run(noise_photo(), _recipe(**fields), 1, models["flux2"])
        assert words in str(err.value)
    base = models["flux2-base"]
    with pytest.raises(ValueError) as err:
        runner.run(noise_photo(), _recipe(negative_prompt="blurry"), 1, base)
    assert "negative_prompt is not read by FLUX.2 models at cfg 1" in str(err.value)
    tokens, hook = _transformer_tokens(runner.cache.task_pipe(runner.cache.get(base), "inpaint"))
    photo = noise_photo(seed=3)
    try:
        plain = _pixels(runner.run(photo, _recipe(), 2, base))
        assert len(tokens) == 4
        tokens.clear()
        # (A strong scale: the tiny model's prompt moves its picture little.)
        guided = _pixels(runner.run(photo, _recipe(cfg=8.0), 2, base))
        assert len(tokens) == 8  # each step runs with the prompt and with the negative
    finally:
        hook.remove()
    negative = _pixels(runner.run(photo, _recipe(cfg=8.0, negative_prompt="blurry"), 2, base))
    assert np.abs(plain - guided).mean() > 0.5
    assert np.abs(guided - negative).mean() > 0.3  # the recipe's negative, not the pipeline's ""


@pytest.mark.parametrize("fields, words", [
    ({"clip_skip": 2}, "FLUX.2 reads Qwen3 and takes none"),
    ({"working_size": 1536}, "working_size 1536 is more than FLUX.2 models work at here"),
    ({"true_cfg": 3.0}, "true_cfg is for FLUX.1 models"),
    ({"sampler": "DPM++ 2M"}, "sampler 'DPM++ 2M' does not run on FLUX.2 models"),
    ({"controlnet": {"model": "some/controlnet"}}, "no FLUX.2 ControlNet img2img pipeline"),
])
def test_what_flux2_cannot_run_is_refused_by_name(models, runner, fields, words):
    with pytest.raises(ValueError) as err:
        runner.run(noise_photo(), _recipe(**fields), 1, models["flux2"])
    assert words in str(err.value)


def test_its_working_size_stays_within_the_megapixel_its_pipeline_keeps():
    """diffusers' klein pipeline scales anything above 1024² pixels down itself (and the
    picture would come back at another size): photobatch's working sizes stay within it."""
    for width, height in ((6000, 4000), (4000, 3000), (1920, 1080), (1000, 1000), (777, 333)):
        w, h = working_size(width, height, 1024, 16, FLUX2.max_pixels)
        assert w * h <= 1024 * 1024 and w % 16 == 0 == h % 16
        assert w * h > 0.9 * 1024 * 1024 and abs(w / h - width / height) < 0.06
    assert working_size(6000, 4000, 1024, 16) == (1248, 832)  # no cap: nearest sides


def test_the_prompt_is_encoded_once_for_a_shoot_with_the_recipes_negative(models, runner):
    loaded = runner.cache.get(models["flux2-base"])
    encoded = []
    hook = loaded.pipe.text_encoder.register_forward_pre_hook(lambda module, args: encoded.append(1))
    recipe = _recipe(cfg=3.0, negative_prompt="blurry", prompt="golden hour light")
    try:
        runner.run(noise_photo(seed=1), recipe, 1, models["flux2-base"])
        runner.run(noise_photo(seed=2), recipe, 2, models["flux2-base"])
    finally:
        hook.remove()
    assert len(encoded) == 2  # the prompt and the negative, once


def test_the_built_in_recipes_run_on_klein_by_their_family_table(models, tmp_path, read_meta):
    """color-correct (DPM++ 2M at CFG 6, 30 steps on SD) runs on FLUX.2 [klein] as the
    distilled model is run: Euler, cfg 1, no negative prompt, its 4 steps whatever the strength."""
    run, cli = cli_shoot(tmp_path)
    done = run("season:winter", models["flux2"])
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done"
    assert (params["sampler"], params["cfg"], params["steps"], params["exact_steps"]) == (
        "Euler", 1.0, 4, True)
    assert params["negative_prompt"] == "" and params["strength"] == 0.6
    exif, _, _ = read_meta(tmp_path / "out" / "DSCF0001_season-winter.jpg")
    assert exif["Exif.Image.Model"]
    assert Image.open(tmp_path / "out" / "DSCF0001_season-winter.jpg").size == (96, 64)
    shown = cli("recipes", "show", "color-correct", "--family", "flux2")
    assert shown.exit_code == 0 and "steps = 4" in shown.output


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_a_flux2_single_file_loads_with_its_base_model_as_model_config(models, tmp_path, prefix):
    """A klein transformer as BFL ships it (flux-2-klein-4b.safetensors) or ComfyUI names it:
    told from a FLUX.1 file by its shared modulation, the rest of the pipeline from
    model_config."""
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.families import family_of_single_file
    from photobatch.plugins.diffusion.standin import save_standin_model
    from photobatch.plugins.diffusion.standin_flux2 import save_flux2_single_file

    tuned = DiffusionPipeline.from_pretrained(
        str(save_standin_model(tmp_path / "tuned", kind="flux2", seed=5))).transformer
    single = tmp_path / "flux-2-klein-finetune.safetensors"
    save_flux2_single_file(tuned, single, prefix)
    assert family_of_single_file(single).family is FLUX2  # it has FLUX.1's double-block keys too
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    out = runner.run(noise_photo(seed=1), _recipe(model_config=models["flux2"]), 3, str(single))
    loaded = runner.cache.get(str(single), models["flux2"])
    assert type(loaded.pipe).__name__ == "Flux2KleinPipeline" and loaded.ref.kind == "single-file"
    assert loaded.info.family is FLUX2 and loaded.info.distilled
    assert same_weights(tuned.state_dict(), loaded.pipe.transformer.state_dict())
    base = runner.run(noise_photo(seed=1), _recipe(), 3, models["flux2"])
    assert np.abs(_pixels(out) - _pixels(base)).mean() > 1  # the file's weights, not the base's


def test_a_cached_hub_klein_is_told_distilled_before_any_photo(models, tmp_path, monkeypatch):
    """A hub id in the Hugging Face cache: its model_index.json says klein and distilled, so a
    recipe asking it for guidance is refused before any photo, offline, by name."""
    from fakes import cache_on_hub

    cache_on_hub(tmp_path, "black-forest-labs/FLUX.2-klein-4B", models["flux2"], monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run, _ = cli_shoot(tmp_path, guided='name = "guided"\nprompt = "a photo"\nstrength = 0.5\n'
                                         'steps = 8\ncfg = 4.0\nsampler = "Euler"\n')
    refused = run("guided", "black-forest-labs/FLUX.2-klein-4B")
    assert refused.exit_code == 1
    assert ("recipe 'guided': cfg above 1 is not read by distilled FLUX.2 [klein] models"
            in refused.output)
    assert not (tmp_path / "out").exists()
    done = run("color-correct", "black-forest-labs/FLUX.2-klein-4B")
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and (params["cfg"], params["steps"]) == (1.0, 4)


def _reference(tmp_path, name="look.png", seed=9, color=None):
    """A reference photo on disk, of noise or one ``color`` (its 96 x 64 pixels are 6 x 4 of
    klein's 16-pixel tokens)."""
    path = tmp_path / name
    (Image.new("RGB", (96, 64), color) if color else noise_photo(96, 64, seed=seed)).save(path)
    return str(path)


def _native(reference, **fields):
    return _recipe(ip_adapter={"model": "native", "scale": 1.0, "reference": reference, **fields})


def test_klein_reads_the_reference_photo_itself(models, runner, tmp_path):
    """Style matching on klein needs no IP-Adapter: the reference goes to its pipeline as
    image_reference, and the transformer sees its tokens beside the photo's and the noise's.
    (The tiny random transformer moves its picture only a little for any reference, so what it
    is given is asserted, and that the picture changes at all.)"""
    photo = noise_photo(seed=4)
    red, blue = _reference(tmp_path, "red.png", color=(250, 20, 20)), _reference(tmp_path, "blue.png")
    pipe = runner.cache.task_pipe(runner.cache.get(models["flux2"]), "inpaint")
    seen = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["hidden_states"].clone()), with_kwargs=True)
    try:
        plain = _pixels(runner.run(photo, _recipe(), 5, models["flux2"]))
        styled = [_pixels(runner.run(photo, _native(path), 5, models["flux2"])) for path in (red, blue, red)]
        listed = _pixels(runner.run(photo, _native([red]), 5, models["flux2"]))  # a list of one photo
    finally:
        hook.remove()
    noise_and_photo = 2 * 10 * 7
    assert [h.shape[1] for h in seen] == [noise_and_photo] * 4 + [noise_and_photo + 6 * 4] * 16
    first_call = {run: seen[4 + 4 * n] for n, run in enumerate(("red", "blue", "red again", "listed"))}
    # The photo's tokens are the same whatever the reference; the reference's are its own.
    assert all(h[:, :noise_and_photo].equal(seen[0]) for h in first_call.values())
    references = {run: h[:, noise_and_photo:] for run, h in first_call.items()}
    assert references["red"].equal(references["red again"]) and references["red"].equal(references["listed"])
    assert (references["red"] - references["blue"]).abs().mean() > 0.1
    assert not np.array_equal(styled[0], plain) and not np.array_equal(styled[0], styled[1])
    assert np.array_equal(styled[0], styled[2]) and np.array_equal(styled[0], listed)


def test_a_batch_with_a_reference_equals_single_calls(models, tmp_path):
    batched = DiffusersImg2ImgRunner(device="cpu", native_size=128, batch_on_cpu=True)
    photos, look = [noise_photo(seed=s) for s in (1, 2)], _reference(tmp_path)
    recipe = _native(look)
    together = batched.run_batch(photos, recipe, [11, 12], models["flux2"])
    for photo, seed, out in zip(photos, (11, 12), together):
        assert np.abs(_pixels(out) - _pixels(batched.run(photo, recipe, seed, models["flux2"]))).max() <= 1


def test_masked_work_on_klein_takes_the_reference_into_the_mask_only(models, tmp_path):
    """klein's inpainting with a reference (BFL's example): the masked region follows the
    reference, every pixel outside it stays the photo's."""
    from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
    from photobatch.plugins.diffusion.masks import paste_back

    inpaint = DiffusersInpaintRunner(device="cpu", native_size=128)
    photo = noise_photo(160, 112, seed=6)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (40, 30, 120, 90))
    look = _reference(tmp_path)
    outs = [inpaint.run(photo, recipe, 4, models["flux2"], mask=mask)
            for recipe in (_recipe(), _native(look))]
    for out in outs:
        left, top, right, bottom = out.region
        edited = np.asarray(paste_back(photo, out.image.resize((right - left, bottom - top)),
                                       out.mask, out.region))
        outside = np.asarray(out.mask) == 0
        assert np.array_equal(np.asarray(photo)[outside], edited[outside])
    assert not np.array_equal(_pixels(outs[0]), _pixels(outs[1]))  # the reference was read


def test_several_references_are_each_an_image_to_klein(models, tmp_path):
    """A look shared by a set (up to 4 photos, BFL's klein limit): each reference's tokens go
    in beside the photo's; a batch of as many photos as references (which klein's pipeline
    would read as one reference each) runs a call per photo, equal to single calls."""
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128, batch_on_cpu=True)
    looks = [_reference(tmp_path, f"{n}.png", seed=n) for n in (1, 2)]
    pipe = runner.cache.task_pipe(runner.cache.get(models["flux2"]), "inpaint")
    tokens, hook = _transformer_tokens(pipe)
    photos = [noise_photo(seed=s) for s in (1, 2)]
    try:
        together = runner.run_batch(photos, _native(looks), [11, 12], models["flux2"])
    finally:
        hook.remove()
    assert tokens == [2 * 10 * 7 + 2 * 6 * 4] * 8  # two calls of 4 steps: noise, photo, both references
    for photo, seed, out in zip(photos, (11, 12), together):
        alone = runner.run(photo, _native(looks), seed, models["flux2"])
        assert np.array_equal(_pixels(out), _pixels(alone))
        assert not np.array_equal(_pixels(alone), _pixels(runner.run(photo, _native(looks[:1]), seed,
                                                                     models["flux2"])))


@pytest.mark.parametrize("fields, words", [
    ({"scale": 0.6}, "ip_adapter scale 0.6 has no meaning when the model reads the reference itself"),
    ({"reference": "FIVE"}, "FLUX.2 [klein] models read at most 4 reference photos (ip_adapter model \"native\"), not 5"),
])
def test_what_the_reference_input_cannot_take_is_refused_by_name(models, runner, tmp_path, fields, words):
    look = _reference(tmp_path)
    if fields.get("reference") == "FIVE":
        fields = {"reference": [_reference(tmp_path, f"{n}.png", seed=n) for n in range(5)]}
    with pytest.raises(ValueError) as err:
        runner.run(noise_photo(), _recipe(ip_adapter={"model": "native", "scale": 1.0, "reference": look,
                                                      **fields}), 1, models["flux2"])
    assert words in str(err.value)


def test_native_is_refused_on_a_model_that_reads_no_reference(standin_model, tmp_path):
    sd = DiffusersImg2ImgRunner(device="cpu", native_size=64)
    with pytest.raises(ValueError) as err:
        sd.run(noise_photo(), _native(_reference(tmp_path)), 1, standin_model)
    assert ("ip_adapter model \"native\" hands the reference photo to the model itself, which "
            "FLUX.2 and Qwen-Image-Edit Plus models take and SD 1.x models do not") in str(err.value)
    # Through the CLI: before any photo, told from the model's folder.
    look = _reference(tmp_path)
    run, _ = cli_shoot(tmp_path, mine=f'name = "mine"\nprompt = "p"\n\n[ip_adapter]\nmodel = "native"\n'
                                        f'scale = 1.0\nreference = "{look}"\n')
    refused = run("mine", standin_model)
    assert refused.exit_code == 1
    assert "recipe 'mine': ip_adapter model \"native\" hands the reference photo" in refused.output
    assert "name an IP-Adapter as the ip_adapter model under [family.sd1]" in refused.output
    assert not (tmp_path / "out").exists()


def test_style_match_runs_on_klein_with_the_reference_and_no_adapter(models, standin_model, tmp_path,
                                                                       read_meta):
    """The built-in style-match, given a reference: on klein its [family.flux2] table hands the
    photo to the model (no IP-Adapter, scale 1.0, Euler, 4 steps) and the colour transfer still
    runs; the catalog records what ran and the EXIF is kept. On an SD model the same recipe
    still wants its IP-Adapter (refused before any photo here, as h94's is not in the cache)."""
    look = _reference(tmp_path)
    run, cli = cli_shoot(tmp_path, mine=f'extends = "style-match"\nname = "mine"\n\n'
                                        f'[ip_adapter]\nreference = "{look}"\n')
    done = run("mine", models["flux2"])
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done"
    assert params["ip_adapter"]["model"] == "native" and params["ip_adapter"]["scale"] == 1.0
    assert "subfolder" not in params["ip_adapter"] or params["ip_adapter"]["subfolder"] is None
    assert (params["sampler"], params["cfg"], params["steps"]) == ("Euler", 1.0, 4)
    assert params["prompt"].startswith("Give image 1 the look of image 2")
    exif, _, _ = read_meta(tmp_path / "out" / "DSCF0001_mine.jpg")
    assert exif["Exif.Image.Model"]
    shown = cli("recipes", "show", "style-match", "--family", "flux2")
    assert shown.exit_code == 0 and 'model = "native"' in shown.output
