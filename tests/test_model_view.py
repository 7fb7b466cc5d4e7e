"""The model sees sRGB, the photo keeps its own space: an Adobe RGB photo is shown to the runner
converted to sRGB, and its output comes back in Adobe RGB with wide-gamut colours kept."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from fakes import runner_plugin
from PIL import Image, ImageCms

from photobatch.daemon.app import App
from photobatch.daemon.session import Session
from photobatch.plugins.colour import from_srgb, is_srgb, profile_for, srgb_profile, to_srgb
from photobatch.plugins.manager import build_plugin_manager

ADOBE = profile_for("adobe-rgb")


def test_is_srgb_knows_srgb_by_its_primaries():
    vendor = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # other bytes
    assert is_srgb(None) and is_srgb(srgb_profile()) and is_srgb(vendor)
    assert not is_srgb(ADOBE) and not is_srgb(profile_for("prophoto"))
    gray = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    assert not is_srgb(gray)


class ShiftRunner:
    """Records the picture it is given; returns it with ``shift`` added to red (sRGB levels)."""

    name = "shift"

    def __init__(self, shift: int):
        self.shift = shift
        self.seen: list[np.ndarray] = []

    def run(self, image, recipe, seed, model):
        self.seen.append(np.asarray(image).copy())
        small = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
        pixels = np.asarray(small).astype(int)
        pixels[..., 0] += self.shift
        out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        return SimpleNamespace(image=out, model_input=small, model_id=model, model_hash=None,
                               device="cpu", working_size=small.size)

    def plugin(self):
        return runner_plugin(self)


def _adobe_photo(path):
    """A 64x48 Adobe RGB JPEG: a sky-blue half (inside sRGB) and a pure Adobe green half (outside
    sRGB's gamut). Returns its decoded pixels."""
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :32] = (70, 120, 190)
    pixels[:, 32:] = (0, 255, 0)
    Image.fromarray(pixels).save(path, quality=100, subsampling=0, icc_profile=ADOBE)
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _run(tmp_path, shift: int, color_space: str = "source"):
    runner = ShiftRunner(shift)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "s.toml").write_text(
        f'name = "s"\nrunner = "shift"\nfull_resolution = "detail-transfer"\n'
        f'[output]\nformat = "png"\ncolor_space = "{color_space}"\n', encoding="utf-8")
    app = App(catalog_path=tmp_path / "c.db", recipe_dirs=[recipes], model="test/model",
              plugin_manager=build_plugin_manager(entrypoints=False, extra=[runner.plugin()]))
    source = tmp_path / "A.jpg"
    original = _adobe_photo(source)
    outcome = Session(app, tmp_path / "out").process(source, app.recipes["s"])
    assert outcome.status == "done", outcome.error
    with Image.open(outcome.output) as img:
        return runner, original, np.asarray(img.convert("RGB")).astype(int), img.info.get("icc_profile")


def test_the_model_is_shown_srgb_and_the_output_keeps_the_photos_space(tmp_path):
    runner, original, out, icc = _run(tmp_path, shift=0)
    seen = runner.seen[0].astype(int)
    # What the model saw is the photo's colours in sRGB, not its Adobe RGB numbers.
    expected = np.asarray(to_srgb(Image.fromarray(original.astype(np.uint8)), ADOBE)).astype(int)
    assert np.abs(seen - expected).max() <= 1
    assert np.abs(seen[:, :32] - original[:, :32]).mean() > 5  # the numbers differ between spaces
    # An edit that changes nothing leaves the photo as it was, in its own space: Adobe RGB's
    # pure green, which sRGB cannot hold, survives the trip through the sRGB model.
    assert icc == ADOBE
    assert np.abs(out - original).max() <= 2
    assert out[:, 40:, 1].min() >= 253 and out[:, 40:, 0].max() <= 2


def test_the_models_change_arrives_in_the_photos_space(tmp_path):
    _, original, out, icc = _run(tmp_path, shift=30)
    # The sky got redder, by what +30 sRGB levels of red is in Adobe RGB.
    sky = Image.fromarray(np.uint8(original[:, :16]))
    srgb = np.asarray(to_srgb(sky, ADOBE)).astype(int)
    srgb[..., 0] += 30
    want = np.asarray(from_srgb(Image.fromarray(np.uint8(np.clip(srgb, 0, 255))), ADOBE)).astype(int)
    assert icc == ADOBE
    assert np.abs(out[8:40, 4:12] - want[8:40, 4:12]).mean() < 2.5
    assert out[:, :16, 0].mean() > original[:, :16, 0].mean() + 5


def test_an_srgb_output_of_an_adobe_photo_is_converted_once(tmp_path):
    _, original, out, icc = _run(tmp_path, shift=0, color_space="srgb")
    assert icc == srgb_profile()
    expected = np.asarray(to_srgb(Image.fromarray(original.astype(np.uint8)), ADOBE)).astype(int)
    assert np.abs(out - expected).max() <= 2


def test_a_full_size_composite_keeps_the_source_pixels_it_did_not_touch():
    from photobatch.daemon.model_view import composite_in_source_space

    rng = np.random.default_rng(1)
    source = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    view = to_srgb(source, ADOBE)
    edited = np.array(view)
    edited[10:20, 10:30] = (200, 150, 120)  # a retouched face
    out = np.asarray(composite_in_source_space(Image.fromarray(edited), view, source, ADOBE))
    untouched = np.ones((40, 60), bool)
    untouched[10:20, 10:30] = False
    assert np.array_equal(out[untouched], np.asarray(source)[untouched])  # bit for bit
    want = np.asarray(from_srgb(Image.new("RGB", (1, 1), (200, 150, 120)), ADOBE))[0, 0]
    assert np.abs(out[10:20, 10:30].astype(int) - want).max() <= 1


def test_a_raw_is_rendered_straight_into_an_adobe_rgb_output(tmp_path):
    from photobatch.daemon.sample_formats import write_sample_dng
    from photobatch.plugins.builtin.raw_reader import RawReader

    runner = ShiftRunner(0)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "s.toml").write_text(
        'name = "s"\nrunner = "shift"\nfull_resolution = "detail-transfer"\n'
        '[output]\nformat = "tiff"\nbit_depth = 16\ncolor_space = "adobe-rgb"\n', encoding="utf-8")
    app = App(catalog_path=tmp_path / "c.db", recipe_dirs=[recipes], model="test/model",
              plugin_manager=build_plugin_manager(entrypoints=False, extra=[runner.plugin()]))
    raw = tmp_path / "R.DNG"
    write_sample_dng(raw, size=(96, 64))
    outcome = Session(app, tmp_path / "out").process(raw, app.recipes["s"])
    assert outcome.status == "done", outcome.error
    import tifffile

    stored = tifffile.imread(outcome.output)
    assert stored.dtype == np.uint16
    out = stored.astype(int)
    with Image.open(outcome.output) as img:
        assert img.info.get("icc_profile") == ADOBE
    # Rendered by LibRaw into Adobe RGB at 16 bits, not rendered to sRGB and converted (which
    # would clip what sRGB cannot hold and keep only 8 bits).
    wide = RawReader(color_space="adobe-rgb").read(raw).pixels16.astype(int)
    assert np.abs(out - wide).max() <= 64 * 3  # within a level or so of 8 bits, at 16 bits
