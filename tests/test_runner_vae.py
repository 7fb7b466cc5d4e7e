"""A recipe's own VAE (A1111's "SD VAE"): from a folder, a model folder's vae/, or a single
.safetensors file configured offline from the recipe model's own VAE config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.sources import ModelError
from photobatch.recipes.schema import recipe_from_dict


def _recipe(**fields):
    return recipe_from_dict({"name": "v", "prompt": "a photo", "strength": 0.5, "steps": 4,
                             "sampler": "Euler", **fields})


@pytest.fixture(scope="module")
def other_vae(tmp_path_factory):
    """Another tiny VAE (other random weights), saved as a folder and as an original-layout file."""
    from safetensors.torch import save_file

    from photobatch.plugins.diffusion.standin import build_vae
    from photobatch.plugins.diffusion.standin_single_file import convert_vae

    torch.manual_seed(7)
    vae = build_vae()
    root = tmp_path_factory.mktemp("vae")
    vae.save_pretrained(str(root / "folder"))
    vae.save_pretrained(str(root / "model" / "vae"))  # laid out like a model folder
    state = convert_vae(vae.state_dict(), vae.config)
    save_file({k: v.contiguous() for k, v in state.items()}, str(root / "vae.safetensors"))
    (root / "vae.ckpt").write_bytes(b"pickle")
    return root


def _run(runner, model, **fields):
    photo = Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    return np.asarray(runner.run(photo, _recipe(**fields), 5, str(model)).image, dtype=int)


def test_a_recipes_vae_decodes_its_pictures_and_leaves_the_model_alone(standin_model, other_vae):
    runner = DiffusersImg2ImgRunner(native_size=64, precision="fp32")
    own_vae = runner.pipeline(str(standin_model))[0].vae
    before = _run(runner, standin_model)
    folder = _run(runner, standin_model, vae=str(other_vae / "folder"))
    assert np.abs(folder - before).mean() > 1  # another decoder, another picture
    assert runner.pipeline(str(standin_model))[0].vae is own_vae
    assert np.array_equal(_run(runner, standin_model), before)  # nothing leaks to other recipes
    # The same weights from a model folder's vae/ and from a single original-layout file.
    assert np.array_equal(_run(runner, standin_model, vae=str(other_vae / "model")), folder)
    single = _run(runner, standin_model, vae=str(other_vae / "vae.safetensors"))
    assert np.abs(single - folder).max() <= 1


def test_a_pickle_vae_is_refused(standin_model, other_vae):
    runner = DiffusersImg2ImgRunner(native_size=64)
    with pytest.raises(ModelError, match="vae vae.ckpt: only .safetensors files are loaded"):
        _run(runner, standin_model, vae=str(other_vae / "vae.ckpt"))


def test_the_vae_counts_in_the_fingerprint_only_when_set():
    assert "vae" not in _recipe().params()
    assert _recipe(vae="ft-mse").fingerprint != _recipe().fingerprint
