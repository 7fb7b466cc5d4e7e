"""ComfyUI's fp8 scaled checkpoints: each weight stored in float8 divided by a scale kept beside
it. diffusers alone reads the float8 numbers as the weights (the model then draws noise, with
no error); photobatch multiplies the scales back in, and refuses by name what it cannot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes import cli_shoot, last_run, noise_photo
from safetensors.torch import load_file, save_file

from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.schema import recipe_from_dict


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.standin import save_standin_model

    root = tmp_path_factory.mktemp("scaled")
    out = {}
    for kind in ("zimage", "flux2"):
        base = str(save_standin_model(root / kind, kind=kind))
        out[kind] = (base, DiffusionPipeline.from_pretrained(base).transformer)
    return out


def _scale(path, form: str, block: bool = False) -> dict:
    """Rewrite the checkpoint at ``path`` as ComfyUI stores it scaled: "first" (scaled_fp8
    marker, per-tensor X.scale_weight and X.scale_input) or "later" (per-output-channel
    X.weight_scale and X.input_scale); ``block``: block-wise scales, which photobatch does not
    read. Returns the weights the scales make (float8 times scale), to compare with."""
    tensors, out, whole = load_file(str(path)), {}, {}
    for key, value in tensors.items():
        if not (key.endswith(".weight") and value.ndim == 2 and value.shape[0] % 2 == 0):
            out[key] = value
            continue
        stem = key[:-len("weight")]
        if block:
            scale = value.abs().reshape(2, -1).amax(dim=1, keepdim=True).reshape(2, 1) / 448.0
            out[key] = (value / scale.repeat_interleave(value.shape[0] // 2, 0)).to(torch.float8_e4m3fn)
            out[stem + "weight_scale"] = scale
            continue
        per_channel = form == "later"
        scale = (value.abs().amax(dim=1) if per_channel else value.abs().max()) / 448.0
        stored = (value / (scale[:, None] if per_channel else scale)).to(torch.float8_e4m3fn)
        out[key] = stored
        if form == "first":
            out[stem + "scale_weight"] = scale.reshape(1)
            out[stem + "scale_input"] = torch.ones(1)
        else:
            out[stem + "weight_scale"] = scale
            out[stem + "input_scale"] = torch.ones(())
        whole[key] = stored.float() * (scale[:, None] if per_channel else scale)
    if form == "first":
        out["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    save_file(out, str(path))
    return whole


def _recipe(base):
    return recipe_from_dict({"name": "r", "prompt": "a photo", "strength": 0.5, "steps": 8, "cfg": 1.0,
                             "sampler": "Euler", "model_config": base})


@pytest.mark.parametrize("kind, form, prefix", [("zimage", "first", ""),
                                                ("flux2", "later", "model.diffusion_model.")])
def test_a_scaled_file_loads_with_its_weights_made_whole(models, tmp_path, kind, form, prefix):
    """Z-Image in ComfyUI's first form, per-tensor scales; FLUX.2 [klein] in its later one,
    per-channel scales, in ComfyUI's naming: each weight is the float8 number times its scale,
    exactly, where diffusers alone gave the float8 numbers (hundreds of times too large)."""
    from photobatch.plugins.diffusion.standin_flux2 import save_flux2_single_file
    from photobatch.plugins.diffusion.standin_zimage import save_zimage_single_file

    base, transformer = models[kind]
    save = save_zimage_single_file if kind == "zimage" else save_flux2_single_file
    single, made_whole = tmp_path / f"{kind}_fp8_scaled.safetensors", tmp_path / f"{kind}_whole.safetensors"
    save(transformer, single, prefix)
    save(transformer, made_whole, prefix)
    whole = _scale(single, form)
    assert len(whole) >= 4 and all(load_file(str(single))[k].dtype == torch.float8_e4m3fn for k in whole)
    # The same checkpoint with each weight already float8 times scale, as an ordinary file.
    save_file({**load_file(str(made_whole)), **whole}, str(made_whole))
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    out = runner.run(noise_photo(seed=1), _recipe(base), 3, str(single))
    assert out.image.size == (160, 112)
    got = runner.cache.get(str(single), base).pipe.transformer.state_dict()
    runner.run(noise_photo(seed=1), _recipe(base), 3, str(made_whole))
    expected = runner.cache.get(str(made_whole), base).pipe.transformer.state_dict()
    assert set(got) == set(expected) and all(torch.equal(got[k], expected[k]) for k in expected)
    # And within fp8's rounding of the model's own weights, none as stored.
    original = transformer.state_dict()
    worst = max((got[k] - original[k]).abs().max() / original[k].abs().max() for k in original
                if original[k].ndim == 2 and original[k].abs().max() > 0)
    assert worst < 0.07


def test_a_form_it_cannot_read_is_refused_before_any_photo(models, tmp_path):
    from photobatch.plugins.diffusion.standin_zimage import save_zimage_single_file

    base, transformer = models["zimage"]
    single = tmp_path / "z_image_blockwise.safetensors"
    save_zimage_single_file(transformer, single)
    _scale(single, "later", block=True)
    run, _ = cli_shoot(tmp_path, mine=f'extends = "color-correct"\nname = "mine"\nmodel_config = "{base}"\n')
    refused = run("mine", single)
    assert refused.exit_code == 1
    assert ("model z_image_blockwise.safetensors stores its weights quantised in a form photobatch "
            "cannot make whole again") in refused.output
    assert "use the model's bf16 or plain fp8 file" in refused.output
    assert not (tmp_path / "out").exists()


def test_a_scaled_sd_checkpoint_is_refused_by_name(standin_model, tmp_path):
    """SD 1.x/2.x/SDXL single files are read by diffusers from their path: a scaled one would
    run with its weights as stored, so it is refused before any photo."""
    from diffusers import AutoPipelineForImage2Image

    from photobatch.plugins.diffusion.standin_single_file import save_single_file

    single = save_single_file(AutoPipelineForImage2Image.from_pretrained(str(standin_model)),
                              tmp_path / "sd15_fp8_scaled.safetensors")
    tensors = load_file(str(single))
    tensors["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    save_file(tensors, str(single))
    run, _ = cli_shoot(tmp_path, mine=f'extends = "color-correct"\nname = "mine"\n'
                                      f'model_config = "{standin_model}"\n')
    refused = run("mine", single)
    assert refused.exit_code == 1
    assert ("model sd15_fp8_scaled.safetensors is an fp8 scaled SD 1.x checkpoint (ComfyUI's), "
            "whose weights diffusers would read without their scales") in refused.output


def test_the_scaled_file_runs_through_the_cli_and_is_recorded(models, tmp_path):
    from photobatch.plugins.diffusion.standin_zimage import save_zimage_single_file

    base, transformer = models["zimage"]
    single = tmp_path / "z_image_turbo_fp8_scaled.safetensors"
    save_zimage_single_file(transformer, single)
    _scale(single, "first")
    run, _ = cli_shoot(tmp_path, mine=f'extends = "color-correct"\nname = "mine"\nmodel_config = "{base}"\n')
    done = run("mine", single)
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["steps"] == 8  # Z-Image's table
    plain = tmp_path / "z_image_turbo.safetensors"
    save_zimage_single_file(transformer, plain)
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    scaled = np.asarray(runner.run(noise_photo(seed=2), _recipe(base), 5, str(single)).image, float)
    original = np.asarray(runner.run(noise_photo(seed=2), _recipe(base), 5, str(plain)).image, float)
    assert np.abs(scaled - original).mean() < 3  # fp8's rounding, not another picture
