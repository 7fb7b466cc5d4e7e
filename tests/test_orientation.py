"""Uprightness: a pass-through runner plugin shows the session's pixels are upright and full size.

The stand-in model's random weights turn pictures into noise, so pixel-level checks of what the
session does around the model use a runner that returns its input, registered through the same
hook a third-party plugin uses.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from photobatch.daemon.app import App
from photobatch.daemon.samples import write_sample_photo
from photobatch.daemon.session import Session
from photobatch.plugins import hookimpl
from photobatch.plugins.diffusion.runner import RunOutput, working_size
from photobatch.plugins.manager import build_plugin_manager
from photobatch.recipes.schema import recipe_from_dict


class PassThrough:
    """Returns the model-size input unchanged."""

    name = "passthrough"

    def run(self, image, recipe, seed, model):
        size = working_size(image.width, image.height, 512)
        small = image.resize(size, Image.Resampling.LANCZOS)
        return RunOutput(small, model, None, "cpu", size, small)  # output = input: no edit


class PassThroughPlugin:
    @hookimpl
    def photobatch_runners(self):
        return [PassThrough()]


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_output_pixels_are_upright_at_full_size(tmp_path, orientation, standin_model):
    src = write_sample_photo(tmp_path / f"o{orientation}.jpg", size=(300, 200),
                             orientation=orientation, seed=3)
    app = App(catalog_path=tmp_path / "c.db", model=str(standin_model),
              plugin_manager=build_plugin_manager(extra=[PassThroughPlugin()]))
    recipe = recipe_from_dict({"name": "same", "runner": "passthrough"})
    outcome = Session(app, tmp_path / "out").process(src, recipe)
    assert outcome.status == "done", outcome.error
    with Image.open(src) as s:
        upright = ImageOps.exif_transpose(s).convert("RGB")
    with Image.open(outcome.output) as o:
        assert o.size == upright.size == (300, 200)
        a = np.asarray(upright.resize((30, 20)), dtype=float)
        b = np.asarray(o.convert("RGB").resize((30, 20)), dtype=float)
    assert np.abs(a - b).mean() < 6  # same picture, only JPEG and resampling losses
    # And a rotated output would be far off: the check can fail.
    turned = np.asarray(upright.rotate(180).resize((30, 20)), dtype=float)
    assert np.abs(turned - b).mean() > 20


def test_a_16_bit_source_keeps_its_16_bit_detail_through_detail_transfer(tmp_path, standin_model):
    import tifffile

    from photobatch.daemon.sample_formats import write_sample_tiff16

    src = write_sample_tiff16(tmp_path / "deep.tif", size=(300, 200))
    app = App(catalog_path=tmp_path / "c.db", model=str(standin_model),
              plugin_manager=build_plugin_manager(extra=[PassThroughPlugin()]))
    recipe = recipe_from_dict({"name": "deep", "runner": "passthrough",
                               "full_resolution": "detail-transfer",
                               "output": {"format": "lossless"}})
    outcome = Session(app, tmp_path / "out").process(src, recipe)
    assert outcome.status == "done", outcome.error
    source = tifffile.imread(src)
    output = tifffile.imread(outcome.output)
    assert output.dtype == np.uint16 and output.shape == source.shape
    # An identity edit through detail transfer gives the 16-bit original back within about one
    # 8-bit level (the model-size pair is 8-bit), and not 8-bit values widened (v * 257).
    assert np.abs(output.astype(int) - source.astype(int)).mean() < 2 * 257
    assert (output % 257 == 0).mean() < 0.05


@pytest.mark.parametrize("fmt", ["jpeg", "lossless"])
def test_max_side_fits_the_output_and_its_exif_dimensions(tmp_path, standin_model, fmt):
    import pyexiv2

    from photobatch.daemon.sample_formats import write_sample_tiff16

    src = (write_sample_photo(tmp_path / "big.jpg", size=(300, 200), seed=4) if fmt == "jpeg"
           else write_sample_tiff16(tmp_path / "big.tif", size=(300, 200)))
    app = App(catalog_path=tmp_path / "c.db", model=str(standin_model),
              plugin_manager=build_plugin_manager(extra=[PassThroughPlugin()]))
    recipe = recipe_from_dict({"name": "small", "runner": "passthrough",
                               "full_resolution": "detail-transfer",
                               "output": {"format": fmt, "max_side": 120}})
    outcome = Session(app, tmp_path / "out").process(src, recipe)
    assert outcome.status == "done", outcome.error
    with Image.open(outcome.output) as img:
        assert img.size == (120, 80)
    with pyexiv2.Image(str(outcome.output)) as meta:
        exif = meta.read_exif()
    # A JPEG's size in EXIF is PixelX/YDimension; a TIFF's is its IFD0 ImageWidth/ImageLength.
    keys = (("Exif.Photo.PixelXDimension", "Exif.Photo.PixelYDimension") if fmt == "jpeg"
            else ("Exif.Image.ImageWidth", "Exif.Image.ImageLength"))
    assert (exif.get(keys[0]), exif.get(keys[1])) == ("120", "80")
