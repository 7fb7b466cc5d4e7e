"""Output sharpening: Lightroom's export "Sharpen for screen / matte / glossy paper"."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from photobatch.daemon.output_writer import fit_within
from photobatch.daemon.sample_formats import sample_tiff16_pixels, write_sample_tiff16
from photobatch.daemon.samples import make_scene, write_sample_photo
from photobatch.plugins.sharpening import sharpen_output
from photobatch.recipes.schema import RecipeError, recipe_from_dict


def change(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def test_more_for_paper_than_for_screen_and_more_with_each_amount():
    picture = make_scene("landscape", (240, 160), 2)
    assert sharpen_output(picture, "none") is picture
    by_amount = [change(sharpen_output(picture, "screen", a), picture)
                 for a in ("low", "standard", "high")]
    assert 0 < by_amount[0] < by_amount[1] < by_amount[2]
    by_use = [change(sharpen_output(picture, use), picture) for use in ("screen", "glossy", "matte")]
    assert by_use[0] < by_use[1] < by_use[2]


def test_an_edge_gets_its_overshoot_and_a_smooth_sky_stays_smooth():
    edge = np.full((40, 40, 3), 60, np.uint8)
    edge[:, 20:] = 180
    sharp = np.asarray(sharpen_output(Image.fromarray(edge), "glossy")).astype(int)
    assert sharp[:, 19].max() < 60 and sharp[:, 20].min() > 180  # darker dark, lighter light
    assert (sharp[:, :17] == 60).all() and (sharp[:, 23:] == 180).all()  # away from it: same
    rng = np.random.default_rng(0)
    sky = (np.full((40, 40, 3), 120) + rng.integers(-1, 2, (40, 40, 3))).astype(np.uint8)
    assert np.array_equal(np.asarray(sharpen_output(Image.fromarray(sky), "matte", "high")), sky)


@pytest.mark.parametrize("use", ["screen", "glossy", "matte"])
def test_sixteen_bit_pictures_are_sharpened_like_eight_bit_ones(use):
    pixels16 = sample_tiff16_pixels((240, 160))
    eight = np.asarray(sharpen_output(Image.fromarray((pixels16 >> 8).astype(np.uint8)), use))
    sixteen = sharpen_output(pixels16, use)
    assert sixteen.dtype == np.uint16 and sixteen.shape == pixels16.shape
    assert change(sixteen, pixels16) > 0
    assert change(eight, sixteen / 257.0) < 1.0  # the same mask, within a level
    assert (sixteen % 257 != 0).mean() > 0.5  # still 16 bits of information


def test_the_recipe_fields_are_checked_and_count_only_when_set():
    plain = recipe_from_dict({"name": "web"})
    assert "sharpen" not in plain.params()["output"]  # older outputs do not turn stale
    screen = recipe_from_dict({"name": "web", "output": {"sharpen": "screen"}})
    assert screen.params()["output"]["sharpen"] == "screen"
    assert screen.fingerprint != plain.fingerprint
    high = recipe_from_dict({"name": "web", "output": {"sharpen": "screen",
                                                        "sharpen_amount": "high"}})
    assert high.fingerprint != screen.fingerprint
    with pytest.raises(RecipeError, match="output.sharpen must be one of 'none', 'screen', "
                                          "'matte', 'glossy'; got 'Screen'; did you mean 'screen'"):
        recipe_from_dict({"name": "web", "output": {"sharpen": "Screen"}})
    with pytest.raises(RecipeError, match="output.sharpen_amount must be one of 'low', "
                                          "'standard', 'high'; got 'medium'"):
        recipe_from_dict({"name": "web", "output": {"sharpen_amount": "medium"}})


@pytest.mark.parametrize("use, ppi", [("screen", 0), ("matte", 600)])
def test_the_output_is_sharpened_after_it_is_fitted_to_its_size(tmp_path, identity_session,
                                                                 use, ppi):
    source = write_sample_photo(tmp_path / "big.jpg", size=(300, 200), seed=4)
    recipe = recipe_from_dict({"name": "web", "runner": "identity", "output": {
        "format": "png", "max_side": 120, "sharpen": use, "ppi": ppi}})
    outcome = identity_session.process(source, recipe)
    assert outcome.status == "done", outcome.error
    with Image.open(source) as img:
        expected = sharpen_output(fit_within(img.convert("RGB"), 120), use, ppi=ppi)
    with Image.open(outcome.output) as out:
        assert out.size == (120, 80)
        assert np.array_equal(np.asarray(out), np.asarray(expected))


def test_a_lossless_tiff_output_is_sharpened_too(tmp_path, identity_session):
    source = write_sample_tiff16(tmp_path / "scan.tif", size=(240, 160))
    recipe = recipe_from_dict({"name": "print", "runner": "identity", "output": {
        "format": "lossless", "sharpen": "matte", "sharpen_amount": "low"}})
    outcome = identity_session.process(source, recipe)
    assert outcome.status == "done", outcome.error
    output = tifffile.imread(outcome.output)
    original = tifffile.imread(source)
    assert output.dtype == np.uint16 and output.shape == original.shape
    assert change(output, original) > 100  # sharpened (in 16-bit units)
    assert change(output / 257.0, sharpen_output(original, "matte", "low") / 257.0) < 1.0


def test_paper_sharpening_follows_the_print_resolution_and_screen_does_not():
    picture = Image.fromarray(np.asarray(make_scene("landscape", (160, 120), 2)))
    at = {ppi: np.asarray(sharpen_output(picture, "matte", ppi=ppi)).astype(int)
          for ppi in (0, 300, 600)}
    assert np.array_equal(at[0], at[300])  # the radii are for 300 ppi
    # At 600 ppi the same detail on paper spans twice the pixels: a wider mask, a wider halo.
    assert change(Image.fromarray(at[600].astype(np.uint8)), picture) > \
        change(Image.fromarray(at[300].astype(np.uint8)), picture)
    assert np.array_equal(np.asarray(sharpen_output(picture, "screen", ppi=600)),
                          np.asarray(sharpen_output(picture, "screen")))
