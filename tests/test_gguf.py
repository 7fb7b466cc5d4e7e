"""GGUF transformers (city96's FLUX.1, SD 3.5, Qwen-Image, Z-Image files, as ComfyUI-GGUF reads them):
told from their tensor names, loaded by diffusers with their weights kept quantised and made
whole layer by layer as they compute, with the base model named as model_config."""

from __future__ import annotations

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
    import gguf

    base, single, quantised = files["zimage"]
    run, _ = cli_shoot(tmp_path, mine=f'extends = "color-correct"\nname = "mine"\nmodel_config = "{base}"\n')
    done = run("mine", quantised)
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["steps"] == 8  # Z-Image's table
    llm = tmp_path / "qwen3-4b-Q8_0.gguf"  # a language model's GGUF, named like one
    writer = gguf.GGUFWriter(str(llm), arch="qwen3")
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((4, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
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

    path = tmp_path / "flux1-x-Q8_0.gguf"
    writer = gguf.GGUFWriter(str(path), arch="flux")
    q8 = gguf.GGMLQuantizationType.Q8_0
    for name, shape in (("img_in.weight", (3072, inputs)), ("double_blocks.0.img_attn.qkv.weight", (96, 32))):
        values = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        writer.add_tensor(name, gguf.quants.quantize(values, q8), raw_dtype=q8)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = family_of_single_file(path)
    assert info.family.name == "flux" and info.variant == variant and info.inpainting == (variant == "fill")


def test_an_sdxl_unet_gguf_is_refused_by_what_it_is(tmp_path):
    """ComfyUI-GGUF also reads SD UNets as GGUF (city96's SDXL conversions, names as in the
    UNet's original layout): photobatch says what the file is and what it reads instead."""
    import gguf

    path = tmp_path / "juggernautXL-Q8_0.gguf"
    writer = gguf.GGUFWriter(str(path), arch="sdxl")
    writer.add_tensor("input_blocks.0.0.weight", np.zeros((320, 4, 3, 3), np.float32))
    writer.add_tensor("time_embed.0.weight", np.zeros((1280, 320), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match=r"juggernautXL-Q8_0.gguf is a Stable Diffusion UNet \(SD 1.x, 2.x "
                                         r"or SDXL\) as GGUF; photobatch reads these models from their "
                                         r"\.safetensors checkpoints"):
        family_of_single_file(path)
