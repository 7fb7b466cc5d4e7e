"""GGUF transformers (city96's FLUX.1, SD 3.5, Qwen-Image, Z-Image files, as ComfyUI-GGUF reads them)
and SD 1.x/SDXL UNets: told from their tensor names, loaded by diffusers with their weights kept
quantised and made whole layer by layer as they compute, with the base model named as
model_config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import cli_shoot, last_run, noise_photo, save_gguf

from photobatch.plugins.diffusion.families import FLUX2, QWENIMAGE, SD3, ZIMAGE, family_of_single_file
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.schema import recipe_from_dict

def _diffusers_naming(transformer, target):
    """Qwen-Image's files (and city96's GGUFs of it) keep diffusers' own tensor names."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in transformer.state_dict().items()}, str(target))


def _saver(kind):
    from photobatch.plugins.diffusion.standin_flow import save_sd3_single_file
    from photobatch.plugins.diffusion.standin_flux2 import save_flux2_single_file
    from photobatch.plugins.diffusion.standin_zimage import save_zimage_single_file

    return {"zimage": save_zimage_single_file, "flux2": save_flux2_single_file,
            "qwenimage": _diffusers_naming, "sd3": save_sd3_single_file}[kind]


FAMILY = {"zimage": ZIMAGE, "flux2": FLUX2, "qwenimage": QWENIMAGE, "sd3": SD3}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """For each family: its base folder, its transformer as a .safetensors file in the layout
    its files are shared in, and the same as GGUF."""
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.standin import save_standin_model

    root, out = tmp_path_factory.mktemp("gguf"), {}
    for kind in FAMILY:
        base = str(save_standin_model(root / kind, kind=kind))
        single = root / f"{kind}.safetensors"
        _saver(kind)(DiffusionPipeline.from_pretrained(base).transformer, single)
        out[kind] = (base, str(single), str(save_gguf(single, root / f"{kind}-Q8_0.gguf")))
    return out


def _write_gguf(path, tensors: dict, arch: str = "sdxl", quant=None):
    """``tensors`` (name: float32 array) written as a GGUF file by gguf-py, each quantised to
    ``quant`` (a GGMLQuantizationType) when one is given."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch=arch)
    for name, values in tensors.items():
        if quant is None:
            writer.add_tensor(name, values)
        else:
            writer.add_tensor(name, gguf.quants.quantize(values, quant), raw_dtype=quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _fields(base) -> dict:
    return {"name": "r", "prompt": "a photo", "strength": 0.5, "steps": 8, "cfg": 1.0, "sampler": "Euler",
            "model_config": base}


def _recipe(base):
    return recipe_from_dict(_fields(base))


@pytest.mark.parametrize("kind", sorted(FAMILY))
def test_a_gguf_transformer_runs_quantised_and_draws_what_its_full_file_draws(files, kind):
    base, single, quantised = files[kind]
    assert family_of_single_file(quantised).family is FAMILY[kind]
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    photo = noise_photo(seed=3)
    out = runner.run(photo, _recipe(base), 4, quantised)
    loaded = runner.cache.get(quantised, base)
    assert loaded.ref.kind == "single-file" and loaded.info.family is FAMILY[kind]
    kinds = {type(p).__name__ for p in loaded.pipe.transformer.parameters()}
    assert "GGUFParameter" in kinds  # kept quantised, not made whole at load
    full = runner.run(photo, _recipe(base), 4, single)
    difference = np.abs(np.asarray(out.image, float) - np.asarray(full.image, float))
    assert difference.mean() < 2 and out.image.size == full.image.size  # Q8_0's rounding only


def test_a_gguf_runs_through_the_cli_and_a_foreign_one_is_refused_before_any_photo(files, tmp_path):
    base, single, quantised = files["zimage"]
    run, _ = cli_shoot(tmp_path, mine=f'extends = "color-correct"\nname = "mine"\nmodel_config = "{base}"\n')
    done = run("mine", quantised)
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["steps"] == 8  # Z-Image's table
    # A language model's GGUF, named like one.
    llm = _write_gguf(tmp_path / "qwen3-4b-Q8_0.gguf", {"blk.0.attn_q.weight": np.zeros((4, 32), np.float32)},
                      arch="qwen3")
    refused = run("mine", llm)
    assert refused.exit_code == 1
    assert "qwen3-4b-Q8_0.gguf is a GGUF file of no model photobatch reads as GGUF" in refused.output
    # A type diffusers' GGUF loader does not read (it would fail after reading every tensor).
    unread = save_gguf(single, tmp_path / "z-MXFP4.gguf", quant="MXFP4")
    refused = run("mine", unread)
    assert refused.exit_code == 1
    assert "z-MXFP4.gguf holds MXFP4 weights, which diffusers cannot read" in refused.output
    broken = tmp_path / "cut.gguf"
    broken.write_bytes(b"GGUF\x03\x00")
    refused = run("mine", broken)
    assert refused.exit_code == 1 and "cut.gguf is not a readable GGUF file" in refused.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["DSCF0001_mine.jpg"]  # the first run's only


@pytest.mark.parametrize("kind", ["zimage", "flux2"])
def test_a_lora_runs_on_a_gguf_model_and_comes_off_again(files, tmp_path, kind):
    """A LoRA on the quantised transformer (ComfyUI-GGUF users' usual set-up): it moves the
    picture as much as on the full model, and the next recipe without it gets the model's own
    picture back."""
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.standin_addons import save_standin_lora

    base, single, quantised = files[kind]
    lora = save_standin_lora(DiffusionPipeline.from_pretrained(base), tmp_path / "look.safetensors")
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    photo = noise_photo(seed=5)
    with_lora = recipe_from_dict({**_fields(base), "loras": [{"path": str(lora), "weight": 1.0}]})

    def picture(recipe, model):
        return np.asarray(runner.run(photo, recipe, 6, model).image, float)

    plain, styled = picture(_recipe(base), quantised), picture(with_lora, quantised)
    # The LoRA moves the quantised model's picture as it moves the full model's.
    full_plain, full_styled = picture(_recipe(base), single), picture(with_lora, single)
    moved, full_moved = np.abs(styled - plain).mean(), np.abs(full_styled - full_plain).mean()
    # (The tiny klein moves little for any LoRA: 0.2 levels; Z-Image about 10.)
    assert moved > 0.1 and abs(moved - full_moved) < 0.2 * full_moved
    assert np.abs(styled - full_styled).mean() < 2  # Q8_0's rounding
    assert np.array_equal(picture(_recipe(base), quantised), plain)


def test_coarser_quantisations_run_and_stray_as_far_as_their_bits(files, tmp_path):
    """city96 ships Q8_0 down to Q4 files: a Q5_1 and a Q4_0 file run as the Q8_0 one does, each
    further from the full file's picture as it keeps fewer bits."""
    base, single, q8 = files["zimage"]
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    photo = noise_photo(seed=3)

    def picture(model):
        return np.asarray(runner.run(photo, _recipe(base), 4, str(model)).image, float)

    full = picture(single)
    off = {quant: np.abs(picture(save_gguf(single, tmp_path / f"z-{quant}.gguf", quant=quant)) - full).mean()
           for quant in ("Q5_1", "Q4_0")}
    off["Q8_0"] = np.abs(picture(q8) - full).mean()
    # (Measured: 0.8, 1.7 and 3.3 levels on the stand-in's random weights.)
    assert 0 < off["Q8_0"] < off["Q5_1"] < off["Q4_0"] < 6


@pytest.mark.parametrize("inputs, variant", [(64, None), (384, "fill")])
def test_a_flux1_fill_gguf_is_told_from_its_quantised_input_layer(tmp_path, inputs, variant):
    """city96's flux1-fill-dev GGUFs: Fill reads 384 inputs a token, [dev] 64; the GGUF's
    tensor shapes say which, read from its header (the weights quantised)."""
    import gguf

    tensors = {name: np.random.default_rng(0).standard_normal(shape).astype(np.float32) for name, shape in (
        ("img_in.weight", (3072, inputs)), ("double_blocks.0.img_attn.qkv.weight", (96, 32)))}
    path = _write_gguf(tmp_path / "flux1-x-Q8_0.gguf", tensors, arch="flux", quant=gguf.GGMLQuantizationType.Q8_0)
    info = family_of_single_file(path)
    assert info.family.name == "flux" and info.variant == variant and info.inpainting == (variant == "fill")


@pytest.fixture(scope="module")
def unets(tmp_path_factory):
    """For SD 1.x and SDXL: the base folder, and its UNet alone as a Q8_0 GGUF in the original
    layout, as ComfyUI-GGUF's files hold it (SD 1.x's also without the model prefix)."""
    from diffusers import DiffusionPipeline
    from safetensors.torch import save_file

    from photobatch.plugins.diffusion.standin import save_standin_model
    from photobatch.plugins.diffusion.standin_single_file import convert_unet

    root, out = tmp_path_factory.mktemp("unet-gguf"), {}
    for kind, prefix in (("sd1", "model.diffusion_model."), ("sd1-bare", ""), ("sdxl", "model.diffusion_model.")):
        family = kind.split("-")[0]
        base = str(save_standin_model(root / family, kind=family))
        unet = DiffusionPipeline.from_pretrained(base).unet
        single = root / f"{kind}-unet.safetensors"
        save_file({prefix + k: v.contiguous() for k, v in convert_unet(unet.state_dict(), unet.config).items()},
                  str(single))
        out[kind] = (base, str(save_gguf(single, root / f"{kind}-unet-Q8_0.gguf", arch=family)))
    return out


@pytest.mark.parametrize("kind", ["sd1", "sd1-bare", "sdxl"])
def test_an_sd_unet_gguf_runs_quantised_with_its_base(unets, kind):
    """An SD 1.x or SDXL UNet as GGUF (with or without its model prefix): told from its tensor
    names (SDXL by its size conditioning), kept quantised, its picture the base model's within
    Q8_0's rounding; a LoRA moves it as it moves the base's and comes off again."""
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.standin_addons import save_standin_lora

    base, quantised = unets[kind]
    family = kind.split("-")[0]
    assert family_of_single_file(quantised).family.name == family
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=64)
    fields = {"name": "r", "prompt": "a photo", "strength": 0.5, "steps": 8, "sampler": "Euler",
              "model_config": base}
    lora = save_standin_lora(DiffusionPipeline.from_pretrained(base), Path(quantised).with_suffix(".lora.safetensors"))
    styled_fields = {**fields, "loras": [{"path": str(lora), "weight": 1.0}]}

    def picture(recipe_fields, model):
        return np.asarray(runner.run(noise_photo(seed=1), recipe_from_dict(recipe_fields), 3, model).image, float)

    plain, full = picture(fields, quantised), picture(fields, base)
    loaded = runner.cache.get(quantised, base)
    assert "GGUFParameter" in {type(p).__name__ for p in loaded.pipe.unet.parameters()}
    assert loaded.info.family.name == family and loaded.ref.kind == "single-file"
    assert 0 < np.abs(plain - full).mean() < 2  # Q8_0's rounding (measured: 1.1-1.3 levels)
    styled, full_styled = picture(styled_fields, quantised), picture(styled_fields, base)
    moved, full_moved = np.abs(styled - plain).mean(), np.abs(full_styled - full).mean()
    assert moved > 1 and abs(moved - full_moved) < 0.2 * full_moved
    assert np.array_equal(picture(fields, quantised), plain)


def test_an_sd_unet_gguf_needs_a_base_of_its_family_before_any_photo(unets, tmp_path):
    _, quantised = unets["sd1"]
    sdxl_base, _ = unets["sdxl"]
    run, _ = cli_shoot(tmp_path, bare='extends = "color-correct"\nname = "bare"\n',
                       wrong=f'extends = "color-correct"\nname = "wrong"\nmodel_config = "{sdxl_base}"\n')
    refused = run("bare", quantised)
    assert refused.exit_code == 1
    assert ("sd1-unet-Q8_0.gguf: a SD 1.x single file holds its UNet; give the SD 1.x model it was "
            "made from as model_config") in refused.output
    refused = run("wrong", quantised)
    assert refused.exit_code == 1
    assert f"sd1-unet-Q8_0.gguf is a SD 1.x UNet, but model_config {sdxl_base} is SDXL" in refused.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("names, family, inpainting", [
    ({"label_emb.0.0.weight": (1280, 256)}, "sdxl", False),
    ({"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024)}, "sd2", False),
    ({"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768)}, "sd1", False),
    ({"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768)}, "sd1", True),
])
def test_an_sd_unet_gguf_is_told_by_its_conditioning(tmp_path, names, family, inpainting):
    """A UNet alone has no text encoders to tell SD 1.x, 2.x and SDXL apart: SDXL's has its
    size conditioning (label_emb), SD 2.x's cross-attention reads 1024-wide text states, SD
    1.x's 768; a 9-channel first layer is an inpainting UNet."""
    tensors = {f"model.diffusion_model.{name}": np.zeros(shape, np.float32) for name, shape in names.items()}
    tensors["model.diffusion_model.input_blocks.0.0.weight"] = np.zeros((320, 9 if inpainting else 4, 3, 3),
                                                                        np.float32)
    info = family_of_single_file(_write_gguf(tmp_path / "unet.gguf", tensors))
    assert info.family.name == family and info.inpainting == inpainting


def test_an_inpainting_unet_gguf_inpaints_with_its_base_and_not_with_a_plain_one(tmp_path):
    """A 9-channel SD UNet as GGUF (an inpainting fine-tune's) runs in the inpainting pipeline
    of its base, its picture within Q8_0's rounding of the base's; with a plain base it is
    refused by name."""
    from diffusers import DiffusionPipeline
    from PIL import Image
    from safetensors.torch import save_file

    from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
    from photobatch.plugins.diffusion.sources import ModelError
    from photobatch.plugins.diffusion.standin import save_standin_model
    from photobatch.plugins.diffusion.standin_single_file import convert_unet

    base = str(save_standin_model(tmp_path / "inpainting", kind="sd1-inpaint"))
    unet = DiffusionPipeline.from_pretrained(base).unet
    single = tmp_path / "unet.safetensors"
    save_file({"model.diffusion_model." + k: v.contiguous()
               for k, v in convert_unet(unet.state_dict(), unet.config).items()}, str(single))
    quantised = str(save_gguf(single, tmp_path / "inpainting-Q8_0.gguf", arch="sd1"))
    assert family_of_single_file(quantised).label == "SD 1.x (inpainting)"
    photo = noise_photo(seed=1)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (10, 10, 40, 40))
    recipe = recipe_from_dict({**_fields(base), "sampler": "Euler"})
    runner = DiffusersInpaintRunner(device="cpu", native_size=64)
    out, full = (runner.run(photo, recipe, 3, model, mask=mask) for model in (quantised, base))
    assert type(runner.cache.get(quantised, base).pipe).__name__ == "StableDiffusionInpaintPipeline"
    assert np.abs(np.asarray(out.image, float) - np.asarray(full.image, float)).mean() < 2
    plain = str(save_standin_model(tmp_path / "plain"))
    with pytest.raises(ModelError, match=f"is an inpainting SD 1.x UNet, but model_config {plain} is SD 1.x"):
        DiffusersImg2ImgRunner(device="cpu", native_size=64).run(photo, _recipe(plain), 3, quantised)
