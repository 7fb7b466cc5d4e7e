"""The diffusers runner, on the stand-in model loaded through the real loading code."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from photobatch.plugins.diffusion.loading import ModelError, native_size, resolve_model
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner, validate_params, working_size
from photobatch.recipes.schema import recipe_from_dict


def _photo(w=96, h=64, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.fixture()
def fast_recipe():
    return recipe_from_dict({"name": "t", "prompt": "natural colours", "strength": 0.5, "steps": 4,
                             "cfg": 6.0, "sampler": "Euler"})


def test_standin_loads_through_the_real_code_and_runs(standin_model, fast_recipe, monkeypatch):
    runner = DiffusersImg2ImgRunner()
    pipe, ref, device, mhash = runner.pipeline(str(standin_model))
    assert type(pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    assert ref.kind == "folder" and device == "cpu" and len(mhash) == 16
    assert native_size(pipe) == 512
    monkeypatch.setattr("photobatch.plugins.diffusion.runner.native_size", lambda pipe: 128)
    out = runner.run(_photo(), fast_recipe, seed=7, model=str(standin_model))
    assert out.working_size == (160, 104) and out.image.size == (160, 104)
    again = runner.run(_photo(), fast_recipe, seed=7, model=str(standin_model))
    assert np.array_equal(np.asarray(out.image), np.asarray(again.image))
    other = runner.run(_photo(), fast_recipe, seed=8, model=str(standin_model))
    assert not np.array_equal(np.asarray(out.image), np.asarray(other.image))
    # Cached: the second lookup returns the very same pipeline object.
    assert runner.pipeline(str(standin_model))[0] is pipe


def test_every_sampler_builds_and_runs(standin_model, monkeypatch):
    from photobatch.recipes.schema import SAMPLERS

    monkeypatch.setattr("photobatch.plugins.diffusion.runner.native_size", lambda pipe: 64)
    runner = DiffusersImg2ImgRunner()
    for sampler in SAMPLERS:
        recipe = recipe_from_dict({"name": "s", "strength": 0.5, "steps": 4, "sampler": sampler})
        out = runner.run(_photo(64, 64), recipe, seed=1, model=str(standin_model))
        assert out.image.size == (64, 64), sampler


@pytest.mark.parametrize("w, h", [(6000, 4000), (4000, 6000), (1000, 1000), (5472, 3648), (100, 30)])
def test_working_size_keeps_aspect_in_multiples_of_8(w, h):
    ww, hh = working_size(w, h, 512)
    assert ww % 8 == 0 and hh % 8 == 0
    assert abs((ww / hh) - (w / h)) / (w / h) < 0.08
    if min(w, h) > 200:
        assert 0.85 < (ww * hh) / (512 * 512) < 1.15


@pytest.mark.parametrize("strength, steps, cfg, message", [
    (0.3, 3, 6.0, "int(3 x 0.3) = 0; raise steps to at least 4"),
    (0.0, 30, 6.0, "strength must be in (0, 1], got 0.0"),
    (1.2, 30, 6.0, "strength must be in (0, 1], got 1.2"),
    (0.5, 0, 6.0, "steps must be at least 1, got 0"),
    (0.5, 10, -1.0, "cfg must be >= 0, got -1.0"),
])
def test_parameters_are_validated_before_any_work(strength, steps, cfg, message):
    with pytest.raises(ValueError) as err:
        validate_params(strength, steps, cfg)
    assert message in str(err.value)


def test_model_references_that_cannot_load_say_why(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"x")
    with pytest.raises(ModelError, match="pickle checkpoints .* can run code"):
        resolve_model(str(ckpt))
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
