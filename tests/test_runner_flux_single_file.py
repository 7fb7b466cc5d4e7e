"""FLUX.1 single files (flux1-dev.safetensors and the fine-tunes shared like it, Kontext's and
Fill's too): a transformer in BFL's layout, loaded with the base model named as model_config.

diffusers' FLUX.1 single-file converter assumes the real model's width (3072), so these files
hold a transformer that wide, one block deep of each kind (530M parameters, stored in bf16 as
BFL's are); the base folders are the tiny stand-ins with that transformer's config. Each run
takes seconds on a CPU; the files are built once for the module.
"""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fakes import cli_shoot, flow_recipe, last_run, noise_photo, same_weights, save_gguf
from PIL import Image

from photobatch.plugins.diffusion.families import FLUX, family_of_single_file
from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner


def _base_for(transformer, folder, kind):
    """A stand-in base folder (text encoders, VAE, scheduler) whose transformer is described by
    ``transformer``'s config: a real base folder's transformer weights are never read when a
    single file brings its own, so these hold the config alone."""
    from photobatch.plugins.diffusion.standin import save_standin_model

    base = save_standin_model(folder, kind=kind)
    shutil.rmtree(base / "transformer")
    (base / "transformer").mkdir()
    (base / "transformer" / "config.json").write_text(
        json.dumps({"_class_name": "FluxTransformer2DModel", **dict(transformer.config)}))
    return str(base)


@pytest.fixture(scope="module")
def flux_file(tmp_path_factory):
    """One FLUX.1 [dev]-layout file, and the [dev] and Kontext base folders it loads with."""
    import torch

    from photobatch.plugins.diffusion.standin_flow import build_wide_flux_transformer, save_flux_single_file

    root = tmp_path_factory.mktemp("flux-file")
    transformer = build_wide_flux_transformer(seed=3)
    single = root / "flux1-dev-finetune.safetensors"
    save_flux_single_file(transformer, single, dtype=torch.bfloat16)
    expected = _stored(transformer)
    bases = {kind: _base_for(transformer, root / kind, kind) for kind in ("flux", "flux-kontext")}
    _save_all_in_one_fp8(transformer, root / "flux1-dev-fp8.safetensors")
    del transformer
    save_gguf(single, root / "flux1-dev-Q8_0.gguf")
    return str(single), expected, bases


def _save_all_in_one_fp8(transformer, target):
    """The transformer as ComfyUI's fp8 checkpoints hold it: float8_e4m3fn weights named
    "model.diffusion_model.*", beside text encoder and VAE tensors (which are not read), and
    the float8 weights kept beside it to compare with."""
    import torch
    from safetensors.torch import load_file, save_file

    from photobatch.plugins.diffusion.standin_flow import save_flux_single_file

    save_flux_single_file(transformer, target, prefix="model.diffusion_model.", dtype=torch.float8_e4m3fn)
    tensors = load_file(str(target))
    tensors["text_encoders.clip_l.transformer.text_model.embeddings.token_embedding.weight"] = torch.zeros(8, 4)
    tensors["vae.decoder.conv_in.weight"] = torch.zeros(4, 4, 3, 3)
    save_file(tensors, str(target))
    torch.save({k: v.to(torch.float8_e4m3fn) for k, v in transformer.state_dict().items()},
               str(target) + ".expected")


@pytest.fixture()
def fresh():
    """Runners made through this hold a 2 GB model each: they are let go of after the test
    (the suite's other models share the machine's memory)."""
    made = []

    def make(kind=DiffusersImg2ImgRunner):
        made.append(kind(device="cpu", native_size=128))
        return made[-1]

    yield make
    made.clear()
    gc.collect()


def _stored(transformer) -> dict:
    """The weights as the file stores them (bf16: half the memory of a float32 copy)."""
    import torch

    return {k: v.to(torch.bfloat16) for k, v in transformer.state_dict().items()}


def _weights_are_the_files(pipe, expected) -> bool:
    import torch

    got = pipe.transformer.state_dict()
    # Loaded in float32 from bf16: every value exactly a stored one.
    return set(got) == set(expected) and all(
        got[k].to(torch.bfloat16).equal(expected[k]) and got[k].to(torch.bfloat16).float().equal(got[k])
        for k in expected)


def test_a_flux1_single_file_runs_with_its_base_model_as_model_config(flux_file, tmp_path, fresh):
    """Told from its header before any photo, run through the CLI: its transformer is the
    file's, bit for bit; the rest is the base folder's."""
    single, expected, bases = flux_file
    info = family_of_single_file(single)
    assert info.family is FLUX and info.variant is None and not info.inpainting
    # (At the smallest working size: a 3072-wide transformer at a megapixel takes minutes here.)
    run, _ = cli_shoot(tmp_path, tuned=f'name = "tuned"\nprompt = "a photo"\nstrength = 0.5\n'
                                        f'steps = 4\nsampler = "Euler"\ncfg = 3.5\nworking_size = 256\n'
                                        f'model_config = "{bases["flux"]}"\n')
    done = run("tuned", single)
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["model_config"] == bases["flux"]
    assert Image.open(tmp_path / "out" / "DSCF0001_tuned.jpg").size == (96, 64)
    gc.collect()  # the command's model
    runner = fresh()
    out = runner.run(noise_photo(seed=1), flow_recipe(model_config=bases["flux"]), 2, single)
    loaded = runner.cache.get(single, bases["flux"])
    assert type(loaded.pipe).__name__ == "FluxImg2ImgPipeline" and loaded.ref.kind == "single-file"
    assert _weights_are_the_files(loaded.pipe, expected)
    assert out.image.size == (160, 112) and out.family == "flux"


def test_the_same_file_with_a_kontext_base_runs_as_kontext(flux_file, fresh):
    """A Kontext fine-tune's file has [dev]'s layout: what it is comes from model_config, and it
    runs as Kontext runs (its inpainting pipeline, reading the photo beside the noise)."""
    single, expected, bases = flux_file
    runner = fresh()
    widths = []
    loaded = runner.cache.get(single, bases["flux-kontext"])
    assert type(loaded.pipe).__name__ == "FluxKontextPipeline" and loaded.info.kontext
    assert _weights_are_the_files(loaded.pipe, expected)
    pipe = runner.cache.task_pipe(loaded, "inpaint")
    hook = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["hidden_states"].shape[1]), with_kwargs=True)
    try:
        out = runner.run(noise_photo(seed=1), flow_recipe(model_config=bases["flux-kontext"], cfg=2.5),
                         2, single)
    finally:
        hook.remove()
    assert out.family == "kontext" and widths == [2 * 10 * 7] * 4  # the noise's tokens and the photo's


def test_a_fill_single_file_inpaints_and_is_told_from_other_flux_files(flux_file, tmp_path, fresh):
    """FLUX.1 Fill's transformer reads 384 inputs a token: told from the file's header, refused
    with a [dev] base (and a [dev] file with a Fill base) by name, run with its own base."""
    import torch

    from photobatch.plugins.diffusion.masks import paste_back
    from photobatch.plugins.diffusion.standin_flow import build_wide_flux_transformer, save_flux_single_file

    dev_file, _, bases = flux_file
    transformer = build_wide_flux_transformer(seed=4, fill=True)
    single = tmp_path / "flux1-fill-dev.safetensors"
    save_flux_single_file(transformer, single, dtype=torch.bfloat16)
    fill_base = _base_for(transformer, tmp_path / "fill-base", "flux-fill")
    expected = _stored(transformer)
    del transformer
    info = family_of_single_file(single)
    assert info.family is FLUX and info.variant == "fill" and info.inpainting
    run, _ = cli_shoot(tmp_path, dev=f'extends = "color-correct"\nname = "dev"\n'
                                     f'model_config = "{bases["flux"]}"\n',
                       fill=f'extends = "color-correct"\nname = "fill"\nmodel_config = "{fill_base}"\n')
    refused = run("dev", single)
    assert refused.exit_code == 1
    assert (f"model flux1-fill-dev.safetensors is a FLUX.1 Fill transformer, but model_config "
            f"{bases['flux']} is FLUX.1: give the FLUX.1 Fill model it was made from") in refused.output
    refused = run("fill", dev_file)
    assert refused.exit_code == 1
    assert "is a FLUX.1 transformer, but model_config" in refused.output
    assert "is FLUX.1 Fill: give the FLUX.1 model it was made from" in refused.output
    assert not (tmp_path / "out").exists()

    inpaint = fresh(DiffusersInpaintRunner)
    photo = noise_photo(160, 112, seed=6)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (40, 30, 120, 90))
    out = inpaint.run(photo, flow_recipe(model_config=fill_base, cfg=30.0), 4, str(single), mask=mask)
    loaded = inpaint.cache.get(str(single), fill_base)
    assert type(loaded.pipe).__name__ == "FluxFillPipeline" and loaded.info.variant == "fill"
    assert _weights_are_the_files(loaded.pipe, expected)
    left, top, right, bottom = out.region
    edited = np.asarray(paste_back(photo, out.image.resize((right - left, bottom - top)), out.mask, out.region))
    outside = np.asarray(out.mask) == 0
    assert np.array_equal(np.asarray(photo)[outside], edited[outside])


def test_an_fp8_all_in_one_file_loads_its_transformer(flux_file, fresh):
    """ComfyUI's fp8 FLUX.1 checkpoints (flux1-dev-fp8.safetensors): the transformer's float8
    weights, read into the precision the model runs in, exactly; the text encoder and VAE
    tensors beside them are left alone (the base's are used)."""
    import torch

    single, _, bases = flux_file
    fp8 = str(Path(single).with_name("flux1-dev-fp8.safetensors"))
    assert family_of_single_file(fp8).family is FLUX
    runner = fresh()
    out = runner.run(noise_photo(seed=1), flow_recipe(model_config=bases["flux"]), 2, fp8)
    assert out.image.size == (160, 112)
    got = runner.cache.get(fp8, bases["flux"]).pipe.transformer.state_dict()
    expected = torch.load(fp8 + ".expected")
    assert {t.dtype for t in got.values()} == {runner.cache.dtype}
    assert same_weights({k: t.float() for k, t in expected.items()}, got)


def test_a_flux1_gguf_runs_quantised(flux_file, fresh):
    """city96's FLUX.1 GGUFs (flux1-dev-Q8_0.gguf): the BFL-layout transformer's weights in
    Q8_0, kept so in memory; its picture is the bf16 file's within Q8_0's rounding."""
    single, _, bases = flux_file
    quantised = str(Path(single).with_name("flux1-dev-Q8_0.gguf"))
    assert family_of_single_file(quantised).family is FLUX
    runner = fresh()
    recipe = flow_recipe(model_config=bases["flux"])
    out = runner.run(noise_photo(seed=1), recipe, 2, quantised)
    transformer = runner.cache.get(quantised, bases["flux"]).pipe.transformer
    assert "GGUFParameter" in {type(p).__name__ for p in transformer.parameters()}
    full = runner.run(noise_photo(seed=1), recipe, 2, single)
    assert np.abs(np.asarray(out.image, float) - np.asarray(full.image, float)).mean() < 2
