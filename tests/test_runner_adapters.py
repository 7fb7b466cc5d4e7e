"""IP-Adapter, LoRA and ControlNet on the shared stand-in: each changes the output, off restores it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fakes import noise_photo as _photo
from PIL import Image

from photobatch.plugins.diffusion.controlnet import canny_edges
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.sources import ModelError
from photobatch.recipes.schema import RecipeError, recipe_from_dict


@pytest.fixture(scope="module")
def kit(standin_model, tmp_path_factory):
    """A runner on the stand-in, plus a tiny IP-Adapter, two LoRAs and a ControlNet saved to disk."""
    from photobatch.plugins.diffusion.standin_addons import (
        save_standin_controlnet,
        save_standin_ip_adapter,
        save_standin_lora,
    )

    root = tmp_path_factory.mktemp("addons")
    runner = DiffusersImg2ImgRunner(native_size=64)
    pipe = runner.pipeline(str(standin_model))[0]
    _photo(seed=5).save(root / "reference.png")
    return dict(
        runner=runner, model=str(standin_model), root=root,
        ip_adapter=save_standin_ip_adapter(pipe, root / "ip-adapter"),
        lora_a=save_standin_lora(pipe, root / "loras" / "a.safetensors", seed=1),
        lora_b=save_standin_lora(pipe, root / "loras" / "b.safetensors", seed=2),
        controlnet=save_standin_controlnet(pipe, root / "controlnet"),
        base=recipe_from_dict({"name": "t", "prompt": "natural colours", "strength": 0.6, "steps": 5,
                               "sampler": "Euler"}),
    )


def _run(kit, recipe):
    return np.asarray(kit["runner"].run(_photo(), recipe, 1, kit["model"]).image).astype(np.int16)


def test_ip_adapter_changes_the_output_scale_zero_and_unloading_restore_it(kit):
    plain = _run(kit, kit["base"])
    table = {"model": str(kit["ip_adapter"]), "scale": 0.8, "reference": "reference.png"}
    # A relative reference is relative to the recipe's own file.
    styled_recipe = dataclasses.replace(kit["base"], ip_adapter=table,
                                        source=str(kit["root"] / "style.toml"))
    styled = _run(kit, styled_recipe)
    assert np.abs(styled - plain).max() > 10
    zero = _run(kit, dataclasses.replace(styled_recipe, ip_adapter={**table, "scale": 0.0}))
    assert np.array_equal(zero, plain)
    assert np.array_equal(_run(kit, kit["base"]), plain)  # unloaded for a recipe without it
    assert np.array_equal(_run(kit, styled_recipe), styled)  # and loads again, same result
    # With perturbed-attention guidance on top (its own pipeline on the same UNet), the
    # adapter still steers, and the UNet is given back with the adapter's processors in place.
    guided = _run(kit, dataclasses.replace(styled_recipe, pag=True))
    assert np.abs(guided - styled).max() > 5
    assert np.abs(guided - _run(kit, dataclasses.replace(kit["base"], pag=True))).max() > 5
    assert np.array_equal(_run(kit, styled_recipe), styled)


def test_a_missing_ip_adapter_reference_is_a_clear_error(kit):
    recipe = dataclasses.replace(kit["base"], ip_adapter={"model": str(kit["ip_adapter"]),
                                                          "reference": "/nowhere/ref.jpg"})
    with pytest.raises(ValueError, match="ip_adapter reference /nowhere/ref.jpg cannot be read"):
        _run(kit, recipe)
    _run(kit, kit["base"])  # the runner is still usable


def test_loras_change_the_output_with_their_weights_and_switch_off(kit):
    plain = _run(kit, kit["base"])
    one = _run(kit, dataclasses.replace(kit["base"], loras=[{"path": str(kit["lora_a"]), "weight": 1.0}]))
    assert np.abs(one - plain).max() > 10
    half = _run(kit, dataclasses.replace(kit["base"], loras=[{"path": str(kit["lora_a"]), "weight": 0.5}]))
    assert not np.array_equal(half, one) and not np.array_equal(half, plain)
    zero = _run(kit, dataclasses.replace(kit["base"], loras=[{"path": str(kit["lora_a"]), "weight": 0.0}]))
    assert np.array_equal(zero, plain)
    both = _run(kit, dataclasses.replace(kit["base"], loras=[
        {"path": str(kit["lora_a"]), "weight": 1.0}, {"path": str(kit["lora_b"]), "weight": 0.7}]))
    assert not np.array_equal(both, one)
    assert np.array_equal(_run(kit, kit["base"]), plain)
    assert np.array_equal(
        _run(kit, dataclasses.replace(kit["base"], loras=[{"path": str(kit["lora_a"]), "weight": 1.0}])), one)


def test_controlnet_changes_the_output_and_leaves_the_plain_pipeline_alone(kit):
    plain = _run(kit, kit["base"])
    guided_recipe = dataclasses.replace(kit["base"], controlnet={"model": str(kit["controlnet"]),
                                                                 "preprocessor": "canny", "scale": 1.0})
    guided = _run(kit, guided_recipe)
    assert np.abs(guided - plain).max() > 10
    # The control image itself steers it: the photo's edges give another picture than the photo.
    unprocessed = _run(kit, dataclasses.replace(guided_recipe, controlnet={
        "model": str(kit["controlnet"]), "preprocessor": "none", "scale": 1.0}))
    assert np.abs(guided - unprocessed).max() > 5
    weak = _run(kit, dataclasses.replace(guided_recipe, controlnet={"model": str(kit["controlnet"]),
                                                                    "scale": 0.0}))
    assert np.array_equal(weak, plain)
    assert np.array_equal(_run(kit, kit["base"]), plain)
    loaded = kit["runner"].cache.get(kit["model"])
    cn_pipe = loaded.task_pipes[("img2img", str(kit["controlnet"]), None)]
    assert type(cn_pipe).__name__ == "StableDiffusionControlNetImg2ImgPipeline"
    assert cn_pipe.unet is loaded.pipe.unet


def test_canny_edges_follow_the_photo():
    image = Image.new("RGB", (64, 48), (20, 20, 20))
    image.paste((230, 230, 230), (32, 0, 64, 48))
    edges = np.asarray(canny_edges(image))[..., 0]
    columns = np.nonzero(edges.any(axis=0))[0]
    assert edges.max() == 255 and set(columns) <= {30, 31, 32, 33}


@pytest.mark.parametrize("data, message", [
    ({"ip_adapter": {"model": "x", "scale": 3}}, "ip_adapter scale must be in [0.0, 2.0], got 3"),
    ({"ip_adapter": {"scale": 0.5}}, "ip_adapter needs model"),
    ({"ip_adapter": {"model": "x", "scael": 1}}, "ip_adapter has an unknown field 'scael'"),
    ({"loras": [{"path": "a.safetensors", "weight": 9}]}, "loras entry 1 weight must be in [-4.0, 4.0], got 9"),
    ({"loras": [7]}, "loras entry 1 must be a table"),
    ({"controlnet": {"model": "c", "preprocessor": "sobel"}},
     "controlnet preprocessor must be one of 'canny', 'depth', 'none'; got 'sobel'"),
    ({"full_resolution": "tile"}, "full_resolution must be one of 'detail-transfer', 'tiled', 'resize'; got 'tile'"),
    ({"exact_steps": 1}, "exact_steps must be a bool, got 1"),
    ({"batch": 0}, "batch must be in [1, 64], got 0"),
])
def test_runner_fields_are_validated_with_the_recipe_name(data, message):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict({"name": "style", **data})
    assert f"recipe 'style': {message}" in str(err.value)


def test_runner_fields_are_in_the_fingerprint():
    base = recipe_from_dict({"name": "x"})
    for change in ({"full_resolution": "detail-transfer"}, {"color_match": True}, {"exact_steps": True},
                   {"loras": [{"path": "a.safetensors"}]}, {"ip_adapter": {"model": "m", "reference": "r"}},
                   {"controlnet": {"model": "c"}}, {"mask_blur": 8}):
        assert recipe_from_dict({"name": "x", **change}).fingerprint != base.fingerprint, change
    weighted = recipe_from_dict({"name": "x", "loras": [{"path": "a.safetensors", "weight": 0.5}]})
    assert weighted.fingerprint != recipe_from_dict({"name": "x", "loras": ["a.safetensors"]}).fingerprint


def test_a_cached_hub_lora_loads_offline_like_the_same_file(kit, tmp_path, monkeypatch):
    # Offline, diffusers cannot choose a hub repo's weights file by itself ("you must specify a
    # weight_name"); the cached snapshot is loaded as a folder instead.
    import shutil

    from huggingface_hub import constants

    commit = "fedcba9876543210fedcba9876543210fedcba98"
    repo = tmp_path / "hub" / "models--someone--film-lora"
    (repo / "snapshots" / commit).mkdir(parents=True)
    shutil.copy(kit["lora_a"], repo / "snapshots" / commit / "pytorch_lora_weights.safetensors")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    by_file = _run(kit, dataclasses.replace(kit["base"], loras=[{"path": str(kit["lora_a"]), "weight": 1.0}]))
    by_hub = _run(kit, dataclasses.replace(kit["base"], loras=[{"path": "someone/film-lora", "weight": 1.0}]))
    assert np.array_equal(by_hub, by_file)
    assert not np.array_equal(by_hub, _run(kit, kit["base"]))
    # Not cached: said so, with why the hub was not asked.
    with pytest.raises(ModelError, match="lora someone/other-lora is not in the Hugging Face cache "
                                         r"and offline mode is on \(HF_HUB_OFFLINE=1\)"):
        _run(kit, dataclasses.replace(kit["base"], loras=[{"path": "someone/other-lora", "weight": 1.0}]))
