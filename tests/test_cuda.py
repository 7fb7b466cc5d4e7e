"""The CUDA paths on a real GPU, with the tiny stand-in models: precision, batching, memory
levels, the out-of-memory retry, detail transfer on the GPU, torch.compile and the daemon.

Marked ``cuda`` and skipped where torch sees no CUDA device (every CI machine): run them on a
GPU machine with ``python -m pytest -m cuda`` (``bench/gpu_check.sh`` does, with the GPU
benchmarks).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import sqlite3

import numpy as np
import pytest
import torch
from PIL import Image

from photobatch.plugins.diffusion import memory
from photobatch.plugins.diffusion.cache import PipelineCache
from photobatch.plugins.diffusion.fullres import detail_transfer
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.schema import recipe_from_dict

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _photo(w, h, seed=0):
    """A smooth picture with some texture (what the VAE sees in a photo, not white noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([90 + 70 * xx / w, 80 + 90 * yy / h, 150 - 50 * xx / w], axis=-1) + 10 * seed
    return Image.fromarray(np.clip(base + rng.normal(0, 10, (h, w, 1)), 0, 255).astype(np.uint8))


def _arr(image):
    return np.asarray(image).astype(np.int16)


def _recipe(**extra):
    return recipe_from_dict({"name": "t", "prompt": "natural colours", "strength": 0.5, "steps": 4,
                             "cfg": 6.0, "sampler": "DPM++ 2M", **extra})


def _free_gpu():
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


def test_a_model_loads_on_the_gpu_in_half_precision_and_is_repeatable(standin_model):
    runner = DiffusersImg2ImgRunner(device="cuda", native_size=256)
    pipe, _ref, device, _hash = runner.pipeline(str(standin_model))
    assert device == "cuda" and pipe.unet.device.type == "cuda"
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert pipe.unet.dtype == expected and runner.precision in ("bf16", "fp16")
    first = runner.run(_photo(384, 256), _recipe(), 7, str(standin_model))
    again = runner.run(_photo(384, 256), _recipe(), 7, str(standin_model))
    other = runner.run(_photo(384, 256), _recipe(), 8, str(standin_model))
    assert first.image.size == first.working_size == (384, 256)
    assert first.device == "cuda" and first.precision == runner.precision
    assert np.abs(_arr(first.image) - _arr(again.image)).max() <= 1
    assert np.abs(_arr(first.image) - _arr(other.image)).max() > 1  # the seed matters


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_gpu_batches_equal_single_calls_within_one_level(standin_model, precision):
    runner = DiffusersImg2ImgRunner(device="cuda", native_size=256, precision=precision)
    recipe = dataclasses.replace(_recipe(), batch=4)
    images = [_photo(256, 256, seed=i) for i in range(4)] + [_photo(384, 256, seed=9)]
    seeds = [11, 12, 13, 14, 15]
    pipe = runner.pipeline(str(standin_model))[0]
    calls = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        batched = runner.run_batch(images, recipe, seeds, str(standin_model))
    finally:
        handle.remove()
    steps = recipe.denoising_steps
    # One call of 4 (x2 for classifier-free guidance) and one of the odd size, per step.
    assert sorted(calls) == sorted([8] * steps + [2] * steps)
    worst = 0
    for image, seed, out in zip(images, seeds, batched):
        single = runner.run(image, recipe, seed, str(standin_model))
        worst = max(worst, int(np.abs(_arr(out.image) - _arr(single.image)).max()))
    print(f"batched against single calls, {runner.precision}: at most {worst} levels apart")
    assert worst <= 1


def test_the_memory_level_follows_this_gpus_free_memory(standin_model):
    from photobatch.plugins.diffusion.families import family_of_folder

    free = memory.free_vram_gib("cuda")
    total = torch.cuda.get_device_properties(0).total_memory / 2**30
    assert 0 < free <= total
    info = family_of_folder(str(standin_model))
    assert memory.initial_level("cuda", info) == memory.level_for(free, info.family.name)
    _free_gpu()
    before = memory.free_vram_gib("cuda")  # the level counts what was free before the weights
    loaded = PipelineCache("cuda").get(str(standin_model))
    assert loaded.memory_level == memory.level_for(before, info.family.name)


def _peak_run(model, level, photo, recipe):
    """(output, peak bytes above what was allocated before) of one run at memory ``level``."""
    _free_gpu()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    runner = DiffusersImg2ImgRunner(device="cuda", native_size=max(photo.size), precision="fp32")
    loaded = runner.cache.get(model)
    loaded.memory_level = level
    memory.apply_level(loaded.pipe, level, "cuda")
    out = runner.run(photo, recipe, 3, model)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    del runner, loaded
    return out, peak


def test_out_of_memory_on_the_gpu_is_retried_at_a_lower_level(standin_model):
    """A real CUDA out-of-memory error (this process capped between the peaks of level 0 and
    level 1) is retried at level 1 and gives level 1's picture."""
    model = str(standin_model)
    photo = _photo(1536, 1536)  # the largest size whose VAE is not tiled at level 0
    recipe = _recipe(steps=2, strength=0.5)
    _, peak0 = _peak_run(model, 0, photo, recipe)
    expected, peak1 = _peak_run(model, 1, photo, recipe)
    print(f"peak memory of a 1536x1536 run: level 0 {peak0 / 2**20:.0f} MB, "
          f"level 1 {peak1 / 2**20:.0f} MB")
    assert peak1 < 0.75 * peak0, "level 1 saves too little to retry into"
    _free_gpu()
    runner = DiffusersImg2ImgRunner(device="cuda", native_size=1536, precision="fp32")
    loaded = runner.cache.get(model)  # the weights first: the cap is for the run
    torch.cuda.synchronize()
    cap = torch.cuda.memory_allocated() + peak1 + 0.5 * (peak0 - peak1)
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(cap / total)
    try:
        out = runner.run(photo, recipe, 3, model)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert loaded.memory_level == 1
    assert np.abs(_arr(out.image) - _arr(expected.image)).max() <= 1


def test_detail_transfer_on_the_gpu_equals_the_cpu():
    full = _photo(1200, 800, seed=1)
    before = full.resize((600, 400), Image.Resampling.LANCZOS)
    after = Image.fromarray(np.clip(_arr(before) * [1.1, 1.0, 0.9] + 8, 0, 255).astype(np.uint8))
    on_gpu = detail_transfer(full, before, after, device="cuda")
    on_cpu = detail_transfer(full, before, after, device="cpu")
    assert np.abs(_arr(on_gpu) - _arr(on_cpu)).max() <= 1
    raw16 = (np.asarray(full).astype(np.uint16) * 257)
    gpu16 = detail_transfer(raw16, before, after, device="cuda")
    cpu16 = detail_transfer(raw16, before, after, device="cpu")
    assert gpu16.dtype == np.uint16 and np.abs(gpu16.astype(int) - cpu16.astype(int)).max() <= 257


def test_torch_compile_opt_in_runs_on_the_gpu_and_matches_eager(standin_model):
    model = str(standin_model)
    eager = DiffusersImg2ImgRunner(device="cuda", native_size=256, precision="fp32")
    compiled = DiffusersImg2ImgRunner(device="cuda", native_size=256, precision="fp32",
                                      compile_unet=True)
    photo = _photo(256, 256)
    want = eager.run(photo, _recipe(), 5, model)
    got = compiled.run(photo, _recipe(), 5, model)
    again = compiled.run(photo, _recipe(), 5, model)  # the compiled graph replayed
    assert type(compiled.pipeline(model)[0].unet).__name__ == "OptimizedModule"
    assert np.abs(_arr(got.image) - _arr(want.image)).max() <= 2
    assert np.abs(_arr(again.image) - _arr(got.image)).max() <= 1


def test_the_daemon_on_the_gpu_batches_and_keeps_the_metadata(tmp_path, standin_model):
    """``photobatch watch --once`` on CUDA: the stages overlap the model (not inline), a recipe's
    photos share pipeline calls, every output is full size with the camera's EXIF."""
    import pyexiv2

    from photobatch.daemon.config import parse_config
    from photobatch.daemon.samples import write_sample_photo
    from photobatch.daemon.service import WatchService

    inbox, recipes, out = tmp_path / "in", tmp_path / "recipes", tmp_path / "out"
    inbox.mkdir()
    recipes.mkdir()
    (recipes / "gpu.toml").write_text('extends = "color-correct"\nname = "gpu"\nbatch = 4\n',
                                      encoding="utf-8")
    for i in range(6):
        write_sample_photo(inbox / f"P{i}.JPG", size=(640, 480), seed=i)
    config = parse_config({"recipe_dirs": [str(recipes)],
                           "defaults": {"model": str(standin_model), "device": "cuda"},
                           "watch": [{"path": str(inbox), "recipes": ["gpu"], "output": str(out),
                                      "quiet_seconds": 0}]}, source="test")
    assert WatchService(None, tmp_path / "c.db", once=True, config=config).run() == 0
    with sqlite3.connect(tmp_path / "c.db") as db:
        runs = db.execute("SELECT status, device, precision, timings FROM runs").fetchall()
    assert len(runs) == 6
    assert {(status, device) for status, device, _, _ in runs} == {("done", "cuda")}
    assert {precision for _, _, precision, _ in runs} <= {"bf16", "fp16"}
    assert all("run" in json.loads(timings) for *_, timings in runs)
    outputs = sorted(out.rglob("*.jpg"))
    assert len(outputs) == 6
    for path in outputs:
        with Image.open(path) as img:
            assert img.size == (640, 480)
        with pyexiv2.Image(str(path)) as img:
            assert img.read_exif()["Exif.Image.Make"] == "FUJIFILM"


@pytest.mark.parametrize("kind", ["flux", "sd3", "flux-kontext", "flux-fill", "zimage", "flux2-base",
                                  "flux2-dev", "qwenimage"])
def test_flow_models_run_on_the_gpu_and_batch_like_single_calls(tmp_path, kind):
    """FLUX.1, SD 3.x, FLUX.1 Kontext and Fill, Z-Image, FLUX.2 [klein] base and [dev],
    Qwen-Image (tiny, built in code; cfg 3.5, which distilled klein refuses) in the GPU's precision:
    seeds repeat, and a batch of four equals the four single calls within a level."""
    from photobatch.plugins.diffusion.standin import save_standin_model

    model = str(save_standin_model(tmp_path / kind, kind=kind))
    runner = DiffusersImg2ImgRunner(device="cuda", native_size=256)
    recipe = recipe_from_dict({"name": "t", "prompt": "natural colours", "strength": 0.5,
                               "steps": 4, "cfg": 3.5, "sampler": "Euler", "batch": 4})
    photos = [_photo(384, 256, seed) for seed in range(4)]
    singles = [runner.run(photo, recipe, 10 + i, model) for i, photo in enumerate(photos)]
    assert runner.cache.get(model).pipe.transformer.device.type == "cuda"
    assert singles[0].working_size == (320, 208)  # sides of 16 about 256² pixels
    batched = runner.run_batch(photos, recipe, [10, 11, 12, 13], model)
    for single, out in zip(singles, batched):
        assert np.abs(_arr(single.image) - _arr(out.image)).max() <= 1
    _free_gpu()


def test_a_gguf_transformer_runs_on_the_gpu_quantised(tmp_path):
    """city96's GGUFs on a GPU (what they are for: a model larger than the card): Z-Image's
    transformer in Q8_0 stays quantised on the GPU, its picture within Q8_0's rounding of the
    full file's in the GPU's precision."""
    from diffusers import DiffusionPipeline
    from fakes import save_gguf

    from photobatch.plugins.diffusion.standin import save_standin_model
    from photobatch.plugins.diffusion.standin_zimage import save_zimage_single_file

    base = str(save_standin_model(tmp_path / "zimage", kind="zimage"))
    single = tmp_path / "z.safetensors"
    save_zimage_single_file(DiffusionPipeline.from_pretrained(base).transformer, single)
    quantised = str(save_gguf(single, tmp_path / "z-Q8_0.gguf"))
    runner = DiffusersImg2ImgRunner(device="cuda", native_size=256)
    recipe = recipe_from_dict({"name": "t", "prompt": "natural colours", "strength": 0.5, "steps": 4,
                               "cfg": 1.0, "sampler": "Euler", "model_config": base})
    photo = _photo(384, 256)
    out = runner.run(photo, recipe, 3, quantised)
    transformer = runner.cache.get(quantised, base).pipe.transformer
    kinds = {type(p).__name__ for p in transformer.parameters()}
    assert transformer.device.type == "cuda" and "GGUFParameter" in kinds
    full = runner.run(photo, recipe, 3, str(single))
    difference = np.abs(_arr(out.image) - _arr(full.image))
    print(f"GGUF Q8_0 against the full file on the GPU ({runner.precision}): "
          f"{difference.mean():.2f} levels on average")
    assert difference.mean() < 2
    _free_gpu()


def test_qwen_image_edit_runs_on_the_gpu_and_batches_like_single_calls(tmp_path):
    """Qwen-Image-Edit (tiny, built in code) in the GPU's precision: its processor read without
    torchvision, the photo at the megapixel its pipeline works at, a batch of two equal to the
    two single calls within a level."""
    from photobatch.plugins.diffusion.standin import save_standin_model

    model = str(save_standin_model(tmp_path / "edit", kind="qwenimage-edit"))
    runner = DiffusersImg2ImgRunner(device="cuda")
    recipe = recipe_from_dict({"name": "t", "prompt": "Make it winter", "strength": 0.5, "steps": 4,
                               "cfg": 4.0, "sampler": "Euler", "batch": 2})
    photos = [_photo(384, 256, seed) for seed in range(2)]
    singles = [runner.run(photo, recipe, 10 + i, model) for i, photo in enumerate(photos)]
    assert runner.cache.get(model).pipe.transformer.device.type == "cuda"
    assert singles[0].working_size == (1248, 832)
    batched = runner.run_batch(photos, recipe, [10, 11], model)
    worst = max(int(np.abs(_arr(single.image) - _arr(out.image)).max()) for single, out in zip(singles, batched))
    print(f"Qwen-Image-Edit batched against single calls, {runner.precision}: at most {worst} levels apart")
    assert worst <= 1
    _free_gpu()


@pytest.mark.skipif(__import__("importlib").util.find_spec("bitsandbytes") is None,
                    reason="needs the bitsandbytes package (bench/gpu_wheels.sh --bnb carries it)")
def test_a_folder_saved_in_nf4_loads_and_runs_on_the_gpu(tmp_path, standin_model):
    import diffusers

    # Quantized on load and saved as diffusers saves it (quantization_config in the UNet's
    # config.json), then loaded back through photobatch's own loading code.
    unet = diffusers.UNet2DConditionModel.from_pretrained(
        standin_model, subfolder="unet", quantization_config=diffusers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16))
    pipe = diffusers.StableDiffusionImg2ImgPipeline.from_pretrained(standin_model, unet=unet)
    folder = tmp_path / "standin-nf4"
    pipe.save_pretrained(folder)
    assert json.loads((folder / "unet" / "config.json").read_text())[
        "quantization_config"]["bnb_4bit_quant_type"] == "nf4"
    del pipe, unet
    _free_gpu()
    runner = DiffusersImg2ImgRunner(device="cuda", native_size=256)
    first = runner.run(_photo(384, 256), _recipe(), 7, str(folder))
    again = runner.run(_photo(384, 256), _recipe(), 7, str(folder))
    assert first.image.size == first.working_size == (384, 256) and first.device == "cuda"
    assert np.abs(_arr(first.image) - _arr(again.image)).max() <= 1
    assert np.asarray(first.image).std() > 1  # a picture, not a flat or NaN-black one
