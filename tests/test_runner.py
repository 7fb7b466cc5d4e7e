"""The diffusers runner on tiny stand-in models (SD 1.x and SDXL) loaded through the real code."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys

import numpy as np
import pytest
from fakes import noise_photo as _photo
from PIL import Image

from photobatch.plugins.diffusion.loading import ModelError, native_size, resolve_model
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner, validate_params, working_size
from photobatch.plugins.diffusion.samplers import SAMPLER_MAP, inference_steps, make_scheduler
from photobatch.recipes.schema import SAMPLERS, recipe_from_dict


def _arr(image):
    return np.asarray(image).astype(np.int16)


@pytest.fixture()
def fast_recipe():
    return recipe_from_dict({"name": "t", "prompt": "natural colours", "strength": 0.5, "steps": 4,
                             "cfg": 6.0, "sampler": "Euler"})


@pytest.fixture(scope="module")
def sdxl_model(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    return save_standin_model(tmp_path_factory.mktemp("models") / "sdxl", kind="sdxl")


def _count_unet_calls(pipe):
    calls = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls, handle


def test_standin_loads_through_the_real_code_and_runs(standin_model, fast_recipe):
    runner = DiffusersImg2ImgRunner()
    pipe, ref, device, mhash = runner.pipeline(str(standin_model))
    assert type(pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    assert ref.kind == "folder" and device == "cpu" and len(mhash) == 16
    assert native_size(pipe) == 512
    small = DiffusersImg2ImgRunner(native_size=128, cache=runner.cache)
    out = small.run(_photo(), fast_recipe, seed=7, model=str(standin_model))
    assert out.working_size == (160, 104) and out.image.size == (160, 104)
    assert out.model_input.size == (160, 104)
    again = small.run(_photo(), fast_recipe, seed=7, model=str(standin_model))
    assert np.array_equal(_arr(out.image), _arr(again.image))
    other = small.run(_photo(), fast_recipe, seed=8, model=str(standin_model))
    assert not np.array_equal(_arr(out.image), _arr(other.image))
    # Cached: the second lookup returns the very same pipeline object.
    assert runner.pipeline(str(standin_model))[0] is pipe


def test_a_big_photo_reaches_the_model_as_a_lanczos_scaling_would_give_it():
    # A box reduction by the whole factor, then LANCZOS: the model's input is the full LANCZOS
    # scaling within a level on average (dense random texture: the hardest case).
    from PIL import ImageFilter

    from photobatch.plugins.diffusion.params import to_working_size

    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 255, (300, 450, 3), dtype=np.uint8)).resize(
        (3000, 2000), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    size = working_size(*photo.size, 256)  # 312x208: a reduction by 3 comes first
    fast = _arr(to_working_size(photo, size)).astype(float)
    full = _arr(photo.resize(size, Image.Resampling.LANCZOS)).astype(float)
    assert fast.shape == full.shape == (size[1], size[0], 3)
    assert 0 < np.abs(fast - full).mean() < 1.0 and np.abs(fast - full).max() <= 8


def test_every_sampler_builds_and_runs(standin_model):
    assert set(SAMPLERS) == set(SAMPLER_MAP)
    for name in ("Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ SDE Karras", "DDIM",
                 "UniPC", "LCM"):
        assert name in SAMPLERS
    runner = DiffusersImg2ImgRunner(native_size=64)
    outputs = {}
    for sampler in SAMPLERS:
        recipe = recipe_from_dict({"name": "s", "strength": 0.5, "steps": 4, "sampler": sampler})
        out = runner.run(_photo(64, 64), recipe, seed=1, model=str(standin_model))
        assert out.image.size == (64, 64), sampler
        outputs[sampler] = _arr(out.image)
        assert type(runner.pipeline(str(standin_model))[0].scheduler).__name__ == "PNDMScheduler"
        # The stochastic ones too (Euler a, the SDE and ancestral samplers): a seed reproduces.
        again = runner.run(_photo(64, 64), recipe, seed=1, model=str(standin_model))
        assert np.array_equal(_arr(again.image), outputs[sampler]), sampler
    # Different samplers really are different schedulers.
    assert not np.array_equal(outputs["Euler"], outputs["DDIM"])
    assert not np.array_equal(outputs["DPM++ 2M"], outputs["DPM++ 2M SDE"])
    assert not np.array_equal(outputs["DPM2"], outputs["DPM2 a"])


@pytest.mark.parametrize("steps, strength, sampler", [(20, 0.3, "Euler"), (10, 0.5, "DDIM"), (7, 1.0, "Euler a")])
def test_strength_runs_int_steps_times_strength_unet_calls(standin_model, steps, strength, sampler):
    runner = DiffusersImg2ImgRunner(native_size=64)
    recipe = recipe_from_dict({"name": "s", "strength": strength, "steps": steps, "sampler": sampler})
    pipe = runner.pipeline(str(standin_model))[0]
    calls, handle = _count_unet_calls(pipe)
    try:
        runner.run(_photo(64, 64), recipe, seed=1, model=str(standin_model))
    finally:
        handle.remove()
    assert len(calls) == int(steps * strength)


@pytest.mark.parametrize("steps, strength", [(6, 0.3), (4, 0.2), (10, 0.75), (3, 0.3)])
def test_exact_steps_runs_exactly_the_steps_asked(standin_model, steps, strength):
    runner = DiffusersImg2ImgRunner(native_size=64)
    recipe = recipe_from_dict({"name": "s", "strength": strength, "steps": steps, "sampler": "Euler",
                               "exact_steps": True})
    assert recipe.denoising_steps == steps
    pipe = runner.pipeline(str(standin_model))[0]
    calls, handle = _count_unet_calls(pipe)
    try:
        runner.run(_photo(64, 64), recipe, seed=1, model=str(standin_model))
    finally:
        handle.remove()
    assert len(calls) == steps
    assert int(inference_steps(steps, strength, True) * strength) == steps


def test_batches_equal_single_calls_within_one_level(standin_model, fast_recipe):
    # In fp32; in bf16 batched and single calls differ by up to 2 levels (other kernel blocking).
    runner = DiffusersImg2ImgRunner(native_size=64, batch_on_cpu=True, precision="fp32")
    recipe = dataclasses.replace(fast_recipe, batch=3)
    images = [_photo(64, 64, seed=i) for i in range(4)] + [_photo(96, 64, seed=9)]
    seeds = [11, 12, 13, 14, 15]
    pipe = runner.pipeline(str(standin_model))[0]
    calls, handle = _count_unet_calls(pipe)
    try:
        batched = runner.run_batch(images, recipe, seeds, str(standin_model))
    finally:
        handle.remove()
    # 4 same-size images in calls of <= 3, the odd size alone: 3 calls x 2 denoising steps.
    assert len(calls) == 3 * recipe.denoising_steps
    for image, seed, out in zip(images, seeds, batched):
        single = runner.run(image, recipe, seed, str(standin_model))
        assert out.image.size == single.image.size
        assert np.abs(_arr(out.image) - _arr(single.image)).max() <= 1
    # On the CPU (the default) batching stays off: one call per image.
    plain = DiffusersImg2ImgRunner(native_size=64, cache=runner.cache)
    calls, handle = _count_unet_calls(pipe)
    try:
        plain.run_batch(images[:3], recipe, seeds[:3], str(standin_model))
    finally:
        handle.remove()
    assert len(calls) == 3 * recipe.denoising_steps


def test_sdxl_standin_runs_with_its_native_size(sdxl_model, fast_recipe):
    runner = DiffusersImg2ImgRunner()
    pipe = runner.pipeline(str(sdxl_model))[0]
    assert type(pipe).__name__ == "StableDiffusionXLImg2ImgPipeline"
    assert native_size(pipe) == 1024
    small = DiffusersImg2ImgRunner(native_size=64, cache=runner.cache)
    a = small.run(_photo(), fast_recipe, seed=3, model=str(sdxl_model))
    b = small.run(_photo(), fast_recipe, seed=3, model=str(sdxl_model))
    assert a.image.size == working_size(96, 64, 64) == (80, 64)
    assert np.array_equal(_arr(a.image), _arr(b.image))


@pytest.mark.parametrize("w, h", [(6000, 4000), (4000, 6000), (1000, 1000), (5472, 3648), (100, 30)])
def test_working_size_keeps_aspect_in_multiples_of_8(w, h):
    for native in (512, 768, 1024):
        ww, hh = working_size(w, h, native)
        assert ww % 8 == 0 and hh % 8 == 0
        assert abs((ww / hh) - (w / h)) / (w / h) < 0.08
        if min(w, h) > 200:
            assert 0.85 < (ww * hh) / (native * native) < 1.15


def test_a_strip_too_thin_for_its_aspect_is_worked_at_most_8x_the_native_side():
    assert working_size(4000, 1, 512) == (4096, 64)  # not 32384x64
    assert working_size(1, 40000, 1024, 16) == (64, 8192)
    assert working_size(12000, 2000, 512) == (1256, 208)  # a 6:1 panorama keeps its aspect


@pytest.mark.parametrize("strength, steps, cfg, sampler, message", [
    (0.3, 3, 6.0, "Euler", "int(3 x 0.3) = 0; raise steps to at least 4"),
    (0.0, 30, 6.0, "Euler", "strength must be in (0, 1], got 0.0"),
    (1.2, 30, 6.0, "Euler", "strength must be in (0, 1], got 1.2"),
    (0.5, 0, 6.0, "Euler", "steps must be at least 1, got 0"),
    (0.5, 10, -1.0, "Euler", "cfg must be >= 0, got -1.0"),
    (0.5, 10, 6.0, "Euler b", "sampler must be one of Euler, Euler a"),
])
def test_parameters_are_validated_before_any_work(strength, steps, cfg, sampler, message):
    with pytest.raises(ValueError) as err:
        validate_params(strength, steps, cfg, sampler)
    assert message in str(err.value)


def test_a_runner_refuses_a_bad_recipe_before_loading(fast_recipe):
    bad = dataclasses.replace(fast_recipe, steps=3, strength=0.3)
    with pytest.raises(ValueError, match=r"int\(3 x 0.3\) = 0"):
        # The model does not exist: validation must come first.
        DiffusersImg2ImgRunner().run(_photo(), bad, seed=1, model="/nonexistent/model")


def test_model_references_that_cannot_load_say_why(tmp_path, monkeypatch):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"x")
    with pytest.raises(ModelError, match="pickle checkpoints .* can run code when loaded"):
        resolve_model(str(ckpt))
    for suffix in (".pt", ".bin", ".pth"):
        other = tmp_path / f"model{suffix}"
        other.write_bytes(b"x")
        with pytest.raises(ModelError, match="PHOTOBATCH_ALLOW_PICKLE=1"):
            resolve_model(str(other))
    # Opting in makes it a single-file reference (loading it then runs its code).
    assert resolve_model(str(ckpt), allow_pickle=True).kind == "single-file"
    monkeypatch.setenv("PHOTOBATCH_ALLOW_PICKLE", "1")
    assert resolve_model(str(ckpt)).kind == "single-file"
    with pytest.raises(ModelError, match="has no model_index.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"))
    assert resolve_model("org/some-model").kind == "hub"


def test_uncached_hub_model_offline_is_a_clear_error(fast_recipe):
    runner = DiffusersImg2ImgRunner()
    with pytest.raises(ModelError, match="not in the Hugging Face cache and offline mode is on"):
        runner.run(_photo(), fast_recipe, seed=1, model="nobody/not-a-cached-model")


def test_a_toy_tokenizer_is_refused(standin_model, tmp_path):
    from transformers import CLIPTokenizer

    broken = tmp_path / "broken"
    shutil.copytree(standin_model, broken)
    shutil.rmtree(broken / "tokenizer")
    toy = CLIPTokenizer(vocab={"<|startoftext|>": 0, "<|endoftext|>": 1}, merges=[])
    toy.save_pretrained(str(broken / "tokenizer"))
    with pytest.raises(ModelError, match=r"tokenizer has only \d+ tokens"):
        DiffusersImg2ImgRunner().pipeline(str(broken))


def test_cli_start_does_not_import_torch():
    code = ("import sys, photobatch.daemon.cli, photobatch.plugins.manager as m; "
            "m.build_plugin_manager(); "
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ SDE Karras", "DPM++ 2M SDE"])
def test_stochastic_samplers_batched_equal_single_calls(standin_model, fast_recipe, sampler):
    # Their noise is each image's own seed's, in a batch as alone (DPM++ SDE's Brownian tree
    # included: one tree per image), so a photo re-run alone reproduces its batched picture.
    runner = DiffusersImg2ImgRunner(native_size=64, batch_on_cpu=True, precision="fp32")
    recipe = dataclasses.replace(fast_recipe, batch=3, sampler=sampler)
    images = [_photo(64, 64, seed=i) for i in range(3)]
    batched = runner.run_batch(images, recipe, [21, 22, 23], str(standin_model))
    for image, seed, out in zip(images, [21, 22, 23], batched):
        single = runner.run(image, recipe, seed, str(standin_model))
        assert np.abs(_arr(out.image) - _arr(single.image)).max() <= 1, (sampler, seed)
    assert not np.array_equal(_arr(batched[0].image), _arr(batched[1].image))


def test_dpm_3m_sde_is_third_order_and_tcd_runs_with_its_gamma(standin_model, monkeypatch):
    import diffusers

    runner = DiffusersImg2ImgRunner(native_size=64)
    seen = []
    original = diffusers.TCDScheduler.step

    def step(self, model_output, timestep, sample, eta=0.3, **kwargs):
        seen.append(eta)
        return original(self, model_output, timestep, sample, eta=eta, **kwargs)

    monkeypatch.setattr(diffusers.TCDScheduler, "step", step)
    out = {}
    for sampler in ("DPM++ 2M SDE", "DPM++ 3M SDE", "TCD", "LCM"):
        # 20 steps: below 15 diffusers ends multistep solvers at a lower order, and the third
        # order would hardly show.
        recipe = recipe_from_dict({"name": "s", "strength": 0.5, "steps": 40, "sampler": sampler, "cfg": 1.5})
        out[sampler] = _arr(runner.run(_photo(64, 64), recipe, seed=2, model=str(standin_model)).image)
    assert seen and set(seen) == {0.3}  # the pipelines' eta is TCD's gamma
    assert not np.array_equal(out["DPM++ 2M SDE"], out["DPM++ 3M SDE"])
    assert not np.array_equal(out["TCD"], out["LCM"])
    scheduler = make_scheduler("DPM++ 3M SDE", runner.pipeline(str(standin_model))[0].scheduler.config)
    assert scheduler.config.solver_order == 3 and scheduler.config.algorithm_type == "sde-dpmsolver++"
