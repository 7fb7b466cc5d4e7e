"""Model sources and sharing: single-file checkpoints, family detection, the pipeline cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from photobatch.plugins.diffusion.cache import PipelineCache
from photobatch.plugins.diffusion.families import family_of_folder, family_of_single_file
from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
from photobatch.plugins.diffusion.loading import load_pipeline
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.sources import ModelError, model_hash, resolve_model
from photobatch.recipes.schema import recipe_from_dict


def _photo(w=64, h=64, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def single_file(standin_model, tmp_path_factory):
    from diffusers import AutoPipelineForImage2Image

    from photobatch.plugins.diffusion.standin_single_file import save_single_file

    pipe = AutoPipelineForImage2Image.from_pretrained(str(standin_model))
    return save_single_file(pipe, tmp_path_factory.mktemp("single") / "tiny-sd15.safetensors")


def test_single_file_with_a_local_config_loads_the_same_weights(standin_model, single_file):
    ref = resolve_model(str(single_file), config=str(standin_model))
    assert ref.kind == "single-file" and ref.config == str(standin_model.resolve())
    assert family_of_single_file(single_file).family.name == "sd1"
    pipe, info = load_pipeline(ref, "cpu", torch.float32)
    assert type(pipe).__name__ == "StableDiffusionImg2ImgPipeline" and info.native == 512
    folder_pipe, _ = load_pipeline(resolve_model(str(standin_model)), "cpu", torch.float32)
    for name in ("unet", "vae", "text_encoder"):
        mine, theirs = getattr(pipe, name).state_dict(), getattr(folder_pipe, name).state_dict()
        assert set(mine) == set(theirs), name
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), name
    # Through the runner, a recipe's model_config does the same; the outputs are identical.
    recipe = recipe_from_dict({"name": "s", "strength": 0.5, "steps": 4, "sampler": "Euler",
                               "model_config": str(standin_model)})
    runner = DiffusersImg2ImgRunner(native_size=64)
    a = runner.run(_photo(), recipe, 5, str(single_file))
    b = runner.run(_photo(), recipe, 5, str(standin_model))
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.model_hash and a.model_hash != b.model_hash


def test_an_fp8_single_file_reads_as_the_values_it_holds(standin_model, single_file, tmp_path):
    """A1111/Forge users' fp8 checkpoints (the UNet's weights stored as float8_e4m3fn, the rest
    as they were): loaded as exactly the float8 values, the picture the one an fp32 file of the
    same values gives, a little off the full-precision file's."""
    from safetensors.torch import load_file, save_file

    stored = load_file(str(single_file))
    unet = {k for k, v in stored.items() if k.startswith("model.diffusion_model.") and v.dim() >= 2}
    fp8, rounded = tmp_path / "tiny-sd15-fp8.safetensors", tmp_path / "tiny-sd15-rounded.safetensors"
    save_file({k: v.to(torch.float8_e4m3fn) if k in unet else v for k, v in stored.items()}, str(fp8))
    save_file({k: v.to(torch.float8_e4m3fn).float() if k in unet else v for k, v in stored.items()},
              str(rounded))
    recipe = recipe_from_dict({"name": "s", "strength": 0.5, "steps": 4, "sampler": "Euler",
                               "model_config": str(standin_model)})
    runner = DiffusersImg2ImgRunner(native_size=64, precision="fp32")
    pictures = {name: np.asarray(runner.run(_photo(), recipe, 5, str(path)).image, float)
                for name, path in (("fp8", fp8), ("rounded", rounded), ("full", single_file))}
    mine = runner.cache.get(str(fp8), str(standin_model)).pipe.unet.state_dict()
    theirs = runner.cache.get(str(rounded), str(standin_model)).pipe.unet.state_dict()
    assert all(mine[k].dtype == torch.float32 and torch.equal(mine[k], theirs[k]) for k in theirs)
    assert np.array_equal(pictures["fp8"], pictures["rounded"])
    assert 0 < np.abs(pictures["fp8"] - pictures["full"]).mean() < 8  # float8's rounding


def test_the_base_a_single_file_ran_with_is_recorded(standin_model, single_file, tmp_path, monkeypatch):
    """A single file's text encoders and VAE come from its base (model_config): the catalog and
    the output's XMP record say which, also when PHOTOBATCH_MODEL_CONFIG chose it and the
    recipe does not; a folder's runs record none."""
    import sqlite3

    from fakes import cli_shoot

    from photobatch.plugins.metadata import read_record

    run, cli = cli_shoot(tmp_path, quick='extends = "color-correct"\nname = "quick"\nsteps = 5\n')
    monkeypatch.setenv("PHOTOBATCH_MODEL_CONFIG", str(standin_model))
    assert run("quick", single_file).exit_code == 0
    output = tmp_path / "out" / "DSCF0001_quick.jpg"
    from_file = read_record(output)
    monkeypatch.delenv("PHOTOBATCH_MODEL_CONFIG")
    shown = cli("catalog", "show", tmp_path / "shoot" / "DSCF0001.JPG").output
    assert run("quick", standin_model, "--force").exit_code == 0
    with sqlite3.connect(tmp_path / "c.db") as db:
        (file_id, file_base), (folder_id, folder_base) = db.execute(
            "SELECT model_id, model_config FROM runs ORDER BY id").fetchall()
    assert file_id == str(single_file) and file_base == str(standin_model.resolve())
    assert folder_id == str(standin_model.resolve()) and folder_base is None
    assert from_file["ModelConfig"] == file_base and f"model_config       {file_base}" in shown
    assert "ModelConfig" not in read_record(output)  # the folder's run wrote it again


def test_a_single_file_run_is_stale_once_its_base_changes(standin_model, single_file, tmp_path, monkeypatch):
    """The same file read with another base's text encoders and VAE makes another picture: its
    outputs are stale ("base model changed"), as Lightroom flags edited photos for re-publish."""
    import shutil

    from fakes import cli_shoot

    run, cli = cli_shoot(tmp_path, quick='extends = "color-correct"\nname = "quick"\nsteps = 5\n')
    monkeypatch.setenv("PHOTOBATCH_MODEL_CONFIG", str(standin_model))
    assert run("quick", single_file).exit_code == 0
    plan = cli("rerun", "--stale", "--model", single_file, "--dry-run").output
    assert "nothing to re-run" in plan
    other = shutil.copytree(standin_model, tmp_path / "other-base")
    monkeypatch.setenv("PHOTOBATCH_MODEL_CONFIG", str(other))
    plan = cli("rerun", "--stale", "--model", single_file, "--dry-run").output
    assert "stale: base model changed" in plan and "DSCF0001.JPG" in plan


def test_single_file_offline_without_config_says_what_to_do(single_file, monkeypatch):
    monkeypatch.delenv("PHOTOBATCH_MODEL_CONFIG", raising=False)
    with pytest.raises(ModelError, match="needs its configs; offline mode is on"):
        load_pipeline(resolve_model(str(single_file)), "cpu", torch.float32)


def test_families_are_detected_from_checkpoint_keys(tmp_path):
    from safetensors.torch import save_file

    def checkpoint(name, keys, in_channels=4):
        tensors = {k: torch.zeros(1) for k in keys}
        tensors["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(8, in_channels, 3, 3)
        path = tmp_path / name
        save_file(tensors, str(path))
        return path

    sdxl = checkpoint("xl.safetensors", ["conditioner.embedders.1.model.positional_embedding"])
    sd2 = checkpoint("v2.safetensors", ["cond_stage_model.model.token_embedding.weight"])
    sd1 = checkpoint("v1-inpaint.safetensors",
                     ["cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"], 9)
    assert (family_of_single_file(sdxl).family.name, family_of_single_file(sdxl).native) == ("sdxl", 1024)
    assert (family_of_single_file(sd2).family.name, family_of_single_file(sd2).native) == ("sd2", 768)
    info = family_of_single_file(sd1)
    assert info.family.name == "sd1" and info.inpainting and info.native == 512
    with pytest.raises(ValueError, match="does not look like a Stable Diffusion"):
        family_of_single_file(checkpoint("other.safetensors", ["something.else"]))


def test_families_are_detected_from_folders(standin_model, tmp_path):
    assert family_of_folder(standin_model).family.name == "sd1"
    fake = tmp_path / "sd2"
    (fake / "unet").mkdir(parents=True)
    (fake / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (fake / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 1024, "sample_size": 96}))
    info = family_of_folder(fake)
    assert info.family.name == "sd2" and info.native == 768


def test_nine_channel_models_load_as_inpainting_and_still_do_img2img(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    folder = save_standin_model(tmp_path_factory.mktemp("m") / "inpaint", kind="sd1-inpaint")
    runner = DiffusersImg2ImgRunner(native_size=64)
    pipe = runner.pipeline(str(folder))[0]
    assert type(pipe).__name__ == "StableDiffusionInpaintPipeline" and pipe.unet.config.in_channels == 9
    recipe = recipe_from_dict({"name": "s", "strength": 0.5, "steps": 4, "sampler": "Euler"})
    out = runner.run(_photo(96, 64), recipe, 1, str(folder))
    assert out.image.size == out.working_size == (80, 64)


def test_an_lcm_distilled_model_runs_through_the_sd_pipeline_with_its_guidance_embedding(tmp_path):
    import json

    from photobatch.plugins.diffusion.standin import save_standin_model

    folder = save_standin_model(tmp_path / "lcm", kind="sd1-lcm")
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == \
        "LatentConsistencyModelPipeline"
    runner = DiffusersImg2ImgRunner(native_size=64)
    pipe = runner.pipeline(str(folder))[0]
    assert type(pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    seen = []
    handle = pipe.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((args[0].shape[0], kwargs.get("timestep_cond"))),
        with_kwargs=True)
    try:
        recipe = recipe_from_dict({"name": "l", "prompt": "a photo", "negative_prompt": "blur",
                                   "strength": 0.5, "steps": 8, "cfg": 1.5, "sampler": "LCM"})
        out = runner.run(_photo(96, 64), recipe, 1, str(folder))
    finally:
        handle.remove()
    # int(8 x 0.5) = 4 steps, no CFG batch (the guidance is an embedding the UNet reads).
    assert [batch for batch, _ in seen] == [1, 1, 1, 1]
    assert all(cond is not None and cond.shape == (1, 32) for _, cond in seen)
    assert out.image.size == (80, 64)
    # In half precision it stays there: diffusers' from_pipe for a class casts to float32 unless
    # given the dtype.
    import torch

    half = DiffusersImg2ImgRunner(native_size=64, precision="bf16").pipeline(str(folder))[0]
    assert half.unet.dtype == half.vae.dtype == half.text_encoder.dtype == torch.bfloat16


def test_one_model_is_loaded_once_and_shared_across_tasks(standin_model, monkeypatch):
    import photobatch.plugins.diffusion.cache as cache_module

    loads = []
    real = cache_module.load_pipeline
    monkeypatch.setattr(cache_module, "load_pipeline", lambda *a: loads.append(a) or real(*a))
    cache = PipelineCache()
    img2img = DiffusersImg2ImgRunner(native_size=64, cache=cache)
    inpaint = DiffusersInpaintRunner(native_size=64, cache=cache)
    a = recipe_from_dict({"name": "a", "strength": 0.5, "steps": 4, "sampler": "Euler"})
    b = recipe_from_dict({"name": "b", "strength": 0.3, "steps": 10, "sampler": "DDIM", "prompt": "warm"})
    img2img.run(_photo(), a, 1, str(standin_model))
    img2img.run(_photo(), b, 1, str(standin_model))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 40, 40))
    inpaint.run(_photo(), a, 1, str(standin_model), mask=mask)
    assert len(loads) == 1
    loaded = cache.get(str(standin_model))
    inpaint_pipe = loaded.task_pipes[("inpaint", None, None)]
    assert type(inpaint_pipe).__name__ == "StableDiffusionInpaintPipeline"
    # from_pipe shares the weights: the very same UNet and VAE objects.
    assert inpaint_pipe.unet is loaded.pipe.unet and inpaint_pipe.vae is loaded.pipe.vae


def test_model_hash_changes_with_the_weights(standin_model, single_file, tmp_path):
    ref = resolve_model(str(single_file))
    first = model_hash(ref)
    copy = tmp_path / "copy.safetensors"
    data = bytearray(single_file.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert model_hash(resolve_model(str(copy))) != first
    assert model_hash(resolve_model(str(standin_model))) != first


def test_a_folders_safety_checker_is_never_loaded(tmp_path, monkeypatch):
    """SD 1.x/2.x folders ship a safety checker (a CLIP vision model, 1.2 GB in fp32 for the real
    ones): it judges generated content, never runs on a photographer's photos, and so is not
    even loaded."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    from photobatch.plugins.diffusion.standin import build_standin_pipeline

    small = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    checker = StableDiffusionSafetyChecker(CLIPConfig(
        text_config=dict(small, vocab_size=99),
        vision_config=dict(small, image_size=32, patch_size=4), projection_dim=32))
    base = build_standin_pipeline()
    pipe = type(base)(**{**base.components, "safety_checker": checker,
                         "feature_extractor": CLIPImageProcessor(size=32, crop_size=32)},
                      requires_safety_checker=True)
    folder = tmp_path / "with-checker"
    pipe.save_pretrained(str(folder), safe_serialization=True)
    assert json.loads((folder / "model_index.json").read_text())["safety_checker"][1] == \
        "StableDiffusionSafetyChecker"

    built = []
    real_init = StableDiffusionSafetyChecker.__init__
    monkeypatch.setattr(StableDiffusionSafetyChecker, "__init__",
                        lambda self, *a, **k: built.append(1) or real_init(self, *a, **k))
    loaded, _ = load_pipeline(resolve_model(str(folder)), "cpu", torch.float32)
    assert built == [] and loaded.safety_checker is None
    runner = DiffusersImg2ImgRunner(native_size=64)
    recipe = recipe_from_dict({"name": "s", "strength": 0.5, "steps": 4, "sampler": "Euler"})
    out = runner.run(_photo(), recipe, 1, str(folder))
    assert out.image.size == (64, 64) and built == []
