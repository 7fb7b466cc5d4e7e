"""Inpainting: "only masked" crops, feathered paste-back, and pixels outside the mask kept exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from photobatch.plugins.diffusion.fullres import restore_full_resolution
from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
from photobatch.plugins.diffusion.masks import crop_region, feather, paste_back
from photobatch.recipes.schema import recipe_from_dict


def _photo(w=160, h=120, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def _mask(size, box):
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


@pytest.fixture(scope="module")
def inpaint_model(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    return save_standin_model(tmp_path_factory.mktemp("m") / "inpaint", kind="sd1-inpaint")


@pytest.fixture()
def recipe():
    return recipe_from_dict({"name": "retouch", "runner": "inpaint", "prompt": "natural skin",
                             "strength": 0.6, "steps": 5, "sampler": "Euler", "mask_blur": 3,
                             "mask_padding": 8})


@pytest.mark.parametrize("which", ["sd1", "sd1-inpaint"])
@pytest.mark.parametrize("strategy", ["resize", "detail-transfer"])
def test_pixels_outside_the_mask_are_exactly_the_source(standin_model, inpaint_model, recipe, which, strategy):
    model = str(standin_model if which == "sd1" else inpaint_model)
    photo = _photo()
    runner = DiffusersInpaintRunner(native_size=64)
    result = runner.run(photo, dataclasses.replace(recipe, full_resolution=strategy), 3, model,
                        mask=_mask(photo.size, (60, 40, 100, 80)))
    full = restore_full_resolution(photo, result, strategy)
    assert full.size == photo.size
    out, src = np.asarray(full), np.asarray(photo)
    outside = np.asarray(result.mask) == 0
    assert outside.sum() > 0.7 * outside.size
    assert np.array_equal(out[outside], src[outside])
    # ... and inside, the model did change the picture.
    inside = np.asarray(result.mask) == 255
    assert np.abs(out[inside].astype(int) - src[inside]).mean() > 5


def test_only_masked_processes_a_padded_crop_at_working_size(standin_model, recipe):
    photo = _photo(320, 240)
    runner = DiffusersInpaintRunner(native_size=128)
    mask = _mask(photo.size, (150, 100, 190, 140))
    result = runner.run(photo, recipe, 1, str(standin_model), mask=mask)
    # The feathered mask's box grown by the padding, clamped to the photo.
    assert result.region == crop_region(feather(mask, 3), 8)
    left, top, right, bottom = result.region
    assert left < 150 - 8 and right > 190 + 8 and top < 100 - 8 and bottom > 140 + 8
    # A ~60 px crop is processed at the model's working size: the face gets its full resolution.
    assert result.image.size == result.model_input.size
    assert result.image.width * result.image.height > 100 * 100
    whole = runner.run(photo, dataclasses.replace(recipe, only_masked=False), 1, str(standin_model), mask=mask)
    assert whole.region == (0, 0, 320, 240)


def test_feathered_paste_back_blends_only_inside_the_blur():
    source = Image.new("RGB", (40, 20), (0, 0, 0))
    edited = Image.new("RGB", (40, 20), (200, 200, 200))
    mask = feather(_mask((40, 20), (20, 0, 40, 20)), 3)
    out = np.asarray(paste_back(source, edited, mask, (0, 0, 40, 20)))[10, :, 0]
    assert out[0] == 0 and out[-1] == 200
    assert np.all(np.diff(out.astype(int)) >= 0)  # a ramp, no step
    ramp = out[(out > 0) & (out < 200)]
    assert len(ramp) >= 6


def test_inpaint_needs_a_mask_and_a_non_empty_one(standin_model, recipe):
    runner = DiffusersInpaintRunner(native_size=64)
    with pytest.raises(ValueError, match="needs a mask"):
        runner.run(_photo(), recipe, 1, str(standin_model))
    with pytest.raises(ValueError, match="the mask is empty"):
        runner.run(_photo(), recipe, 1, str(standin_model), mask=Image.new("L", (160, 120), 0))
