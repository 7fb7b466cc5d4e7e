"""ControlNets beyond canny: depth maps from a transformers depth estimator (a tiny DPT built in
code, saved, and loaded back through the real loading code), several ControlNets at once, and
the part of the denoising each steers (A1111's starting/ending control step)."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from fakes import noise_photo as _photo

from photobatch.plugins.diffusion.depth import depth_map, load_depth_estimator
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.settings import settings_from_recipe
from photobatch.plugins.diffusion.sources import ModelError, adapters_hash, missing_files
from photobatch.recipes.runner_fields import DEFAULT_DEPTH_MODEL
from photobatch.recipes.schema import RecipeError, recipe_from_dict


@pytest.fixture(scope="module")
def kit(standin_model, tmp_path_factory):
    from photobatch.plugins.diffusion.standin_addons import (
        save_standin_controlnet,
        save_standin_depth_estimator,
    )

    root = tmp_path_factory.mktemp("depth")
    runner = DiffusersImg2ImgRunner(native_size=64)
    pipe = runner.pipeline(str(standin_model))[0]
    return dict(runner=runner, model=str(standin_model), root=root,
                controlnet=save_standin_controlnet(pipe, root / "controlnet"),
                depth=save_standin_depth_estimator(root / "depth"),
                base=recipe_from_dict({"name": "d", "prompt": "winter", "strength": 0.6,
                                       "steps": 5, "sampler": "Euler"}))


def _controlnet(kit, **table):
    return {"model": str(kit["controlnet"]), "scale": 1.0, **table}


def test_the_depth_map_is_the_estimators_output_stretched_over_0_255(kit):
    import torch

    estimator = load_depth_estimator(str(kit["depth"]), "cpu")
    photo = _photo(120, 80, seed=2)
    picture = depth_map(estimator, photo)
    assert picture.mode == "RGB" and picture.size == photo.size
    pixels = np.asarray(picture)
    assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2])
    assert pixels.min() == 0 and pixels.max() == 255
    # The same numbers as running the model by hand: its prediction at the photo's size, min-max.
    with torch.inference_mode():
        raw = estimator.model(**estimator.processor(images=photo, return_tensors="pt")).predicted_depth
        raw = estimator.processor.post_process_depth_estimation(
            type("Out", (), {"predicted_depth": raw})(), target_sizes=[(80, 120)])[0]["predicted_depth"]
    raw = raw.numpy()
    expected = np.round((raw - raw.min()) / (raw.max() - raw.min()) * 255)
    assert np.abs(pixels[..., 0].astype(int) - expected).max() <= 1
    assert np.array_equal(np.asarray(depth_map(estimator, photo)), pixels)  # deterministic
    assert not np.array_equal(np.asarray(depth_map(estimator, _photo(120, 80, seed=3))), pixels)


def test_a_depth_controlnet_is_conditioned_on_the_depth_map(kit):
    runner, model = kit["runner"], kit["model"]
    depth = dataclasses.replace(kit["base"], controlnet=_controlnet(
        kit, preprocessor="depth", preprocessor_model=str(kit["depth"])))
    canny = dataclasses.replace(kit["base"], controlnet=_controlnet(kit, preprocessor="canny"))
    pipe = runner.cache.task_pipe(runner.cache.get(model), "img2img", str(kit["controlnet"]))
    seen = []
    handle = pipe.controlnet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["controlnet_cond"][:1].clone()), with_kwargs=True)
    try:
        photo = _photo()
        out_depth = np.asarray(runner.run(photo, depth, 1, model).image, dtype=int)
        out_canny = np.asarray(runner.run(photo, canny, 1, model).image, dtype=int)
    finally:
        handle.remove()
    # What the ControlNet got is the depth map of the model's input (the pipeline scales it to
    # [0, 1], CFG doubles the batch, and in bf16 it is within a level).
    result = runner.run(photo, depth, 1, model)
    estimator = runner.cache.depth_estimator(str(kit["depth"]), runner.cache.get(model))
    expected = np.asarray(depth_map(estimator, result.model_input), dtype=np.float32) / 255.0
    got = seen[0][0].permute(1, 2, 0).float().numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1 / 255
    assert np.abs(out_depth - out_canny).max() > 10
    assert np.array_equal(np.asarray(result.image, dtype=int), out_depth)


def test_a_missing_or_uncached_depth_model_is_a_clear_error(kit, tmp_path, monkeypatch):
    with pytest.raises(ModelError, match=r"depth model .*nowhere does not exist"):
        load_depth_estimator(str(tmp_path / "nowhere"), "cpu")
    weights = tmp_path / "depth.safetensors"
    shutil.copy(kit["depth"] / "model.safetensors", weights)
    with pytest.raises(ModelError, match="give the model's folder"):
        load_depth_estimator(str(weights), "cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelError) as err:
        load_depth_estimator(DEFAULT_DEPTH_MODEL, "cpu")
    assert f"depth model {DEFAULT_DEPTH_MODEL} is not in the Hugging Face cache" in str(err.value)


def test_depth_fields_are_checked_and_counted_only_when_set(kit):
    plain_cn = recipe_from_dict({"name": "d", "controlnet": {"model": "c"}})
    assert "preprocessor_model" not in plain_cn.params()["controlnet"]
    depth = recipe_from_dict({"name": "d", "controlnet": {"model": "c", "preprocessor": "depth"}})
    assert depth.controlnet.estimator == DEFAULT_DEPTH_MODEL
    own = recipe_from_dict({"name": "d", "controlnet": {"model": "c", "preprocessor": "depth",
                                                        "preprocessor_model": "my/depth"}})
    assert own.controlnet.estimator == "my/depth"
    assert len({plain_cn.fingerprint, depth.fingerprint, own.fingerprint}) == 3
    with pytest.raises(RecipeError, match="recipe 'd': controlnet preprocessor_model is the depth "
                                          "estimator of preprocessor = \"depth\"; preprocessor 'canny' takes none"):
        recipe_from_dict({"name": "d", "controlnet": {"model": "c", "preprocessor_model": "x"}})


def test_the_depth_model_counts_among_the_files_a_run_reads(kit, tmp_path):
    from photobatch.plugins.diffusion.standin_addons import save_standin_depth_estimator

    folder = shutil.copytree(kit["depth"], tmp_path / "depth")
    recipe = dataclasses.replace(kit["base"], controlnet=_controlnet(
        kit, preprocessor="depth", preprocessor_model=str(folder)))
    before = adapters_hash(settings_from_recipe(recipe))
    save_standin_depth_estimator(tmp_path / "other", seed=1)
    shutil.copy(tmp_path / "other" / "model.safetensors", folder / "model.safetensors")
    assert adapters_hash(settings_from_recipe(recipe)) != before  # replaced weights: stale
    gone = dataclasses.replace(kit["base"], controlnet=_controlnet(
        kit, preprocessor="depth", preprocessor_model=str(tmp_path / "gone")))
    assert missing_files(settings_from_recipe(gone)) == [
        f"controlnet.preprocessor_model {tmp_path / 'gone'}"]


def test_several_controlnets_apply_together_each_with_its_own_control_image(kit, tmp_path):
    from photobatch.plugins.diffusion.standin_addons import save_standin_controlnet

    runner, model = kit["runner"], kit["model"]
    second = save_standin_controlnet(runner.pipeline(model)[0], tmp_path / "controlnet2", seed=1)
    canny = _controlnet(kit, preprocessor="canny")
    depth = {"model": str(second), "preprocessor": "depth", "preprocessor_model": str(kit["depth"]),
             "scale": 0.8}
    photo = _photo()

    def run(table):
        return np.asarray(runner.run(photo, dataclasses.replace(kit["base"], controlnet=table), 1,
                                     model).image, dtype=int)

    both = run([canny, depth])
    assert np.abs(both - run(canny)).max() > 5 and np.abs(both - run(depth)).max() > 5
    # A unit at scale 0 adds nothing: the pair equals the other alone.
    assert np.array_equal(run([canny, {**depth, "scale": 0.0}]), run(canny))
    pipe = runner.cache.task_pipe(runner.cache.get(model), "img2img",
                                  (str(kit["controlnet"]), str(second)))
    assert type(pipe.controlnet).__name__ == "MultiControlNetModel"
    seen = {0: [], 1: []}
    hooks = [net.register_forward_pre_hook(
        lambda module, args, kwargs, k=k: seen[k].append(kwargs["controlnet_cond"][:1].clone()),
        with_kwargs=True) for k, net in enumerate(pipe.controlnet.nets)]
    try:
        result = runner.run(photo, dataclasses.replace(kit["base"], controlnet=[canny, depth]), 1, model)
    finally:
        for hook in hooks:
            hook.remove()
    from photobatch.plugins.diffusion.controlnet import canny_edges

    estimator = runner.cache.depth_estimator(str(kit["depth"]), runner.cache.get(model))
    for k, expected in enumerate([canny_edges(result.model_input), depth_map(estimator, result.model_input)]):
        got = seen[k][0][0].permute(1, 2, 0).float().numpy()
        assert np.abs(got - np.asarray(expected, dtype=np.float32) / 255).max() < 1 / 255, k


def test_several_controlnets_batch_as_single_calls(kit, tmp_path):
    from photobatch.plugins.diffusion.standin_addons import save_standin_controlnet

    model = kit["model"]
    batching = DiffusersImg2ImgRunner(native_size=64, batch_on_cpu=True)
    second = save_standin_controlnet(batching.pipeline(model)[0], tmp_path / "controlnet2", seed=1)
    recipe = dataclasses.replace(kit["base"], batch=2, controlnet=[
        _controlnet(kit, preprocessor="canny"), {"model": str(second), "preprocessor": "none"}])
    photos = [_photo(seed=4), _photo(seed=5)]
    batched = batching.run_batch(photos, recipe, [3, 4], model)
    for photo, seed, out in zip(photos, [3, 4], batched):
        single = kit["runner"].run(photo, recipe, seed, model)
        assert np.abs(np.asarray(out.image, dtype=int) - np.asarray(single.image, dtype=int)).max() <= 1


def test_a_list_of_controlnets_is_checked_entry_by_entry():
    one = {"model": "c"}
    assert recipe_from_dict({"name": "d", "controlnet": [one, {"model": "e", "preprocessor": "depth"}]})
    for value, message in [
        ([], "controlnet needs at least one table (or leave controlnet out)"),
        ([one, "e"], "controlnet entry 2 must be a table"),
        ([one, {"model": "e", "scale": 5}], "controlnet entry 2 scale must be in [0.0, 2.0], got 5"),
        ([{"model": "e", "preprocessor_model": "x"}],
         "controlnet entry 1 preprocessor_model is the depth estimator of preprocessor = \"depth\""),
    ]:
        with pytest.raises(RecipeError) as err:
            recipe_from_dict({"name": "d", "controlnet": value})
        assert f"recipe 'd': {message}" in str(err.value)
    single = recipe_from_dict({"name": "d", "controlnet": one})
    pair = recipe_from_dict({"name": "d", "controlnet": [one, {"model": "e"}]})
    assert single.fingerprint != pair.fingerprint
    assert [u["model"] for u in pair.params()["controlnet"]] == ["c", "e"]
    assert all("preprocessor_model" not in u for u in pair.params()["controlnet"])
    a = adapters_hash(settings_from_recipe(pair))
    b = adapters_hash(settings_from_recipe(recipe_from_dict({"name": "d", "controlnet": [one, {"model": "f"}]})))
    assert a and b and a != b


def test_a_controlnet_steers_only_its_part_of_the_denoising(kit):
    runner, model = kit["runner"], kit["model"]
    photo = _photo()

    def run(**window):
        table = _controlnet(kit, preprocessor="canny", **window)
        return np.asarray(runner.run(photo, dataclasses.replace(kit["base"], controlnet=table), 1,
                                     model).image, dtype=int)

    plain = np.asarray(runner.run(photo, kit["base"], 1, model).image, dtype=int)
    whole = run()
    # 3 denoising steps (5 x 0.6): steering only from 90 % on steers none of them.
    assert np.array_equal(run(guidance_start=0.9), plain)
    first_half = run(guidance_end=0.5)
    assert np.abs(first_half - whole).max() > 5 and np.abs(first_half - plain).max() > 5
    assert np.array_equal(run(guidance_start=0.0, guidance_end=1.0), whole)


def test_the_control_window_is_checked_and_counted_only_when_set():
    base = recipe_from_dict({"name": "d", "controlnet": {"model": "c"}})
    assert not {"guidance_start", "guidance_end"} & set(base.params()["controlnet"])
    assert recipe_from_dict({"name": "d", "controlnet": {"model": "c", "guidance_end": 1}}).fingerprint \
        == base.fingerprint
    early = recipe_from_dict({"name": "d", "controlnet": {"model": "c", "guidance_end": 0.6}})
    assert early.controlnet.guidance_end == 0.6 and early.fingerprint != base.fingerprint
    with pytest.raises(RecipeError, match=r"recipe 'd': controlnet guidance_start \(0.7\) must come "
                                          r"before guidance_end \(0.5\)"):
        recipe_from_dict({"name": "d", "controlnet": {"model": "c", "guidance_start": 0.7,
                                                      "guidance_end": 0.5}})
