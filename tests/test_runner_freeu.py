"""FreeU (ComfyUI's FreeU node, Forge's built-in): the recipe's factors, or the model family's
published ones, on the shared UNet for that recipe's calls only."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import noise_photo

from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.runner_fields import FREEU_DEFAULTS, FreeUSettings
from photobatch.recipes.schema import RecipeError, recipe_from_dict


def _recipe(**fields):
    return recipe_from_dict({"name": "f", "prompt": "a photo", "strength": 0.6, "steps": 5,
                             "sampler": "Euler", **fields})


def test_freeu_changes_the_picture_for_its_recipe_only(standin_model):
    runner = DiffusersImg2ImgRunner(native_size=64)
    model = str(standin_model)
    photo = noise_photo(seed=6)

    def run(recipe):
        return np.asarray(runner.run(photo, recipe, 2, model).image, dtype=int)

    plain = run(_recipe())
    published = run(_recipe(freeu=True))
    own = run(_recipe(freeu={"b1": 1.1, "b2": 1.2}))
    assert np.abs(published - plain).max() > 5 and np.abs(own - published).max() > 5
    assert np.array_equal(run(_recipe(freeu=True)), published)
    # The shared UNet is itself again for the next recipe.
    assert np.array_equal(run(_recipe()), plain)
    up = runner.pipeline(model)[0].unet.up_blocks
    assert all(getattr(block, "b1", None) is None for block in up)
    # Factors that change nothing give the plain picture.
    assert np.array_equal(run(_recipe(freeu={"s1": 1, "s2": 1, "b1": 1, "b2": 1})), plain)


def test_left_out_factors_are_the_families_published_ones():
    assert FreeUSettings().values("sdxl") == FREEU_DEFAULTS["sdxl"] == {"s1": 0.9, "s2": 0.2,
                                                                        "b1": 1.3, "b2": 1.4}
    assert FreeUSettings(b1=1.1).values("sd1") == {"s1": 0.9, "s2": 0.2, "b1": 1.1, "b2": 1.6}


def test_freeu_is_checked_and_counted_only_when_set():
    plain = _recipe()
    assert "freeu" not in plain.params()
    assert _recipe(freeu=True).fingerprint not in (plain.fingerprint, _recipe(freeu={"b1": 1.1}).fingerprint)
    for value, message in [(False, "freeu must be true or a table"),
                           ({"b3": 1.0}, "freeu has an unknown field 'b3'"),
                           ({"b1": 9}, "freeu b1 must be in [0.0, 4.0], got 9"),
                           ({"s1": "x"}, "freeu s1 must be a number, got 'x'")]:
        with pytest.raises(RecipeError) as err:
            _recipe(freeu=value)
        assert f"recipe 'f': {message}" in str(err.value)
