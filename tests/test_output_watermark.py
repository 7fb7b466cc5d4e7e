"""``[output] watermark``: the photographer's copyright line on every output, at 8 and 16 bits."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from photobatch.daemon.sample_formats import sample_tiff16_pixels
from photobatch.daemon.samples import write_sample_photo
from photobatch.plugins.watermark import draw_watermark
from photobatch.recipes.schema import RecipeError, recipe_from_dict

MARK = "© 2026 Jane Doe"


def test_the_field_is_checked_and_counts_only_when_set():
    plain = recipe_from_dict({"name": "proof"})
    assert "watermark" not in plain.params()["output"]  # older outputs do not turn stale
    marked = recipe_from_dict({"name": "proof", "output": {"watermark": MARK}})
    assert marked.params()["output"]["watermark"] == MARK and marked.fingerprint != plain.fingerprint
    with pytest.raises(RecipeError, match="output.watermark must be one line of at most 200"):
        recipe_from_dict({"name": "proof", "output": {"watermark": "two\nlines"}})


@pytest.mark.parametrize("output", [{"format": "jpeg", "quality": 100},
                                    {"format": "tiff", "bit_depth": 16}])
def test_the_mark_sits_in_the_lower_right_corner_and_nowhere_else(tmp_path, identity_session, output):
    source = write_sample_photo(tmp_path / "IMG_0001.JPG", size=(300, 200), seed=3)

    def pixels(recipe):
        outcome = identity_session.process(source, recipe)
        assert outcome.status == "done", outcome.error
        if outcome.output.suffix == ".tif":
            return tifffile.imread(outcome.output).astype(np.int64)
        with Image.open(outcome.output) as img:
            return np.asarray(img).astype(np.int64)

    plain = pixels(recipe_from_dict({"name": "plain", "runner": "identity", "output": output}))
    marked = pixels(recipe_from_dict({"name": "proof", "runner": "identity",
                                      "output": {**output, "watermark": MARK}}))
    changed = np.argwhere(np.abs(marked - plain).max(axis=2) > (2 if output["format"] == "jpeg" else 0))
    assert len(changed) > 100  # the text is there
    rows, cols = changed[:, 0], changed[:, 1]
    assert rows.min() > 200 * 0.8 and cols.min() > 300 * 0.4  # lower right, where Lightroom puts it


def test_sixteen_bit_pictures_get_the_eight_bit_mark_without_losing_their_low_byte():
    pixels = sample_tiff16_pixels((300, 200))
    marked = draw_watermark(pixels, MARK)
    assert marked.dtype == np.uint16 and marked.shape == pixels.shape
    eight = np.asarray(draw_watermark(Image.fromarray((pixels >> 8).astype(np.uint8)), MARK))
    touched = np.any(marked != pixels, axis=2)
    assert touched.sum() > 100 and not touched[:160].any()  # the corner only
    # The same mark as at 8 bits (to a level), and the picture around it untouched to the bit.
    assert np.abs(marked.astype(np.int64) // 257 - eight).max() <= 1
    assert np.array_equal(marked[~touched], pixels[~touched])


def test_the_mark_can_take_the_year_and_artist_from_the_photo(tmp_path, identity_session):
    source = write_sample_photo(tmp_path / "IMG_0001.JPG", size=(300, 200), seed=3,
                                artist="Ana Lima", date_taken="2025:09:02 08:00:00")
    plain = identity_session.process(source, recipe_from_dict(
        {"name": "plain", "runner": "identity", "output": {"format": "png"}}))
    marked = identity_session.process(source, recipe_from_dict(
        {"name": "proof", "runner": "identity",
         "output": {"format": "png", "watermark": "© {year} {artist}"}}))
    with Image.open(plain.output) as a, Image.open(marked.output) as b:
        expected = draw_watermark(a.convert("RGB"), "© 2025 Ana Lima")
        assert np.array_equal(np.asarray(b.convert("RGB")), np.asarray(expected))


def test_a_photo_without_the_metadata_its_mark_takes_fails_and_is_not_retried(tmp_path, identity_session):
    source = write_sample_photo(tmp_path / "IMG_0002.JPG", size=(120, 80), artist="")
    outcome = identity_session.process(source, recipe_from_dict(
        {"name": "proof", "runner": "identity", "output": {"watermark": "© {artist}"}}))
    assert outcome.status == "failed" and outcome.lasting and outcome.output is None
    assert outcome.error == ("error while watermarking the output of IMG_0002.JPG: the watermark "
                             "takes {artist} from the photo, whose metadata has none")
    assert not list((tmp_path / "out").glob("IMG_0002*"))  # no proof goes out unmarked


def test_a_watermark_template_is_checked_when_the_recipe_loads():
    with pytest.raises(RecipeError, match=r"output.watermark has an unknown token \{name\} "
                                          r"\(known: \{artist\} \{copyright\} \{year\}\)"):
        recipe_from_dict({"name": "proof", "output": {"watermark": "© {name}"}})
    with pytest.raises(RecipeError, match="output.watermark is not a valid template"):
        recipe_from_dict({"name": "proof", "output": {"watermark": "© {artist"}})
