"""Transparent sources: the model sees them on white, PNG and TIFF outputs get the alpha back."""

from __future__ import annotations

import json

import numpy as np
import png
import pytest
import tifffile
from PIL import Image

from photobatch.daemon.app import App
from photobatch.daemon.samples import make_scene
from photobatch.daemon.session import Session
from photobatch.plugins import hookimpl
from photobatch.plugins.builtin.pillow_reader import PillowReader
from photobatch.plugins.manager import build_plugin_manager
from photobatch.plugins.metadata import read_record, read_summary
from photobatch.plugins.transparency import straight_colours
from photobatch.recipes.schema import recipe_from_dict

SIZE = (96, 64)


def cutout_alpha(size=SIZE) -> np.ndarray:
    """A product cut-out's alpha: clear left quarter, a soft ramp, opaque right half (uint8)."""
    width, height = size
    ramp = np.clip((np.arange(width) - width / 4) / (width / 4), 0, 1)
    return np.rint(np.tile(ramp, (height, 1)) * 255).astype(np.uint8)


def write_cutout(path, *, exif_orientation: int | None = None) -> np.ndarray:
    """Write an 8-bit RGBA PNG with camera metadata; return its H x W x 4 pixels."""
    rgb = np.asarray(make_scene("portrait", SIZE, 3))
    rgba = np.dstack([rgb, cutout_alpha()])
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "FUJIFILM", "X-T5"
    if exif_orientation:
        exif[0x0112] = exif_orientation
    Image.fromarray(rgba, "RGBA").save(path, "PNG", exif=exif.tobytes())
    return rgba


def write_cutout16(path) -> np.ndarray:
    """Write a 16-bit RGBA PNG (pypng); return its H x W x 4 uint16 pixels."""
    rgb = np.asarray(make_scene("portrait", SIZE, 3)).astype(np.uint16) * 257 + 100
    alpha = cutout_alpha().astype(np.uint16) * 257
    rgba = np.dstack([rgb, alpha])
    height, width, _ = rgba.shape
    with open(path, "wb") as fh:
        png.Writer(width, height, greyscale=False, alpha=True, bitdepth=16).write(
            fh, rgba.reshape(height, -1).tolist())
    return rgba


def flattened(rgba: np.ndarray) -> np.ndarray:
    """What compositing ``rgba`` onto white gives (float, in the pixels' own scale)."""
    top = 65535.0 if rgba.dtype == np.uint16 else 255.0
    a = rgba[:, :, 3:].astype(np.float64) / top
    return rgba[:, :, :3] * a + top * (1 - a)


class Recording:
    """An identity runner that keeps what it was given."""

    name = "identity"

    def __init__(self):
        self.seen = []

    def run(self, image, recipe, seed, model):
        from photobatch.plugins.diffusion.runner import RunOutput

        self.seen.append(np.asarray(image).copy())
        return RunOutput(image.copy(), str(model), None, "cpu", image.size)


class PlainWebp:
    """A third-party writer as docs/plugins.md shows it: no ``keeps_alpha``, no ``alpha``."""

    name = "webp"
    extension = ".webp"

    def write(self, image, path, *, quality=95, icc_profile=None):
        image.save(path, format="WEBP", lossless=True, icc_profile=icc_profile)


class Plugin:
    def __init__(self, runner):
        self.runner = runner

    @hookimpl
    def photobatch_runners(self):
        return [self.runner]

    @hookimpl
    def photobatch_writers(self):
        return [PlainWebp()]


@pytest.fixture()
def runner():
    return Recording()


@pytest.fixture()
def session(tmp_path, standin_model, runner):
    app = App(catalog_path=tmp_path / "catalog.db", model=str(standin_model),
              plugin_manager=build_plugin_manager(entrypoints=False, extra=[Plugin(runner)]))
    yield Session(app, tmp_path / "out")
    app.close()


def recipe(fmt: str, **output) -> object:
    return recipe_from_dict({"name": f"same-{fmt}", "runner": "identity",
                             "output": {"format": fmt, **output}})


def cutout_through(tmp_path, session, fmt: str, **output):
    """(the cut-out's RGBA pixels, the outcome of running it to ``fmt``), asserted done."""
    source = tmp_path / "cutout.png"
    rgba = write_cutout(source)
    outcome = session.process(source, recipe(fmt, **output))
    assert outcome.status == "done", outcome.error
    return rgba, outcome


def test_the_model_sees_a_cutout_on_white_and_a_png_output_gets_its_alpha_back(
        tmp_path, session, runner):
    source = tmp_path / "cutout.png"
    rgba = write_cutout(source)
    before = source.read_bytes()
    outcome = session.process(source, recipe("png"))
    assert outcome.status == "done", outcome.error
    seen = runner.seen[0].astype(np.float64)
    assert np.abs(seen - flattened(rgba)).max() <= 1  # composited onto white for the model
    assert seen[:, : SIZE[0] // 4].min() == 255
    with Image.open(outcome.output) as out:
        assert out.mode == "RGBA" and out.size == SIZE
        got = np.asarray(out)
    assert np.array_equal(got[:, :, 3], rgba[:, :, 3])
    solid = rgba[:, :, 3] == 255
    assert np.array_equal(got[solid][:, :3], rgba[solid][:, :3])
    # Edges lose the white they were mixed with: no light fringe on a dark backdrop.
    edge = (rgba[:, :, 3] >= 64) & ~solid
    assert edge.any()
    assert np.abs(got[edge][:, :3].astype(int) - rgba[edge][:, :3]).max() <= 4
    summary = read_summary(outcome.output)
    assert (summary["make"], summary["model"]) == ("FUJIFILM", "X-T5")
    assert read_record(outcome.output)["Recipe"] == "same-png"
    assert source.read_bytes() == before


def test_a_jpeg_output_of_a_cutout_stays_flattened_onto_white(tmp_path, session):
    rgba, outcome = cutout_through(tmp_path, session, "jpeg", quality=100)
    with Image.open(outcome.output) as out:
        assert out.mode == "RGB"
        got = np.asarray(out).astype(np.float64)
    assert np.abs(got - flattened(rgba)).mean() < 3


def test_a_writer_that_does_not_keep_alpha_gets_the_flattened_picture_and_no_alpha(
        tmp_path, session):
    rgba, outcome = cutout_through(tmp_path, session, "webp")
    with Image.open(outcome.output) as out:
        assert out.mode == "RGB"
        got = np.asarray(out).astype(np.float64)
    assert np.abs(got - flattened(rgba)).max() <= 1


def test_sixteen_bit_cutouts_are_flattened_for_the_model_and_kept_at_sixteen_bits(
        tmp_path, session, runner):
    source = tmp_path / "cutout16.png"
    rgba = write_cutout16(source)
    decoded = PillowReader().read(source)
    assert decoded.bits == 16 and decoded.alpha.dtype == np.uint16
    assert np.array_equal(decoded.alpha, rgba[:, :, 3])
    # Before, a 16-bit source's transparent pixels reached the model as whatever colour they
    # stored; they are white, as in 8-bit pictures.
    assert np.abs(decoded.pixels16 - flattened(rgba)).max() <= 1
    outcome = session.process(source, recipe("png"))
    assert outcome.status == "done", outcome.error
    assert runner.seen[0][:, : SIZE[0] // 4].min() == 255
    width, height, rows, info = png.Reader(filename=str(outcome.output)).asDirect()
    assert (info["bitdepth"], info["planes"], info["alpha"]) == (16, 4, True)
    got = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, 4)
    assert np.array_equal(got[:, :, 3], rgba[:, :, 3])
    solid = rgba[:, :, 3] == 65535
    # The identity runner hands back 8-bit pictures (the diffusers runner's result goes
    # through a 16-bit detail transfer): equal within one 8-bit level.
    assert np.abs(got[solid][:, :3].astype(int) - rgba[solid][:, :3]).max() <= 257


def test_a_tiff_output_keeps_unassociated_alpha_and_its_metadata(tmp_path, session):
    rgba, outcome = cutout_through(tmp_path, session, "tiff", bit_depth=8)
    with tifffile.TiffFile(outcome.output) as tif:
        page = tif.pages[0]
        assert page.extrasamples == (tifffile.EXTRASAMPLE.UNASSALPHA,)
        got = page.asarray()
    assert got.shape == (SIZE[1], SIZE[0], 4)
    assert np.array_equal(got[:, :, 3], rgba[:, :, 3])
    assert read_summary(outcome.output)["make"] == "FUJIFILM"
    with Image.open(outcome.output) as out:  # what other applications see
        assert out.mode == "RGBA"


def test_a_premultiplied_tiff_source_is_flattened_without_darkening_its_edges(tmp_path):
    rgba = write_cutout16(tmp_path / "unused.png")
    a = rgba[:, :, 3:].astype(np.float64) / 65535
    premultiplied = np.dstack([np.rint(rgba[:, :, :3] * a), rgba[:, :, 3]]).astype(np.uint16)
    source = tmp_path / "layer.tif"
    tifffile.imwrite(source, premultiplied, photometric="rgb", extrasamples=("assocalpha",))
    decoded = PillowReader().read(source)
    assert decoded.bits == 16
    assert np.abs(decoded.pixels16 - flattened(rgba)).max() <= 2
    assert np.array_equal(decoded.alpha, rgba[:, :, 3])


def test_alpha_turns_with_the_picture_and_follows_a_smaller_output(tmp_path, session):
    source = tmp_path / "turned.png"
    rgba = write_cutout(source, exif_orientation=6)  # shown turned 90 degrees clockwise
    outcome = session.process(source, recipe("png", max_side=48))
    assert outcome.status == "done", outcome.error
    with Image.open(outcome.output) as out:
        assert out.mode == "RGBA" and out.size == (32, 48)
        alpha = np.asarray(out.getchannel("A")).astype(int)
    upright = np.rot90(rgba[:, :, 3], -1)  # the clear quarter is now at the top
    expected = np.asarray(Image.fromarray(upright).resize((32, 48), Image.Resampling.LANCZOS))
    assert np.abs(alpha - expected).max() <= 1
    assert alpha[:8].max() == 0 and alpha[-20:].min() == 255


def test_an_opaque_rgba_photo_is_written_without_an_alpha_channel(tmp_path, session):
    source = tmp_path / "opaque.png"
    rgb = np.asarray(make_scene("landscape", SIZE, 1))
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), "RGBA").save(source)
    assert PillowReader().read(source).alpha is None
    outcome = session.process(source, recipe("png"))
    with Image.open(outcome.output) as out:
        assert out.mode == "RGB"
        assert np.array_equal(np.asarray(out), rgb)


def test_a_colour_key_png_counts_as_transparent(tmp_path):
    source = tmp_path / "keyed.png"
    rgb = np.asarray(make_scene("landscape", SIZE, 1)).copy()
    rgb[:, :10] = (1, 2, 3)
    Image.fromarray(rgb, "RGB").save(source, transparency=(1, 2, 3))
    decoded = PillowReader().read(source)
    assert decoded.alpha is not None and decoded.alpha[:, :10].max() == 0
    assert np.asarray(decoded.image)[:, :10].min() == 255


def test_straight_colours_give_back_the_source_and_carry_the_edit_without_fringes():
    rgba = np.dstack([np.asarray(make_scene("portrait", SIZE, 5)), cutout_alpha()])
    source, a = rgba[:, :, :3].astype(np.float64), rgba[:, :, 3]
    flat = np.rint(flattened(rgba)).astype(np.uint8)
    same = np.asarray(straight_colours(Image.fromarray(flat), Image.fromarray(flat), a)).astype(int)
    seen = a >= 32
    assert np.abs(same[seen] - source[seen]).max() <= 4  # flattening's rounding grows as 1/alpha
    # The model darkens everything by a fifth, the white around the cut-out too. Each edge
    # pixel stays within (1 - alpha) of that change of its darkened colour: no dark fringe,
    # where dividing by alpha (removing a white matte) would go black at the thin edge.
    darker = np.rint(flat * 0.8).astype(np.uint8)
    got = np.asarray(straight_colours(Image.fromarray(darker), Image.fromarray(flat), a))
    edge = (a > 0) & (a < 255)
    off = np.abs(got[edge].astype(float) - 0.8 * source[edge])
    allowed = 0.2 * 255 * (1 - a[edge] / 255.0)[:, None] + 2
    assert (off <= allowed).all()
    assert np.abs(got[a == 255].astype(float) - darker[a == 255]).max() == 0


def test_a_heic_cutout_is_flattened_with_its_alpha_kept(tmp_path):
    import pillow_heif

    from photobatch.plugins.builtin.heif_reader import HeifReader

    rgba = np.dstack([np.asarray(make_scene("portrait", SIZE, 3)), cutout_alpha()])
    source = tmp_path / "cutout.heic"
    pillow_heif.from_pillow(Image.fromarray(rgba, "RGBA")).save(source, quality=95)
    decoded = HeifReader().read(source)
    assert decoded.alpha is not None and decoded.alpha.shape == (SIZE[1], SIZE[0])
    assert np.abs(decoded.alpha.astype(int) - rgba[:, :, 3]).max() <= 8  # lossy alpha plane
    assert np.asarray(decoded.image)[:, : SIZE[0] // 5].min() >= 245


def test_inspect_says_which_photos_have_an_alpha_channel(tmp_path):
    from click.testing import CliRunner

    from photobatch.daemon.cli import main

    cutout = tmp_path / "cutout.png"
    write_cutout(cutout)
    opaque = tmp_path / "photo.png"
    Image.fromarray(np.asarray(make_scene("landscape", SIZE, 1)), "RGB").save(opaque)
    shown = CliRunner().invoke(main, ["inspect", str(cutout), str(opaque)])
    assert shown.exit_code == 0, shown.output
    assert "png, 96x64 with an alpha channel (PNG and TIFF outputs keep its transparency)" \
        in shown.output
    assert "png, 96x64, " in shown.output  # the opaque one
    records = CliRunner().invoke(main, ["inspect", "--json", str(cutout), str(opaque)]).output
    assert [r["transparency"] for r in json.loads(records)] == [True, False]


def test_the_gallery_shows_a_transparent_output_over_a_checkerboard(tmp_path, session):
    from click.testing import CliRunner

    from photobatch.daemon.cli import main

    rgba, outcome = cutout_through(tmp_path, session, "png")
    session.app.close()
    gallery = tmp_path / "gallery"
    result = CliRunner().invoke(main, ["--catalog", str(tmp_path / "catalog.db"), "export",
                                       "gallery", "--out", str(gallery)])
    assert result.exit_code == 0, result.output
    [after] = (gallery / "previews").glob("*-a.jpg")  # the output's preview ("-b": before)
    with Image.open(after) as img:
        shown = np.asarray(img.convert("L").resize(SIZE)).astype(int)
    clear = rgba[:, :, 3] == 0
    # Where the cut-out is clear: light and dark squares (not the white the model saw); where
    # it is solid: the picture.
    assert shown[clear].max() >= 240 and shown[clear].min() <= 215
    solid = rgba[:, :, 3] == 255
    assert np.abs(shown[solid] - np.asarray(Image.fromarray(rgba[:, :, :3]).convert("L"))[solid]).mean() < 12
