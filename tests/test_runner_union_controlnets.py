"""Union ControlNets: xinsir's SDXL ControlNet++ and InstantX's FLUX.1 Union, tiny ones built in
code, saved as diffusers folders and loaded back through the real loading code. Each reads a
condition type (mode) beside its control image: by name, by index, or from the preprocessor."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import cache_on_hub, cli_shoot, last_run, noise_photo
from PIL import Image

from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.sources import ModelError
from photobatch.recipes.schema import RecipeError, recipe_from_dict


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.standin import save_standin_model
    from photobatch.plugins.diffusion.standin_addons import (
        save_standin_controlnet,
        save_standin_union_controlnet,
    )
    from photobatch.plugins.diffusion.standin_flow import save_standin_flux_controlnet

    root = tmp_path_factory.mktemp("union")
    sdxl = save_standin_model(root / "sdxl", kind="sdxl")
    flux = save_standin_model(root / "flux", kind="flux")
    sdxl_pipe = DiffusionPipeline.from_pretrained(str(sdxl))
    flux_pipe = DiffusionPipeline.from_pretrained(str(flux))
    return dict(
        sdxl=str(sdxl), flux=str(flux), root=root,
        union=str(save_standin_union_controlnet(sdxl_pipe, root / "union")),
        union6=str(save_standin_union_controlnet(sdxl_pipe, root / "union6", modes=6)),
        plain=str(save_standin_controlnet(sdxl_pipe, root / "plain")),
        flux_union=str(save_standin_flux_controlnet(flux_pipe, root / "flux-union", modes=7)),
        flux_plain=str(save_standin_flux_controlnet(flux_pipe, root / "flux-plain", seed=1)),
        runner=DiffusersImg2ImgRunner(device="cpu", native_size=128),
    )


def _recipe(*units, **fields):
    return recipe_from_dict({"name": "u", "prompt": "a photo of snow", "strength": 0.6, "steps": 5,
                             "cfg": 3.5, "sampler": "Euler", "controlnet": list(units), **fields})


def _modes_seen(pipe, name="control_type_idx"):
    """Record the mode argument each ControlNet forward call gets."""
    seen = []
    nets = getattr(pipe.controlnet, "nets", [pipe.controlnet])
    handles = [net.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get(name)), with_kwargs=True) for net in nets]
    return seen, handles


def _run(kit, recipe, model, photo=None, seed=2):
    out = kit["runner"].run(photo or noise_photo(128, 96, seed=3), recipe, seed, kit[model])
    return np.asarray(out.image, dtype=np.float64)


def test_an_sdxl_union_controlnet_reads_the_mode_its_preprocessor_makes_or_the_one_named(kit):
    runner = kit["runner"]
    canny = _run(kit, _recipe({"model": kit["union"], "preprocessor": "canny"}), "sdxl")
    pipe = runner.cache.get(kit["sdxl"]).task_pipes[("img2img", kit["union"], None)]
    assert type(pipe).__name__ == "StableDiffusionXLControlNetUnionImg2ImgPipeline"
    seen, handles = _modes_seen(pipe)
    try:
        again = _run(kit, _recipe({"model": kit["union"], "preprocessor": "canny"}), "sdxl")
        as_depth = _run(kit, _recipe({"model": kit["union"], "preprocessor": "canny", "mode": "depth"}), "sdxl")
        by_index = _run(kit, _recipe({"model": kit["union"], "preprocessor": "canny", "mode": 1}), "sdxl")
        _run(kit, _recipe({"model": kit["union"], "preprocessor": "none"}), "sdxl")
    finally:
        for handle in handles:
            handle.remove()
    # xinsir's order: canny is 3, depth 1, tile 6; one call per denoising step (strength 0.6 x 5).
    steps = 3
    assert seen == [[3]] * steps + [[1]] * steps + [[1]] * steps + [[6]] * steps
    assert np.array_equal(canny, again)
    assert np.array_equal(as_depth, by_index)
    assert np.abs(canny - as_depth).mean() > 0.3  # the mode changes the picture


def test_several_units_share_one_sdxl_union_model_each_with_its_own_mode(kit):
    runner = kit["runner"]
    photo = noise_photo(128, 96, seed=5)
    one = _run(kit, _recipe({"model": kit["union"], "preprocessor": "canny"}), "sdxl", photo)
    both_recipe = _recipe({"model": kit["union"], "preprocessor": "canny", "scale": 0.8},
                          {"model": kit["union"], "preprocessor": "none", "scale": 0.5})
    _run(kit, both_recipe, "sdxl", photo)
    loaded = runner.cache.get(kit["sdxl"])
    pipe = loaded.task_pipes[("img2img", (kit["union"], kit["union"]), None)]
    assert type(pipe.controlnet).__name__ == "ControlNetUnionModel"  # one model, not a pair
    calls = []
    handle = pipe.controlnet.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((kwargs["control_type_idx"], len(kwargs["controlnet_cond"]),
                                                   list(kwargs["conditioning_scale"]))), with_kwargs=True)
    try:
        both = _run(kit, both_recipe, "sdxl", photo)
    finally:
        handle.remove()
    assert calls[0] == ([3, 6], 2, [0.8, 0.5])
    assert np.abs(both - one).mean() > 0.3
    # A union model does not mix with a plain ControlNet (diffusers has no pipeline for it).
    with pytest.raises(ValueError, match="does not go with other ControlNets"):
        _run(kit, _recipe({"model": kit["union"]}, {"model": kit["plain"]}), "sdxl", photo)


def test_an_sdxl_union_batch_gives_the_single_calls_pictures(kit):
    # In fp32: bf16's rounding differs between a batch and single calls.
    batching = DiffusersImg2ImgRunner(device="cpu", native_size=128, batch_on_cpu=True, precision="fp32")
    recipe = _recipe({"model": kit["union"], "preprocessor": "canny", "mode": "tile"}, batch=2)
    photos = [noise_photo(128, 96, seed=6), noise_photo(128, 96, seed=7)]
    batched = batching.run_batch(photos, recipe, [3, 4], kit["sdxl"])
    for photo, seed, out in zip(photos, [3, 4], batched):
        single = batching.run(photo, recipe, seed, kit["sdxl"])
        assert np.abs(np.asarray(out.image, dtype=int) - np.asarray(single.image, dtype=int)).max() <= 1


def test_union_modes_a_model_lacks_and_modes_on_plain_controlnets_are_refused_by_name(kit):
    # xinsir's first weights know 6 types: no tile, which "none" would ask for.
    with pytest.raises(ValueError) as refused:
        _run(kit, _recipe({"model": kit["union6"], "preprocessor": "none"}), "sdxl")
    message = str(refused.value)
    assert "preprocessor 'none' makes 'tile'" in message and "set mode to one of" in message
    assert "canny" in message and "tile" not in message.split("one of")[1]
    with pytest.raises(ValueError, match=r"mode 7 is not among this Union ControlNet's 6 condition types \(0-5\)"):
        _run(kit, _recipe({"model": kit["union6"], "mode": 7}), "sdxl")
    with pytest.raises(ValueError, match="the unit asks for 'blur', which this Union ControlNet does not read"):
        _run(kit, _recipe({"model": kit["union"], "mode": "blur"}), "sdxl")  # a FLUX.1 Union type
    assert _run(kit, _recipe({"model": kit["union6"], "preprocessor": "none", "mode": "canny"}), "sdxl").std() > 0
    with pytest.raises(ValueError, match="mode 'depth' is for Union ControlNets, and this one is not"):
        _run(kit, _recipe({"model": kit["plain"], "mode": "depth"}), "sdxl")
    with pytest.raises(ValueError, match="mode 'canny' is for Union ControlNets"):
        _run(kit, _recipe({"model": kit["flux_plain"], "mode": "canny"}), "flux")


def test_controlnets_of_another_family_or_in_a_single_file_are_refused_by_name(kit, tmp_path):
    from safetensors.torch import load_file, save_file

    with pytest.raises(ModelError, match="is a FluxControlNetModel, made for FLUX.1; the recipe's model is an SD model"):
        _run(kit, _recipe({"model": kit["flux_union"]}), "sdxl")
    with pytest.raises(ModelError, match="is a ControlNetUnionModel, made for SD models; the recipe's model is FLUX.1"):
        _run(kit, _recipe({"model": kit["union"]}), "flux")
    single = tmp_path / "controlnet-union-promax.safetensors"
    save_file(load_file(f"{kit['union']}/diffusion_pytorch_model.safetensors"), str(single))
    with pytest.raises(ModelError, match="controlnet-union-promax.safetensors: a Union ControlNet loads "
                                         "from a diffusers folder or hub id"):
        _run(kit, _recipe({"model": str(single)}), "sdxl")


def test_masked_work_takes_an_sdxl_union_controlnet(kit):
    inpaint = DiffusersInpaintRunner(device="cpu", native_size=128)
    photo = noise_photo(128, 96, seed=8)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (32, 24, 96, 72))
    out = inpaint.run(photo, _recipe({"model": kit["union"], "mode": "repaint"}), 2, kit["sdxl"], mask=mask)
    assert out.region is not None
    pipes = inpaint.cache.get(kit["sdxl"]).task_pipes.values()
    assert any(type(p).__name__ == "StableDiffusionXLControlNetUnionInpaintPipeline" for p in pipes)


def test_a_flux_union_controlnet_runs_with_a_mode_where_diffusers_refused_it_without(kit):
    runner = kit["runner"]
    canny = _run(kit, _recipe({"model": kit["flux_union"], "preprocessor": "canny"}), "flux")
    pipe = runner.cache.get(kit["flux"]).task_pipes[("img2img", kit["flux_union"], None)]
    assert type(pipe).__name__ == "FluxControlNetImg2ImgPipeline"
    seen, handles = _modes_seen(pipe, "controlnet_mode")
    try:
        depth = _run(kit, _recipe({"model": kit["flux_union"], "preprocessor": "canny", "mode": "depth"}), "flux")
        tile = _run(kit, _recipe({"model": kit["flux_union"], "preprocessor": "none"}), "flux")
    finally:
        for handle in handles:
            handle.remove()
    # InstantX's order: canny 0, tile 1, depth 2; one mode per image, each step.
    assert [int(m.flatten()[0]) for m in seen] == [2] * 3 + [1] * 3
    assert all(m.shape == (1, 1) for m in seen)
    # The mode changes the picture, if little here: FLUX.1 Union reads it as one more token
    # beside the prompt's 512, and the tiny stand-in's attention spreads over all of them.
    assert not np.array_equal(canny, depth) and not np.array_equal(canny, tile)
    # A Union unit beside a plain one: a mode for the one, None for the other.
    pair = _recipe({"model": kit["flux_union"], "mode": "depth"}, {"model": kit["flux_plain"], "preprocessor": "none"})
    both = _run(kit, pair, "flux")
    multi = runner.cache.get(kit["flux"]).task_pipes[("img2img", (kit["flux_union"], kit["flux_plain"]), None)]
    seen, handles = _modes_seen(multi, "controlnet_mode")
    try:
        assert np.array_equal(both, _run(kit, pair, "flux"))
    finally:
        for handle in handles:
            handle.remove()
    # diffusers hands the plain unit -1 for the None it got, and the plain model ignores it.
    assert int(seen[0].flatten()[0]) == 2 and int(seen[1].flatten()[0]) == -1
    assert np.abs(both - depth).mean() > 0.5  # the plain unit adds its own


def test_a_flux_union_batch_gives_the_single_calls_pictures(kit):
    # diffusers' FLUX.1 Union takes a batch only with a mode per image. (In fp32, as above.)
    batching = DiffusersImg2ImgRunner(device="cpu", native_size=128, batch_on_cpu=True, precision="fp32")
    recipe = _recipe({"model": kit["flux_union"], "preprocessor": "canny"}, batch=2)
    photos = [noise_photo(128, 96, seed=6), noise_photo(128, 96, seed=7)]
    batched = batching.run_batch(photos, recipe, [3, 4], kit["flux"])
    for photo, seed, out in zip(photos, [3, 4], batched):
        single = batching.run(photo, recipe, seed, kit["flux"])
        assert np.abs(np.asarray(out.image, dtype=int) - np.asarray(single.image, dtype=int)).max() <= 1


def test_the_mode_field_is_checked_and_counted_only_when_set():
    plain = recipe_from_dict({"name": "m", "controlnet": {"model": "c"}})
    assert "mode" not in plain.params()["controlnet"]
    named = recipe_from_dict({"name": "m", "controlnet": {"model": "c", "mode": "tile"}})
    assert named.params()["controlnet"]["mode"] == "tile" and named.fingerprint != plain.fingerprint
    assert recipe_from_dict({"name": "m", "controlnet": {"model": "c", "mode": 4}}).controlnet.union_mode == 4
    assert plain.controlnet.union_mode == "canny"
    for value, words in (("bogus", "controlnet mode must be a Union ControlNet's condition type"),
                         (16, "or its index 0-15, got 16"), (True, "mode must be a str or int")):
        with pytest.raises(RecipeError, match=words):
            recipe_from_dict({"name": "m", "controlnet": {"model": "c", "mode": value}})


def test_a_union_recipe_runs_through_the_cli_and_the_record_says_which_mode(kit, tmp_path, read_meta):
    run, _ = cli_shoot(tmp_path, structure=(
        'prompt = "a photo of snow"\nstrength = 0.6\nsteps = 5\nsampler = "Euler"\ncfg = 3.5\n'
        f'[controlnet]\nmodel = "{kit["flux_union"]}"\npreprocessor = "canny"\nmode = "depth"\n'))
    result = run("structure", kit["flux"])
    assert result.exit_code == 0, result.output
    output = tmp_path / "out" / "DSCF0001_structure.jpg"
    assert Image.open(output).size == (96, 64)
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["controlnet"]["mode"] == "depth"
    _, _, xmp = read_meta(output)
    assert '"mode":"depth"' in "".join(v for k, v in xmp.items() if k.endswith("Params"))


def test_what_a_local_controlnet_folder_tells_is_refused_before_the_first_photo(kit, tmp_path, standin_model):
    def unit(model, extra=""):
        return f'prompt = "snow"\nstrength = 0.6\nsteps = 5\nsampler = "Euler"\n[controlnet]\nmodel = "{model}"\n{extra}'

    run, _ = cli_shoot(tmp_path, plainmode=unit(kit["plain"], 'mode = "depth"\n'),
                       notile=unit(kit["union6"], 'preprocessor = "none"\n'),
                       fluxnet=unit(kit["flux_union"]))
    for recipe, model, words in (
            ("plainmode", "sdxl", "mode 'depth' is for Union ControlNets, and this one is not"),
            ("notile", "sdxl", "the unit preprocessor 'none' makes 'tile', which this Union ControlNet does not read"),
            ("fluxnet", "sdxl", "is a FluxControlNetModel, made for FLUX.1; the recipe's model is an SD model"),
            ("notile", "flux", "is a ControlNetUnionModel, made for SD models; the recipe's model is FLUX.1"),
            ("notile", "sd1", "is an SDXL Union ControlNet; the recipe's model is not SDXL")):
        refused = run(recipe, kit.get(model, standin_model))
        assert refused.exit_code != 0 and f"recipe '{recipe}': controlnet " in refused.output, refused.output
        assert words in refused.output and "Traceback" not in refused.output
    assert not (tmp_path / "out").exists()  # no photo was tried


def test_a_cached_hub_controlnet_is_checked_before_the_first_photo_too(kit, tmp_path, monkeypatch):
    cache_on_hub(tmp_path, "someone/controlnet-union", kit["union6"], monkeypatch)
    run, _ = cli_shoot(tmp_path, tiled='prompt = "snow"\nstrength = 0.6\nsteps = 5\nsampler = "Euler"\n'
                                       '[controlnet]\nmodel = "someone/controlnet-union"\npreprocessor = "none"\n')
    refused = run("tiled", kit["sdxl"])
    assert refused.exit_code != 0 and "recipe 'tiled': controlnet someone/controlnet-union: the unit " \
                                      "preprocessor 'none' makes 'tile'" in refused.output, refused.output
    assert not (tmp_path / "out").exists()


def test_a_union_pipeline_keeps_the_models_precision(kit):
    """photobatch makes the SDXL union pipelines by class; diffusers' from_pipe for a class
    casts the shared UNet to float32 unless given the dtype."""
    half = DiffusersImg2ImgRunner(device="cpu", native_size=128, precision="bf16")
    out = half.run(noise_photo(128, 96, seed=3), _recipe({"model": kit["union"], "mode": "canny"}), 2,
                   kit["sdxl"])
    loaded = half.cache.get(kit["sdxl"])
    pipes = [p for key, p in loaded.task_pipes.items() if key[1] == kit["union"]]
    assert out.precision == "bf16" and [type(p).__name__ for p in pipes] == [
        "StableDiffusionXLControlNetUnionImg2ImgPipeline"]
    import torch

    assert loaded.pipe.unet.dtype == pipes[0].unet.dtype == pipes[0].controlnet.dtype == torch.bfloat16
