"""Memory and speed knobs: levels from free VRAM, OOM retry, VAE tiling, compile opt-in."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from photobatch.plugins.diffusion import memory
from photobatch.plugins.diffusion.cache import PipelineCache
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.schema import recipe_from_dict


class FakePipe:
    """Records the memory calls a pipeline receives."""

    def __init__(self):
        self.calls = []
        self.vae = SimpleNamespace(enable_tiling=lambda: self.calls.append("tile"),
                                   disable_tiling=lambda: self.calls.append("untile"),
                                   enable_slicing=lambda: self.calls.append("vae-slice"))

    def enable_attention_slicing(self):
        self.calls.append("slice")

    def enable_model_cpu_offload(self, device=None):
        self.calls.append("offload")

    def enable_sequential_cpu_offload(self, device=None):
        self.calls.append("sequential")


def _loaded(device="cuda", level=0):
    return SimpleNamespace(device=device, memory_level=level, ref=SimpleNamespace(model_id="m"))


@pytest.mark.parametrize("free, family, level", [
    (None, "sdxl", 0), (40.0, "sdxl", 0), (8.0, "sdxl", 1), (5.0, "sdxl", 2), (2.0, "sdxl", 3),
    (6.0, "sd1", 0), (3.5, "sd1", 1), (1.0, "sd1", 3),
])
def test_memory_level_follows_free_vram(free, family, level):
    assert memory.level_for(free, family) == level


def test_the_cpu_never_gets_memory_savings_or_offload():
    pipe = FakePipe()
    for level in range(4):
        memory.apply_level(pipe, level, "cpu")
    assert pipe.calls == []
    # CUDA: the VAE tiled and sliced, attention left to SDPA (slicing it costs memory there).
    memory.apply_level(pipe, 2, "cuda")
    assert pipe.calls == ["tile", "vae-slice", "offload"]
    pipe.calls.clear()
    memory.apply_level(pipe, 1, "mps")  # what diffusers advises on Macs
    assert pipe.calls == ["tile", "vae-slice", "slice"]


def test_out_of_memory_retries_one_level_lower_until_it_fits():
    pipe, loaded, attempts = FakePipe(), _loaded(), []

    def call():
        attempts.append(loaded.memory_level)
        if loaded.memory_level < 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return "images"

    assert memory.call_with_oom_retry(call, loaded, [pipe]) == "images"
    assert attempts == [0, 1, 2] and loaded.memory_level == 2
    # The retried file's own call gets the tiled VAE too, not only the next file's.
    assert pipe.calls == ["tile", "vae-slice", "tile", "vae-slice", "offload"]


def test_out_of_memory_at_the_last_level_or_other_errors_are_raised():
    loaded = _loaded(level=memory.MAX_LEVEL)

    def oom():
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        memory.call_with_oom_retry(oom, loaded, [FakePipe()])

    def broken():
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        memory.call_with_oom_retry(broken, _loaded(), [FakePipe()])


def test_vae_tiling_only_for_large_inputs_or_under_pressure():
    pipe = FakePipe()
    assert memory.set_vae_tiling(pipe, 1024, 1024) is False
    assert memory.set_vae_tiling(pipe, 2048, 2048) is True
    assert memory.set_vae_tiling(pipe, 512, 512, level=1) is True
    assert pipe.calls == ["untile", "tile", "tile"]


def test_a_large_input_runs_with_a_tiled_vae(standin_model, monkeypatch):
    monkeypatch.setattr(memory, "VAE_TILING_PIXELS", 100 * 100)
    runner = DiffusersImg2ImgRunner(native_size=128)
    recipe = recipe_from_dict({"name": "s", "strength": 0.5, "steps": 2, "sampler": "Euler"})
    pipe = runner.pipeline(str(standin_model))[0]
    out = runner.run(Image.new("RGB", (128, 128), (120, 90, 60)), recipe, 1, str(standin_model))
    assert pipe.vae.use_tiling and out.image.size == (128, 128)


def test_torch_compile_is_opt_in(standin_model, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: compiled.append(kw) or module)
    PipelineCache().get(str(standin_model))
    assert compiled == []
    monkeypatch.setenv("PHOTOBATCH_COMPILE", "1")
    PipelineCache().get(str(standin_model))
    assert len(compiled) == 1
    monkeypatch.delenv("PHOTOBATCH_COMPILE")
    PipelineCache(compile_unet=True).get(str(standin_model))
    assert len(compiled) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not os.environ.get("PHOTOBATCH_TEST_MODEL"), reason="PHOTOBATCH_TEST_MODEL is not set")
def test_a_real_model_edits_a_real_photo_at_full_resolution(tmp_path):
    """With a real SD model (PHOTOBATCH_TEST_MODEL): a colour edit that keeps the photo's detail."""
    from skimage import data

    from photobatch.plugins.diffusion.fullres import restore_full_resolution

    photo = Image.fromarray(data.astronaut()).resize((1024, 1024))
    recipe = recipe_from_dict({"name": "warm", "prompt": "a photo, warm golden light", "strength": 0.35,
                               "steps": 20, "cfg": 6.0, "sampler": "DPM++ 2M"})
    runner = DiffusersImg2ImgRunner()
    result = runner.run(photo, recipe, 42, os.environ["PHOTOBATCH_TEST_MODEL"])
    again = runner.run(photo, recipe, 42, os.environ["PHOTOBATCH_TEST_MODEL"])
    full = restore_full_resolution(photo, result, "detail-transfer")
    full.save(tmp_path / "real-model.png")
    src, out = np.asarray(photo).astype(float), np.asarray(full).astype(float)
    assert full.size == photo.size
    assert 2 < np.abs(out - src).mean() < 60  # it edited, it did not repaint
    assert np.abs(np.asarray(result.image).astype(int) - np.asarray(again.image)).max() <= 2


def test_a_real_pipeline_out_of_memory_is_retried_with_a_tiled_vae(standin_model):
    """The retry path on a real diffusers pipeline: the UNet runs out of memory once, the file is
    run again at level 1 with a tiled, sliced VAE, attention still SDPA, and gives a picture."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    runner = DiffusersImg2ImgRunner(native_size=64)
    pipe = runner.pipeline(str(standin_model))[0]
    pipe.vae.disable_tiling()
    loaded = SimpleNamespace(device="cuda", memory_level=0, ref=SimpleNamespace(model_id="standin"))
    failures = []

    def out_of_memory_once(module, args):
        if not failures:
            failures.append(1)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    handle = pipe.unet.register_forward_pre_hook(out_of_memory_once)
    try:
        images = memory.call_with_oom_retry(
            lambda: pipe(prompt="a photo", image=Image.new("RGB", (64, 64), (120, 90, 60)),
                         strength=0.5, num_inference_steps=2).images, loaded, [pipe])
        tiled, sliced = pipe.vae.use_tiling, pipe.vae.use_slicing
        processors = list(pipe.unet.attn_processors.values())
    finally:
        handle.remove()
        pipe.vae.disable_tiling()  # the cached model is shared with other tests
        pipe.vae.disable_slicing()
    assert failures == [1] and loaded.memory_level == 1
    assert images[0].size == (64, 64)
    assert tiled and sliced
    assert processors and all(isinstance(p, AttnProcessor2_0) for p in processors)


def test_the_failed_attempts_tensors_are_freed_before_the_cache_is_emptied(monkeypatch):
    """The retry empties the allocator's cache after the failed call's frames are gone: inside
    the except clause its traceback still holds them, and their memory could not go back."""
    import weakref

    held, alive_when_emptied = [], []
    monkeypatch.setattr(memory, "_empty_cache", lambda: alive_when_emptied.append(held[0]() is not None))
    loaded = _loaded()

    def call():
        if loaded.memory_level == 0:
            activations = torch.empty(1 << 20)  # what a failed UNet call leaves in its frames
            held.append(weakref.ref(activations))
            raise torch.OutOfMemoryError("CUDA out of memory")
        return "images"

    assert memory.call_with_oom_retry(call, loaded, [FakePipe()]) == "images"
    assert alive_when_emptied == [False]


def test_the_starting_level_counts_the_memory_free_before_the_weights_land(standin_model, monkeypatch):
    """A family's need includes its weights: the level comes from the memory free before they
    were loaded, not after (which would offload SDXL on a 12 GB card for nothing)."""
    from photobatch.plugins.diffusion import cache as cache_module
    from photobatch.plugins.diffusion.families import family_of_folder

    free = {"now": 4.5}  # GiB: an SD 1.x model needs 4 with its weights
    pipe = FakePipe()

    def load(ref, device, dtype):
        free["now"] = 2.0  # its weights took 2.5
        return pipe, family_of_folder(str(standin_model))

    monkeypatch.setattr(memory, "free_vram_gib", lambda device: free["now"])
    monkeypatch.setattr(cache_module, "load_pipeline", load)
    # A machine with one GPU, as torch reports it (the cache refuses a device that is not here).
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    loaded = PipelineCache("cuda", precision="fp16").get(str(standin_model))
    assert loaded.memory_level == 0 and pipe.calls == []
    # Measured after loading, the same card would have started at model offload.
    assert memory.level_for(free["now"], "sd1") == 2


def test_a_file_retried_after_running_out_of_memory_gets_its_seeds_picture(standin_model):
    """The failed attempt drew noise from the seed's generators and stepped the sampler; the
    retry starts both afresh, so the file's picture is the one its seed gives."""
    runner = DiffusersImg2ImgRunner(native_size=64)
    recipe = recipe_from_dict({"name": "s", "prompt": "warm light", "strength": 0.6, "steps": 5,
                               "cfg": 5.0, "sampler": "DPM++ 2M"})
    photo = Image.fromarray(np.random.default_rng(4).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    clean = runner.run(photo, recipe, 21, str(standin_model))
    loaded = runner.cache.get(str(standin_model))
    pipe = loaded.pipe
    failures = []

    def out_of_memory_at_the_third_step(module, args):
        failures.append(1)
        if len(failures) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    loaded.device = "cuda"  # where a retry happens; the pipeline itself stays on the CPU
    handle = pipe.unet.register_forward_pre_hook(out_of_memory_at_the_third_step)
    try:
        retried = runner.run(photo, recipe, 21, str(standin_model))
    finally:
        handle.remove()
        loaded.device = "cpu"
        loaded.memory_level = 0
        pipe.vae.disable_tiling()
        pipe.vae.disable_slicing()
    assert len(failures) == 3 + recipe.denoising_steps  # two steps, then the whole file again
    assert np.array_equal(np.asarray(retried.image), np.asarray(clean.image))


def test_a_batch_out_of_memory_is_split_before_any_memory_level_is_given_up(standin_model):
    """Four photos a call run out of GPU memory: the call is split in two at the same level, the
    pictures are the single calls' (within a level), and later batches start at two."""
    runner = DiffusersImg2ImgRunner(native_size=64, batch_on_cpu=True, precision="fp32")
    recipe = recipe_from_dict({"name": "b", "prompt": "warm light", "strength": 0.5, "steps": 4,
                               "cfg": 5.0, "sampler": "Euler", "batch": 4})
    rng = np.random.default_rng(5)
    photos = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(4)]
    seeds = [31, 32, 33, 34]
    singles = [runner.run(p, recipe, s, str(standin_model)) for p, s in zip(photos, seeds)]
    loaded = runner.cache.get(str(standin_model))
    batches = []

    def room_for_two_images(module, args):
        batches.append(args[0].shape[0] // 2)  # classifier-free guidance doubles the batch
        if batches[-1] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")

    loaded.device = "cuda"  # where out-of-memory is handled; the pipeline stays on the CPU
    handle = loaded.pipe.unet.register_forward_pre_hook(room_for_two_images)
    try:
        outs = runner.run_batch(photos, recipe, seeds, str(standin_model))
        first = list(batches)
        batches.clear()
        runner.run_batch(photos, recipe, seeds, str(standin_model))
    finally:
        handle.remove()
        loaded.device, loaded.batch_limit = "cpu", None
    steps = recipe.denoising_steps
    assert first == [4] + [2] * (2 * steps)  # four refused, then two calls of two
    assert batches == [2] * (2 * steps)  # the limit is kept: no second refusal
    assert loaded.memory_level == 0
    for out, single in zip(outs, singles):
        assert np.abs(np.asarray(out.image).astype(int) - np.asarray(single.image)).max() <= 1


@pytest.mark.parametrize("error, oom", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("CUDA error: out of memory"), True),  # a kernel's own allocation
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), True),
    (RuntimeError("The size of tensor a (64) must match the size of tensor b (32)"), False),
    (ValueError("out of memory"), False),  # not a torch error: nothing to retry
])
def test_out_of_memory_is_recognised_wherever_it_comes_from(error, oom):
    assert memory.is_out_of_memory(error) is oom
