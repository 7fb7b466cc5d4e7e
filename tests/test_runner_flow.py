"""Flow-matching models (SD 3.x, FLUX.1, FLUX.2, Qwen-Image, Z-Image): tiny FLUX.1 [dev], FLUX.1
[schnell], SD 3.x, FLUX.2 [klein] base, Qwen-Image and Z-Image pipelines built in code (CLIP, T5
and Qwen tokenizers included), saved as diffusers folders and loaded back through the real
loading code. Each of the newer families has a file of its own for what is its own."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import cache_on_hub
from fakes import cli_shoot as _shoot
from fakes import flow_recipe as _recipe
from fakes import pixels as _pixels
from fakes import transformer_calls
from fakes import machine_precision, noise_photo, same_weights
from PIL import Image

from photobatch.plugins.diffusion.families import FLUX, SD3, family_of_folder, unsupported_pipeline
from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
from photobatch.plugins.diffusion.memory import level_for
from photobatch.plugins.diffusion.params import working_size
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner

KINDS = ("flux", "flux-schnell", "sd3", "flux-kontext", "flux-fill", "zimage", "flux2-base", "qwenimage")
# The models that run classifier-free guidance as a second transformer call each step (SD 3.x
# and Z-Image batch the two passes in one call).
TWO_PASS = ("flux2-base", "qwenimage")
# Every kind but [schnell], whose shared tests are the [dev] layout's.
MAIN_KINDS = tuple(kind for kind in KINDS if kind != "flux-schnell")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    root = tmp_path_factory.mktemp("flow")
    return {kind: str(save_standin_model(root / kind, kind=kind)) for kind in KINDS}


@pytest.fixture(scope="module")
def runner():
    # 128 px: 8 x 8 packed latents, enough for every code path and quick on a CPU.
    return DiffusersImg2ImgRunner(device="cpu", native_size=128)


def test_the_families_are_told_from_folders_and_loaded_pipelines(models, runner):
    # What `photobatch demo` says a model is.
    assert {kind: family_of_folder(models[kind]).label for kind in KINDS} == {
        "flux": "FLUX.1", "flux-schnell": "FLUX.1", "sd3": "SD 3.x", "flux-kontext": "FLUX.1 Kontext",
        "flux-fill": "FLUX.1 Fill", "zimage": "Z-Image", "flux2-base": "FLUX.2 [klein]",
        "qwenimage": "Qwen-Image"}
    assert family_of_folder(models["flux"]).family is FLUX
    assert family_of_folder(models["flux-schnell"]).family is FLUX
    assert family_of_folder(models["sd3"]).family is SD3
    assert FLUX.native == SD3.native == 1024 and FLUX.flow and SD3.flow
    for kind, cls in (("flux", "FluxImg2ImgPipeline"), ("sd3", "StableDiffusion3Img2ImgPipeline")):
        loaded = runner.cache.get(models[kind])
        assert type(loaded.pipe).__name__ == cls
        assert loaded.info.family.flow and loaded.info.native == 1024
    # Runs: the pipelines photobatch drives; refused by name: the ones that take other inputs.
    assert unsupported_pipeline("FluxPipeline", "m") is None
    assert unsupported_pipeline("StableDiffusion3InpaintPipeline", "m") is None
    assert "FluxControlPipeline" in unsupported_pipeline("FluxControlPipeline", "model x")
    assert "FluxControlNetPipeline" in unsupported_pipeline("FluxControlNetPipeline", "model x")


def test_working_sides_divide_by_16_for_packed_latents():
    for width, height in ((6000, 4000), (4000, 6000), (1200, 800), (333, 777)):
        w, h = working_size(width, height, 1024, 16)
        assert w % 16 == 0 and h % 16 == 0
        assert abs(w / h - width / height) < 0.06
        assert 0.85 < w * h / 1024**2 < 1.15
    assert working_size(1200, 800, 512) == (624, 416)  # the UNet families keep multiples of 8


@pytest.mark.parametrize("kind", KINDS)
def test_a_flow_model_runs_img2img_at_its_working_size_deterministically(models, runner, kind):
    photo = noise_photo(150, 100, seed=1)
    out = runner.run(photo, _recipe(), 7, models[kind])
    assert out.working_size == (160, 112) and out.image.size == (160, 112)
    assert out.precision == machine_precision() and out.model_id
    again = runner.run(photo, _recipe(), 7, models[kind])
    other_seed = runner.run(photo, _recipe(), 8, models[kind])
    assert np.array_equal(_pixels(out), _pixels(again))
    assert np.abs(_pixels(out) - _pixels(other_seed)).mean() > 1
    # An edit, not the photo back: the model's output differs from its input.
    assert np.abs(_pixels(out) - np.asarray(out.model_input, dtype=np.float64)).mean() > 1


@pytest.mark.parametrize("kind", MAIN_KINDS)
def test_strength_decides_the_steps_that_run_and_exact_steps_runs_them_all(models, runner, kind):
    pipe = runner.cache.get(models[kind]).pipe
    calls, hook = transformer_calls(pipe)
    try:
        runner.run(noise_photo(), _recipe(strength=0.5, steps=8), 1, models[kind])
        half = len(calls)
        calls.clear()
        runner.run(noise_photo(), _recipe(strength=0.25, steps=8, exact_steps=True), 1, models[kind])
        exact = len(calls)
    finally:
        hook.remove()
    per_step = 2 if kind in TWO_PASS else 1
    assert half == 4 * per_step  # int(8 x 0.5), as for the UNet models
    assert exact == 8 * per_step


def test_samplers_and_schedules_of_flow_models_run_and_differ(models, runner):
    photo = noise_photo(seed=2)
    euler = _pixels(runner.run(photo, _recipe(), 3, models["flux"]))
    for fields in ({"sampler": "Euler a"}, {"sampler": "LCM"}, {"schedule": "Karras"},
                   {"schedule": "Exponential"}, {"schedule": "Beta"}):
        other = _pixels(runner.run(photo, _recipe(**fields), 3, models["flux"]))
        assert np.abs(euler - other).mean() > 0.5, fields


@pytest.mark.parametrize("fields, words", [
    ({"sampler": "DPM++ 2M"}, ["sampler 'DPM++ 2M' does not run on FLUX.1 models", "'Euler'"]),
    ({"schedule": "SGM Uniform"}, ["schedule 'SGM Uniform' does not apply to FLUX.1 models"]),
    ({"pag": True, "freeu": True}, ["pag, freeu are for SD 1.x, 2.x and SDXL models, not FLUX.1"]),
    ({"controlnet": {"model": "InstantX/FLUX.1-dev-Controlnet-Canny"},
      "ip_adapter": {"model": "XLabs-AI/flux-ip-adapter", "reference": "ref.jpg"}},
     ["ip_adapter does not go with controlnet on FLUX.1 models"]),
    ({"refiner": {"model": "stabilityai/stable-diffusion-xl-refiner-1.0"}},
     ["refiner is for SD 1.x, 2.x and SDXL models"]),
    ({"clip_skip": 2}, ["clip_skip is for CLIP-conditioned models; FLUX.1 reads T5"]),
    ({"negative_prompt": "blurry"}, ["negative_prompt is not read by FLUX.1 models",
                                     'negative_prompt = "" under [family.flux]']),
    ({"prompt": "a photo of (snow:1.3)"}, ["prompt uses A1111's weight syntax", "FLUX.1 reads"]),
])
def test_what_a_flow_model_cannot_run_is_refused_by_name(models, runner, fields, words):
    with pytest.raises(ValueError) as refused:
        runner.run(noise_photo(), _recipe(**fields), 1, models["flux"])
    for word in words:
        assert word in str(refused.value)


def test_flux_takes_flux_controlnets_and_sd3_none(models, runner, tmp_path):
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.standin_flow import save_standin_flux_controlnet

    controlnet = str(save_standin_flux_controlnet(DiffusionPipeline.from_pretrained(models["flux"]),
                                                  tmp_path / "flux-canny"))
    photo = noise_photo(160, 112, seed=4)
    plain = _pixels(runner.run(photo, _recipe(), 2, models["flux"]))

    def with_units(*units):
        return _pixels(runner.run(photo, _recipe(controlnet=list(units)), 2, models["flux"]))

    canny = with_units({"model": controlnet, "preprocessor": "canny", "scale": 0.9})
    again = with_units({"model": controlnet, "preprocessor": "canny", "scale": 0.9})
    weak = with_units({"model": controlnet, "preprocessor": "canny", "scale": 0.1})
    photo_itself = with_units({"model": controlnet, "preprocessor": "none", "scale": 0.9})
    assert np.array_equal(canny, again)
    assert np.abs(canny - weak).mean() > 0.5  # the scale is read
    assert np.abs(canny - photo_itself).mean() > 0.5  # so is the control image
    assert np.abs(canny - plain).mean() > 0.5
    loaded = runner.cache.get(models["flux"])
    assert any(type(p).__name__ == "FluxControlNetImg2ImgPipeline" for p in loaded.task_pipes.values())
    # Two units together (diffusers' FluxMultiControlNetModel), each with its own image.
    both = with_units({"model": controlnet, "preprocessor": "canny", "scale": 0.9},
                      {"model": controlnet, "preprocessor": "none", "scale": 0.5})
    assert np.abs(both - canny).mean() > 0.1
    with pytest.raises(ValueError) as refused:
        runner.run(photo, _recipe(controlnet={"model": controlnet}), 2, models["sd3"])
    assert "diffusers has no SD 3.x ControlNet img2img pipeline" in str(refused.value)
    # Masked work too (diffusers' FluxControlNetInpaintPipeline).
    inpaint = DiffusersInpaintRunner(device="cpu", native_size=128)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (40, 30, 120, 90))
    masked = inpaint.run(photo, _recipe(controlnet={"model": controlnet}), 2, models["flux"], mask=mask)
    assert masked.image.size[0] % 16 == 0 and masked.region is not None
    assert any(type(p).__name__ == "FluxControlNetInpaintPipeline"
               for p in inpaint.cache.get(models["flux"]).task_pipes.values())


def test_flux_cfg_is_its_distilled_guidance_and_schnell_has_none(models, runner):
    photo = noise_photo(seed=3)

    def at(kind, cfg):
        return _pixels(runner.run(photo, _recipe(cfg=cfg), 5, models[kind]))

    assert np.abs(at("flux", 1.0) - at("flux", 6.0)).mean() > 0.5
    # [schnell] has no guidance embedding: diffusers ignores the value, as the model does.
    assert np.array_equal(at("flux-schnell", 1.0), at("flux-schnell", 6.0))


def test_sd3_reads_its_negative_prompt_and_clip_skip(models, runner):
    photo = noise_photo(seed=3)
    plain = _pixels(runner.run(photo, _recipe(cfg=6.0, negative_prompt="blurry"), 5, models["sd3"]))
    negative = _pixels(runner.run(photo, _recipe(cfg=6.0, negative_prompt="snow at night"), 5,
                                  models["sd3"]))
    skipped = _pixels(runner.run(photo, _recipe(cfg=6.0, negative_prompt="blurry", clip_skip=2), 5,
                                 models["sd3"]))
    assert np.abs(plain - negative).mean() > 0.1
    assert np.abs(plain - skipped).mean() > 0.1


@pytest.mark.parametrize("kind", MAIN_KINDS)
def test_the_prompt_is_encoded_once_for_a_shoot(models, runner, kind):
    loaded = runner.cache.get(models[kind])
    # The encoder that reads the whole prompt: T5 (Qwen3 for Z-Image).
    t5 = getattr(loaded.pipe, "text_encoder_3" if kind == "sd3" else "text_encoder_2"
                 if kind.startswith("flux-") or kind == "flux" else "text_encoder")
    encoded = []
    hook = t5.register_forward_pre_hook(lambda module, args: encoded.append(1))
    recipe = _recipe(prompt="a photo of golden hour light")
    try:
        first = runner.run(noise_photo(seed=1), recipe, 1, models[kind])
        runner.run(noise_photo(seed=2), recipe, 2, models[kind])
        # FLUX.1 encodes the prompt; the others the prompt and the negative one.
        assert len(encoded) == (1 if kind.startswith("flux-") or kind == "flux" else 2)
        # The cached conditioning gives the picture an uncached one gives.
        loaded.conditioning.clear()
        again = runner.run(noise_photo(seed=1), recipe, 1, models[kind])
    finally:
        hook.remove()
    assert np.array_equal(_pixels(first), _pixels(again))


@pytest.mark.parametrize("kind", MAIN_KINDS)
def test_a_lora_changes_a_flow_model_and_leaving_it_out_restores_it(models, runner, kind, tmp_path):
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.standin_addons import save_standin_lora

    lora = save_standin_lora(DiffusionPipeline.from_pretrained(models[kind]), tmp_path / "l.safetensors")
    photo = noise_photo(seed=5)
    plain = _pixels(runner.run(photo, _recipe(), 2, models[kind]))
    with_lora = _pixels(runner.run(photo, _recipe(loras=[{"path": str(lora), "weight": 1.0}]), 2,
                                   models[kind]))
    assert np.abs(plain - with_lora).mean() > 0.1
    assert np.array_equal(plain, _pixels(runner.run(photo, _recipe(), 2, models[kind])))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("kind", ("zimage", "flux2-base", "qwenimage", "flux-kontext"))
def test_the_newer_families_run_in_the_gpus_precisions(models, kind, precision):
    """What a GPU computes in, tried on the CPU: the pipelines' own dtype handling (Z-Image's
    steps assert float32 latents; FLUX.2's VAE normalises with its batch norm) takes 16 bits.
    FLUX.2 and Kontext run through a pipeline made by class: diffusers' from_pipe for one casts
    the shared transformer to float32 unless given the dtype (found by this test: the catalog
    said bf16 while the transformer computed in fp32)."""
    half = DiffusersImg2ImgRunner(device="cpu", native_size=128, precision=precision)
    out = half.run(noise_photo(seed=1), _recipe(), 1, models[kind])
    assert out.precision == precision and out.image.size == (160, 112)
    assert str(half.cache.get(models[kind]).pipe.transformer.dtype).endswith(
        {"bf16": "bfloat16", "fp16": "float16"}[precision])


@pytest.mark.parametrize("kind", ("zimage", "flux2-base", "qwenimage"))
def test_a_lora_in_ai_toolkit_naming_loads_as_the_diffusers_one_does(models, runner, kind, tmp_path):
    """The newer families' LoRAs are mostly shared as ai-toolkit and ComfyUI save them
    ("diffusion_model." keys): diffusers converts them on load, to the same picture."""
    from diffusers import DiffusionPipeline
    from safetensors.torch import load_file, save_file

    from photobatch.plugins.diffusion.standin_addons import save_standin_lora

    lora = save_standin_lora(DiffusionPipeline.from_pretrained(models[kind]), tmp_path / "l.safetensors")
    state = load_file(str(lora))
    assert all(key.startswith("transformer.") for key in state)
    theirs = tmp_path / "ai-toolkit.safetensors"
    save_file({"diffusion_model." + key.removeprefix("transformer."): value
               for key, value in state.items()}, str(theirs))
    photo = noise_photo(seed=3)

    def run(path):
        return _pixels(runner.run(photo, _recipe(loras=[{"path": str(path), "weight": 0.8}]), 2,
                                  models[kind]))

    ours = run(lora)
    assert np.abs(ours - _pixels(runner.run(photo, _recipe(), 2, models[kind]))).mean() > 0.1
    assert np.array_equal(ours, run(theirs))


@pytest.mark.parametrize("kind", MAIN_KINDS)
def test_flow_inpainting_leaves_every_pixel_outside_the_mask_as_it_was(models, kind):
    from photobatch.plugins.diffusion.masks import paste_back

    inpaint = DiffusersInpaintRunner(device="cpu", native_size=128)
    photo = noise_photo(200, 120, seed=6)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (60, 30, 130, 90))
    out = inpaint.run(photo, _recipe(mask_blur=4, only_masked=True, mask_padding=16), 4, models[kind],
                      mask=mask)
    # (FLUX.1 Fill's own pipeline is an inpainting one by another name.)
    assert type(inpaint.cache.get(models[kind]).task_pipes[("inpaint", None, None)]).__name__.endswith(
        "FillPipeline" if kind == "flux-fill" else "InpaintPipeline")
    assert out.image.size[0] % 16 == 0 and out.image.size[1] % 16 == 0
    left, top, right, bottom = out.region
    edited = paste_back(photo, out.image.resize((right - left, bottom - top)), out.mask, out.region)
    before, after = np.asarray(photo), np.asarray(edited)
    outside = np.asarray(out.mask) == 0
    assert np.array_equal(before[outside], after[outside])
    assert np.abs(before[~outside].astype(int) - after[~outside]).mean() > 1


def test_tiled_full_resolution_tiles_in_sides_of_16(models):
    tiled = DiffusersImg2ImgRunner(device="cpu", native_size=120)  # rounds down to 112
    photo = noise_photo(250, 150, seed=7)
    out = tiled.run(photo, _recipe(full_resolution="tiled", tile_overlap=32), 1, models["flux"])
    assert out.image.size == photo.size
    assert out.working_size == (112, 112)


@pytest.mark.parametrize("kind", ("flux", "flux2-base", "qwenimage", "zimage"))
def test_a_batch_equals_single_calls(models, kind):
    # (FLUX.2 [klein]'s pipeline also reads each photo as a reference; Z-Image's takes its
    # prompts as a list of tensors.)
    # In fp32: bf16's rounding differs between a batch and single calls (up to 14 levels on
    # the stand-ins' random weights).
    batched = DiffusersImg2ImgRunner(device="cpu", native_size=128, batch_on_cpu=True, precision="fp32")
    photos = [noise_photo(seed=s) for s in (1, 2, 3)]
    recipe = _recipe(batch=3, negative_prompt="blurry" if kind in ("flux2-base", "qwenimage") else "")
    together = batched.run_batch(photos, recipe, [11, 12, 13], models[kind])
    for photo, seed, out in zip(photos, (11, 12, 13), together):
        alone = batched.run(photo, recipe, seed, models[kind])
        assert np.abs(_pixels(out) - _pixels(alone)).max() <= 1


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_an_sd3_transformer_single_file_loads_with_its_base_model_as_model_config(
        models, tmp_path, prefix):
    """A fine-tune shared as Stability's single file (or ComfyUI's all-in-one naming): the
    transformer comes from the file, the rest from model_config."""
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.standin import save_standin_model
    from photobatch.plugins.diffusion.standin_flow import save_sd3_single_file

    tuned = DiffusionPipeline.from_pretrained(
        str(save_standin_model(tmp_path / "tuned", kind="sd3", seed=5))).transformer
    single = tmp_path / "sd3-finetune.safetensors"
    save_sd3_single_file(tuned, single, prefix)
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    out = runner.run(noise_photo(seed=1), _recipe(model_config=models["sd3"]), 3, str(single))
    loaded = runner.cache.get(str(single), models["sd3"])
    assert type(loaded.pipe).__name__ == "StableDiffusion3Img2ImgPipeline"
    assert loaded.info.family is SD3 and loaded.ref.kind == "single-file"
    assert same_weights(tuned.state_dict(), loaded.pipe.transformer.state_dict())
    base = runner.run(noise_photo(seed=1), _recipe(), 3, models["sd3"])
    assert np.abs(_pixels(out) - _pixels(base)).mean() > 1  # the file's weights, not the base's


def test_a_flow_single_file_needs_a_base_model_of_its_family(models, tmp_path):
    """Told from the file's header before any photo (FLUX.1 files load and run in
    test_runner_flux_single_file.py, with a transformer of FLUX.1's width)."""
    import torch
    from safetensors.torch import save_file

    flux_file = tmp_path / "flux1-dev-finetune.safetensors"
    save_file({"double_blocks.0.img_attn.qkv.weight": torch.zeros(2, 2)}, str(flux_file))
    run_recipe, _ = _shoot(tmp_path, alone='name = "alone"\nsampler = "Euler"\n',
                           mismatched=f'name = "mismatched"\nsampler = "Euler"\n'
                                      f'model_config = "{models["sd3"]}"\n')

    def run(config):
        return run_recipe("mismatched" if config else "alone", flux_file)

    alone = run(None)
    assert alone.exit_code == 1
    assert ("model flux1-dev-finetune.safetensors: a FLUX.1 single file holds its transformer; "
            "give the FLUX.1 model it was made from as model_config") in alone.output
    mismatched = run(models["sd3"])
    assert mismatched.exit_code == 1
    assert f"is a FLUX.1 transformer, but model_config {models['sd3']} is SD 3.x" in mismatched.output
    assert not (tmp_path / "out").exists()


def test_flow_models_start_with_savings_on_a_24_gb_card():
    assert level_for(48.0, "flux") == 0
    assert level_for(24.0, "flux") == 2  # model CPU offload, what diffusers advises for FLUX.1
    assert level_for(24.0, "sd3") == 1
    assert level_for(24.0, "sdxl") == 0


def test_built_in_recipes_run_on_flux_by_their_family_table_and_others_are_refused_first(
        models, tmp_path, read_meta):
    import json
    import sqlite3

    run_on, cli = _shoot(tmp_path, **{"sd-only": 'name = "sd-only"\nprompt = "a photo"\n'
                                                'strength = 0.5\nsteps = 8\nsampler = "DPM++ 2M"\n'})

    def run(recipe):
        return run_on(recipe, models["flux"])

    refused = run("sd-only")
    assert refused.exit_code == 1
    assert "recipe 'sd-only': sampler 'DPM++ 2M' does not run on FLUX.1 models" in refused.output
    assert not (tmp_path / "out").exists()
    done = run("color-correct")  # DPM++ 2M at CFG 6 on SD; its [family.flux] table: Euler, 3.5
    assert done.exit_code == 0, done.output
    con = sqlite3.connect(tmp_path / "c.db")
    status, params, fingerprint = con.execute(
        "SELECT status, params, recipe_fingerprint FROM runs").fetchone()
    con.close()
    params = json.loads(params)
    assert status == "done" and params["sampler"] == "Euler" and params["cfg"] == 3.5
    assert params["negative_prompt"] == ""  # FLUX.1 runs none, and the record says so
    assert "family" not in params  # what ran, not the tables it came from
    from photobatch.recipes.loader import BUILTIN_DIR, load_recipes

    builtin = load_recipes([BUILTIN_DIR])["color-correct"]
    assert fingerprint == builtin.for_family("flux").fingerprint != builtin.for_family("sd1").fingerprint
    output = tmp_path / "out" / "DSCF0001_color-correct.jpg"
    assert Image.open(output).size == (96, 64)
    exif, _, xmp = read_meta(output)
    source_exif, _, _ = read_meta(tmp_path / "shoot" / "DSCF0001.JPG")
    assert exif["Exif.Image.Model"] == source_exif["Exif.Image.Model"] and exif["Exif.Image.Model"]
    assert '"sampler":"Euler"' in "".join(v for k, v in xmp.items() if k.endswith("Params"))
    again = run("color-correct")  # the catalog knows it is done: same fingerprint, same model
    assert again.exit_code == 0 and "skipped" in again.output
    # A recipe that names the model is checked against it by `recipes validate` too.
    named = tmp_path / "recipes" / "named.toml"
    named.write_text(f'extends = "sd-only"\nname = "named"\nmodel = "{models["sd3"]}"\n')
    validated = cli("recipes", "validate", named)
    assert validated.exit_code == 1
    assert "sampler 'DPM++ 2M' does not run on SD 3.x models" in validated.output


@pytest.mark.parametrize("known_before_loading", [True, False])
def test_a_hub_flux_model_runs_the_built_in_recipes_and_is_recorded_as_it_ran(
        models, tmp_path, monkeypatch, read_meta, known_before_loading):
    """A hub id in the Hugging Face cache: its family is read from the cached model_index.json
    before any photo. One that cannot be told before it loads (downloaded by that very run) has
    its table applied by the runner, and the run is recorded as it ran all the same."""
    import json
    import sqlite3

    from huggingface_hub import constants

    from photobatch.daemon import app as app_module
    from photobatch.recipes.loader import BUILTIN_DIR, load_recipes

    repo = cache_on_hub(tmp_path, "someone/flux-cached", models["flux"], monkeypatch)
    commit = (repo / "refs" / "main").read_text()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if not known_before_loading:
        real = app_module._local_info
        monkeypatch.setattr(app_module, "_local_info", lambda model, config: (
            None if model == "someone/flux-cached" else real(model, config)))
    run, cli = _shoot(tmp_path)
    result = run("time-of-day:night", "someone/flux-cached")
    assert result.exit_code == 0, result.output
    con = sqlite3.connect(tmp_path / "c.db")
    status, params, fingerprint, model_id, model_hash = con.execute(
        "SELECT status, params, recipe_fingerprint, model_id, model_hash FROM runs").fetchone()
    con.close()
    params = json.loads(params)
    assert status == "done" and model_id == "someone/flux-cached" and model_hash == commit[:16]
    assert (params["sampler"], params["cfg"], params["strength"]) == ("Euler", 3.5, 0.6)
    assert "family" not in params
    night = load_recipes([BUILTIN_DIR])["time-of-day:night"]
    assert fingerprint == night.for_family("flux").fingerprint
    _, _, xmp = read_meta(tmp_path / "out" / "DSCF0001_time-of-day-night.jpg")
    assert any(k.endswith("RecipeFingerprint") and v == fingerprint for k, v in xmp.items())
    monkeypatch.undo()  # the model is cached now: told before loading from here on
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    listed = cli("catalog", "ls")
    assert "done" in listed.output and "stale" not in listed.output


def test_flux_ip_adapters_and_style_match_on_flux(models, runner, tmp_path, read_meta):
    """XLabs' layout, a tiny one with its image encoder beside it; style-match's FLUX.1 table
    picks XLabs' adapter, which a recipe of one's own points at a local copy."""
    import json
    import sqlite3

    from diffusers import DiffusionPipeline

    from photobatch.daemon.samples import write_sample_photo
    from photobatch.plugins.diffusion.standin_flow import save_standin_flux_ip_adapter

    adapter = save_standin_flux_ip_adapter(DiffusionPipeline.from_pretrained(models["flux"]),
                                           tmp_path / "flux-ip-adapter")
    reference = tmp_path / "look.jpg"
    write_sample_photo(reference, size=(64, 64), seed=9)
    photo = noise_photo(160, 112, seed=8)

    def styled(scale):
        return _pixels(runner.run(photo, _recipe(ip_adapter={
            "model": str(adapter), "reference": str(reference), "scale": scale}), 2, models["flux"]))

    plain = _pixels(runner.run(photo, _recipe(), 2, models["flux"]))
    strong, weak = styled(1.0), styled(0.2)
    assert np.abs(strong - plain).mean() > 0.5 and np.abs(strong - weak).mean() > 0.2
    assert np.array_equal(plain, _pixels(runner.run(photo, _recipe(), 2, models["flux"])))  # unloaded
    # SD 3.x has none here: said before the sampler, which no choice of would mend it.
    with pytest.raises(ValueError) as refused:
        runner.run(photo, _recipe(sampler="DPM++ 2M", ip_adapter={"model": str(adapter),
                                                                  "reference": str(reference)}),
                   2, models["sd3"])
    assert "photobatch has no SD 3.x IP-Adapter" in str(refused.value)

    run, _ = _shoot(tmp_path, **{"my-look": f'extends = "style-match"\nname = "my-look"\n'
                                              f'[ip_adapter]\nreference = "{reference}"\n'
                                              f'[family.flux.ip_adapter]\nmodel = "{adapter}"\n'})
    result = run("my-look", models["flux"])
    assert result.exit_code == 0, result.output
    con = sqlite3.connect(tmp_path / "c.db")
    status, params = con.execute("SELECT status, params FROM runs").fetchone()
    con.close()
    params = json.loads(params)
    assert status == "done" and (params["sampler"], params["cfg"]) == ("Euler", 3.5)
    # XLabs' file name from style-match's table, the local copy from the recipe's own, the
    # reference and scale from the recipe.
    assert params["ip_adapter"]["model"] == str(adapter)
    assert params["ip_adapter"]["weight_name"] == "ip_adapter.safetensors"
    assert params["ip_adapter"]["subfolder"] == "" and params["ip_adapter"]["scale"] == 0.6
    assert params["ip_adapter"]["reference"] == str(reference)
    exif, _, _ = read_meta(tmp_path / "out" / "DSCF0001_my-look.jpg")
    assert exif["Exif.Image.Model"]
