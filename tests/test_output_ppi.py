"""Output resolution (``[output] ppi``): the density a print lab reads, in every place it may look."""

from __future__ import annotations

import pytest
from PIL import Image

from photobatch.daemon.samples import write_sample_photo
from photobatch.plugins.output_options import writer_options
from photobatch.recipes.schema import RecipeError, recipe_from_dict


def test_the_field_is_checked_and_counts_only_when_set():
    plain = recipe_from_dict({"name": "print"})
    assert "ppi" not in plain.params()["output"]  # older outputs do not turn stale
    lab = recipe_from_dict({"name": "print", "output": {"ppi": 300}})
    assert lab.params()["output"]["ppi"] == 300 and lab.fingerprint != plain.fingerprint
    for bad in (-1, 10_001):
        with pytest.raises(RecipeError, match=rf"output.ppi must be in \[0, 10000\], got {bad}"):
            recipe_from_dict({"name": "print", "output": {"ppi": bad}})
    with pytest.raises(RecipeError, match="output.ppi"):
        recipe_from_dict({"name": "print", "output": {"ppi": "300"}})


@pytest.mark.parametrize("fmt, depth, metadata", [
    ("jpeg", None, "all"), ("jpeg", None, "none"), ("png", 8, "all"), ("png", 16, "no-location"),
    ("tiff", 16, "all"), ("tiff", 8, "none")])
def test_every_output_carries_the_resolution_asked_for(tmp_path, identity_session, exiftool,
                                                       fmt, depth, metadata):
    source = write_sample_photo(tmp_path / "IMG_0001.JPG", size=(120, 80))
    with Image.open(source) as img:
        assert img.info["dpi"] == (72, 72)  # what the camera wrote
    output = {"format": fmt, "ppi": 300, "metadata": metadata}
    if depth:
        output["bit_depth"] = depth
    recipe = recipe_from_dict({"name": "print", "runner": "identity", "output": output})
    outcome = identity_session.process(source, recipe)
    assert outcome.status == "done", outcome.error
    # The file's own field (JFIF density, PNG pHYs, TIFF tags), which Pillow and browsers read.
    with Image.open(outcome.output) as out:
        assert out.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    tags = exiftool.json(outcome.output, "-a", "-G1")
    if metadata != "none":
        # The EXIF copied from the camera says 300 too, not its 72: no two answers in one file.
        assert (tags["IFD0:XResolution"], tags["IFD0:YResolution"],
                tags["IFD0:ResolutionUnit"]) == (300, 300, 2)
    assert not [w for w in exiftool.warnings(outcome.output) if "Resolution" in w]


def test_without_ppi_the_source_resolution_is_kept(tmp_path, identity_session, exiftool):
    source = write_sample_photo(tmp_path / "IMG_0001.JPG", size=(120, 80))
    outcome = identity_session.process(source, recipe_from_dict({"name": "web", "runner": "identity"}))
    tags = exiftool.json(outcome.output, "-a", "-G1")
    assert (tags["IFD0:XResolution"], tags["IFD0:YResolution"]) == (72, 72)


def test_a_writer_plugin_gets_ppi_only_when_its_write_takes_it():
    class Plain:
        bit_depths = (8,)

        def write(self, image, path, *, quality=95, icc_profile=None, bit_depth=8, progressive=False):
            pass

    class Printing(Plain):
        def write(self, image, path, *, quality=95, icc_profile=None, bit_depth=8, progressive=False,
                  ppi=0):
            pass

    settings = recipe_from_dict({"name": "print", "output": {"ppi": 240}}).output
    assert "ppi" not in writer_options(settings, Plain(), 8)
    assert writer_options(settings, Printing(), 8)["ppi"] == 240
