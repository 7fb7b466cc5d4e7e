"""FLUX.2 [dev]: a tiny pipeline built in code (a Mistral 3 model with a Pixtral vision tower, a
Mistral-style tokenizer and chat template, a FLUX.2 transformer with a guidance embedding,
FLUX.2's VAE), saved as black-forest-labs/FLUX.2-dev's folder is laid out (its tokenizer as
Pixtral's processor) and loaded back through the real loading code. diffusers' [dev] pipeline
takes no strength: it runs through klein's inpainting pipeline conditioned as [dev]'s own."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import cli_shoot, first_transformer_input, last_run, noise_photo, save_gguf
from fakes import pixels as _pixels
from PIL import Image

from photobatch.plugins.diffusion.families import FLUX2, family_of_folder, family_of_single_file
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.schema import recipe_from_dict


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    root = tmp_path_factory.mktemp("flux2-dev")
    return {kind: str(save_standin_model(root / kind, kind=kind)) for kind in ("flux2-dev", "flux2")}


@pytest.fixture(scope="module")
def runner():
    return DiffusersImg2ImgRunner(device="cpu", native_size=128, precision="fp32")


def _recipe(**fields):
    """A recipe FLUX.2 [dev] runs: Euler, 8 steps at strength 0.5, distilled guidance 4."""
    return recipe_from_dict({"name": "r", "prompt": "a photo of snow", "negative_prompt": "",
                             "strength": 0.5, "steps": 8, "cfg": 4.0, "sampler": "Euler", **fields})


def test_a_flux2_dev_folder_loads_with_its_tokenizer_and_runs_img2img(models, runner):
    """Told from its folder; its tokenizer (saved as Pixtral's processor, which needs
    torchvision) loaded alone; img2img through the strength-taking pipeline: as many steps as
    the strength keeps, the photo's tokens beside the noise's, the same picture for the same
    seed, another for another guidance."""
    info = family_of_folder(models["flux2-dev"])
    assert info.family is FLUX2 and info.variant == "dev" and info.label == "FLUX.2 [dev]"
    assert info.table == "flux2_dev" and info.reads_photo and info.reference_input == 10
    photo = noise_photo(seed=2)
    out = runner.run(photo, _recipe(), 5, models["flux2-dev"])
    loaded = runner.cache.get(models["flux2-dev"])
    assert type(loaded.pipe).__name__ == "Flux2Pipeline"
    assert type(loaded.pipe.tokenizer).__name__ != "PixtralProcessor" and loaded.pipe.tokenizer.chat_template
    (task,) = loaded.task_pipes.values()
    assert type(task).__name__ == "Flux2DevInpaintPipeline"
    tokens = []
    # (After the call: what the transformer was given, the pipeline's own hooks' work included.)
    hook = task.transformer.register_forward_hook(
        lambda module, args, kwargs, output: tokens.append((kwargs["hidden_states"].shape[1],
                                                            float(kwargs["guidance"][0]))), with_kwargs=True)
    try:
        again = runner.run(photo, _recipe(), 5, models["flux2-dev"])
    finally:
        hook.remove()
    w, h = out.working_size
    assert tokens == [(2 * (w // 16) * (h // 16), 4.0)] * 4  # 8 steps at strength 0.5, guidance 4
    assert np.array_equal(_pixels(out), _pixels(again))
    weaker = runner.run(photo, _recipe(cfg=1.5), 5, models["flux2-dev"])
    assert np.abs(_pixels(out) - _pixels(weaker)).mean() > 0.5  # the guidance is read (measured: 2.6)


def test_it_is_conditioned_as_its_own_pipeline_conditions_it(models, runner):
    """The prompt through Mistral's chat template with BFL's system message (hidden states 10,
    20 and 30), the guidance scale to the transformer's guidance embedding, the photo's latents
    beside the noise's where [dev]'s own pipeline puts a reference image's: what the
    transformer is given equals what Flux2Pipeline gives it for the same photo."""
    import torch

    runner.run(noise_photo(), _recipe(), 1, models["flux2-dev"])
    loaded = runner.cache.get(models["flux2-dev"])
    (task,) = loaded.task_pipes.values()
    photo = noise_photo(128, 96, seed=4)
    prompt = "a photo of a winter night"
    own = first_transformer_input(loaded.pipe, prompt=prompt, image=[photo], height=96, width=128,
                                   num_inference_steps=4, guidance_scale=3.5,
                                   generator=torch.Generator("cpu").manual_seed(1))
    ours = first_transformer_input(task, prompt=prompt, image=[photo], mask_image=[Image.new("L", photo.size, 255)],
                                    height=96, width=128, strength=1.0, num_inference_steps=4,
                                    guidance_scale=3.5, generator=torch.Generator("cpu").manual_seed(1))
    for name in ("encoder_hidden_states", "txt_ids", "guidance", "img_ids"):
        assert torch.equal(ours[name], own[name]), name
    # The photo's tokens after the noise's: the same latents in both.
    photo_tokens = (128 // 16) * (96 // 16)
    assert torch.equal(ours["hidden_states"][:, -photo_tokens:], own["hidden_states"][:, -photo_tokens:])
    assert not task.transformer._forward_pre_hooks  # the guidance hook is gone after the call


def test_a_negative_prompt_true_cfg_and_an_eleventh_reference_are_refused_by_name(models, runner, tmp_path):
    from photobatch.plugins.diffusion.native_reference import native_reference_problem
    from photobatch.plugins.diffusion.settings import settings_from_recipe

    with pytest.raises(ValueError) as err:
        runner.run(noise_photo(), _recipe(negative_prompt="blurry"), 1, models["flux2-dev"])
    assert "negative_prompt is not read by FLUX.2 [dev] models (guidance-distilled" in str(err.value)
    assert "under [family.flux2_dev]" in str(err.value)
    with pytest.raises(ValueError) as err:
        runner.run(noise_photo(), _recipe(true_cfg=3.0), 1, models["flux2-dev"])
    assert str(err.value).startswith("true_cfg is for FLUX.1 models; FLUX.2 [dev]'s pipeline runs no true CFG")
    looks = [str(tmp_path / f"{n}.png") for n in range(11)]
    for path in looks:
        noise_photo(seed=1).save(path)
    spec = {"model": "native", "scale": 1.0}
    info = family_of_folder(models["flux2-dev"])
    assert native_reference_problem(settings_from_recipe(_recipe(ip_adapter={**spec, "reference": looks[:10]})),
                                    info) is None
    assert ("FLUX.2 [dev] models read at most 10 reference photos (ip_adapter model \"native\"), not 11"
            in native_reference_problem(settings_from_recipe(_recipe(ip_adapter={**spec, "reference": looks})),
                                        info))


def test_the_builtins_run_on_it_with_their_flux2_dev_tables_and_a_reference(models, tmp_path, read_meta):
    """season:winter through the CLI: klein's table then [dev]'s (guidance 4, 28 steps as the
    strength keeps them, no negative prompt), the EXIF kept. style-match with a reference: the
    model reads it itself (klein's "native" table, [dev]'s guidance), and it counts."""
    look, other = tmp_path / "look.png", tmp_path / "other.png"
    noise_photo(seed=3).save(look)
    noise_photo(seed=4).save(other)
    # (The base's [family.flux2_dev] steps apply over a top-level steps: 4 in the recipes' own.)
    # Lossless and resized, not detail-transferred: the tiny random transformer moves its
    # picture only a little for any reference (a few pixels by a level in fp32; 2 levels on
    # average in bf16), so that it moves at all is what is asserted, as for klein.
    same = ('seed = 1\nreference_colors = "none"\nfull_resolution = "resize"\n\n'
            '[family.flux2_dev]\nsteps = 4\n\n[output]\nformat = "png"\n')
    run, cli = cli_shoot(tmp_path, mine=f'extends = "style-match"\nname = "mine"\n{same}\n'
                                        f'[ip_adapter]\nreference = "{look}"\n',
                         yours=f'extends = "style-match"\nname = "yours"\n{same}\n'
                               f'[ip_adapter]\nreference = "{other}"\n')
    done = run("season:winter", models["flux2-dev"])
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and (params["cfg"], params["steps"], params["exact_steps"]) == (4.0, 28, False)
    assert params["negative_prompt"] == "" and params["sampler"] == "Euler"
    exif, _, _ = read_meta(tmp_path / "out" / "DSCF0001_season-winter.jpg")
    assert exif["Exif.Image.Model"]
    for name in ("mine", "yours"):
        assert run(name, models["flux2-dev"]).exit_code == 0
    status, params = last_run(tmp_path / "c.db")
    assert params["ip_adapter"]["model"] == "native" and (params["cfg"], params["steps"]) == (4.0, 4)
    mine, yours = (np.asarray(Image.open(tmp_path / "out" / f"DSCF0001_{name}.png"), float)
                   for name in ("mine", "yours"))
    assert run("mine", models["flux2-dev"], "--force").exit_code == 0
    again = np.asarray(Image.open(tmp_path / "out" / "DSCF0001_mine.png"), float)
    # The reference counts: one seed, no colour transfer, and runs repeat to the level, so a
    # model that did not read it would give the same picture for both.
    assert np.array_equal(again, mine) and not np.array_equal(mine, yours)
    shown = cli("recipes", "show", "season:winter", "--family", "flux2_dev")
    assert shown.exit_code == 0 and "steps = 28" in shown.output and "cfg = 4.0" in shown.output


def test_its_transformer_as_a_file_and_a_gguf_runs_with_the_folder_as_model_config(models, runner, tmp_path):
    """[dev] fine-tunes are shared as the transformer in BFL's layout (and as city96's GGUFs):
    told from klein's by its guidance embedding, run with the [dev] folder as model_config; a
    klein base for a [dev] file (or the other way round) is refused by name."""
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.loading import flow_single_file_problem
    from photobatch.plugins.diffusion.sources import resolve_model
    from photobatch.plugins.diffusion.standin_flux2 import save_flux2_single_file

    base = models["flux2-dev"]
    single = tmp_path / "flux2-dev.safetensors"
    save_flux2_single_file(DiffusionPipeline.from_pretrained(base, tokenizer=None).transformer, single)
    quantised = save_gguf(single, tmp_path / "flux2-dev-Q8_0.gguf")
    for path in (single, quantised):
        assert family_of_single_file(path).variant == "dev"
    photo = noise_photo(seed=6)
    folder = runner.run(photo, _recipe(), 7, base)
    for path, within in ((single, 0.01), (quantised, 2)):
        out = runner.run(photo, _recipe(model_config=base), 7, str(path))
        loaded = runner.cache.get(str(path), base)
        assert loaded.info.variant == "dev" and type(loaded.pipe.tokenizer).__name__ != "PixtralProcessor"
        assert np.abs(_pixels(out) - _pixels(folder)).mean() < within
    problem = flow_single_file_problem(resolve_model(str(single), config=models["flux2"]),
                                       family_of_single_file(single))
    assert problem == (f"model flux2-dev.safetensors is a FLUX.2 [dev] transformer, but model_config "
                       f"{models['flux2']} is FLUX.2 [klein], distilled: give the FLUX.2 model it was made from")


def test_a_cached_hub_id_loads_with_its_tokenizer_from_the_cache(models, tmp_path, monkeypatch):
    """black-forest-labs/FLUX.2-dev as a hub id, offline, from the Hugging Face cache: its
    tokenizer is read from the cached copy's tokenizer folder, as a folder's is."""
    from fakes import cache_on_hub

    cache_on_hub(tmp_path, "black-forest-labs/FLUX.2-dev", models["flux2-dev"], monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    out = runner.run(noise_photo(seed=1), _recipe(), 3, "black-forest-labs/FLUX.2-dev")
    loaded = runner.cache.get("black-forest-labs/FLUX.2-dev")
    assert loaded.ref.kind == "hub" and loaded.info.variant == "dev" and out.working_size == (160, 112)
    assert loaded.pipe.tokenizer.chat_template and type(loaded.pipe.tokenizer).__name__ != "PixtralProcessor"


def test_the_prompt_goes_through_mistral_once_a_shoot_and_no_negative_does(models, runner):
    """The prompt cache: one Mistral pass for a shoot's prompt and none for a negative ([dev]
    reads none); the cached conditioning gives the picture a fresh one gives."""
    loaded = runner.cache.get(models["flux2-dev"])
    encoded = []
    hook = loaded.pipe.text_encoder.register_forward_pre_hook(lambda module, args: encoded.append(1))
    recipe = _recipe(prompt="a photo of golden hour light")
    try:
        first = runner.run(noise_photo(seed=1), recipe, 1, models["flux2-dev"])
        runner.run(noise_photo(seed=2), recipe, 2, models["flux2-dev"])
        assert len(encoded) == 1
        loaded.conditioning.clear()
        again = runner.run(noise_photo(seed=1), recipe, 1, models["flux2-dev"])
    finally:
        hook.remove()
    assert np.array_equal(_pixels(first), _pixels(again))


def test_a_lora_in_either_naming_changes_it_and_comes_off_again(models, runner, tmp_path):
    """[dev] LoRAs, in diffusers' naming and as ai-toolkit and ComfyUI save them
    ("diffusion_model." keys): the same picture from both, and the plain one back without."""
    from diffusers import DiffusionPipeline
    from safetensors.torch import load_file, save_file

    from photobatch.plugins.diffusion.standin_addons import save_standin_lora

    lora = save_standin_lora(DiffusionPipeline.from_pretrained(models["flux2-dev"], tokenizer=None),
                             tmp_path / "l.safetensors")
    theirs = tmp_path / "ai-toolkit.safetensors"
    save_file({"diffusion_model." + key.removeprefix("transformer."): value
               for key, value in load_file(str(lora)).items()}, str(theirs))
    photo = noise_photo(seed=5)

    def run(*paths):
        return _pixels(runner.run(photo, _recipe(loras=[{"path": str(p), "weight": 0.8} for p in paths]),
                                  2, models["flux2-dev"]))

    plain, ours = run(), run(lora)
    assert np.abs(plain - ours).mean() > 0.1
    assert np.array_equal(ours, run(theirs))
    assert np.array_equal(plain, run())


def test_masked_work_leaves_every_pixel_outside_the_mask_as_it_was(models):
    from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
    from photobatch.plugins.diffusion.masks import paste_back

    inpaint = DiffusersInpaintRunner(device="cpu", native_size=128)
    photo = noise_photo(200, 120, seed=6)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (60, 30, 130, 90))
    out = inpaint.run(photo, _recipe(mask_blur=4, only_masked=True, mask_padding=16), 4,
                      models["flux2-dev"], mask=mask)
    left, top, right, bottom = out.region
    edited = np.asarray(paste_back(photo, out.image.resize((right - left, bottom - top)), out.mask, out.region))
    before, outside = np.asarray(photo), np.asarray(out.mask) == 0
    assert np.array_equal(before[outside], edited[outside])
    assert np.abs(before[~outside].astype(int) - edited[~outside]).mean() > 1


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_it_runs_in_the_gpus_precisions(models, precision):
    """What a GPU computes in, tried on the CPU: the pipeline made by class keeps the shared
    transformer and Mistral in 16 bits (from_pipe is given the dtype)."""
    half = DiffusersImg2ImgRunner(device="cpu", native_size=128, precision=precision)
    out = half.run(noise_photo(seed=1), _recipe(), 1, models["flux2-dev"])
    assert out.precision == precision and out.image.size == (160, 112)
    pipe = half.cache.get(models["flux2-dev"]).pipe
    want = {"bf16": "bfloat16", "fp16": "float16"}[precision]
    assert str(pipe.transformer.dtype).endswith(want) and str(pipe.text_encoder.dtype).endswith(want)


def test_its_memory_level_counts_its_32b_transformer_and_mistral(models):
    """[dev] needs far more than klein: on an 80 GB card it starts with model CPU offload, on a
    24 GB one with sequential offload, where klein on a 24 GB card needs no saving."""
    from photobatch.plugins.diffusion.memory import initial_level

    dev, klein = family_of_folder(models["flux2-dev"]), family_of_folder(models["flux2"])
    assert initial_level("cuda", dev, free_gib=78.0) == 2
    assert initial_level("cuda", dev, free_gib=24.0) == 3
    assert initial_level("cuda", dev, free_gib=141.0) == 0
    assert initial_level("cuda", klein, free_gib=24.0) == 0
    assert initial_level("cpu", dev, free_gib=1.0) == 0
