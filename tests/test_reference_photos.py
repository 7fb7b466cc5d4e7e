"""Reference photos are read as photos are: upright, in sRGB, camera RAW and HEIC included,
once per file for a shoot; a reference that cannot be read is refused before any photo."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import cli_shoot, last_run
from PIL import Image

from photobatch.daemon.sample_bad_inputs import write_dng_without_data
from photobatch.daemon.sample_formats import write_sample_dng, write_sample_heic
from photobatch.daemon.samples import make_scene, write_sample_photo
from photobatch.plugins.colour import profile_for, to_srgb
from photobatch.plugins.reference_photos import ReferenceReader, builtin_readers, read_reference


def _diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, float) - np.asarray(b.resize(a.size), float)).mean())


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_a_camera_jpeg_turned_by_its_exif_is_read_upright(tmp_path, orientation):
    """Cameras store a portrait frame sideways and say so in EXIF: the reference is the picture
    the photographer sees, not the stored one Pillow alone gives."""
    turned = write_sample_photo(tmp_path / "turned.jpg", size=(120, 80), orientation=orientation, seed=3)
    scene = make_scene("landscape", (120, 80), seed=3)
    got = read_reference(turned)
    assert got.mode == "RGB" and got.size == (120, 80)
    assert _diff(got, scene) < 8
    with Image.open(turned) as stored:
        assert _diff(stored.convert("RGB"), scene) > 2 * _diff(got, scene)


def test_a_wide_gamut_reference_is_converted_to_srgb(tmp_path):
    """An Adobe RGB export: its numbers mean more saturated colours than the same numbers in
    sRGB, and the colour transfer and the models read sRGB."""
    pixels = Image.fromarray(np.full((48, 64, 3), (60, 160, 70), np.uint8))
    path = tmp_path / "adobe.png"
    pixels.save(path, icc_profile=profile_for("adobe-rgb"))
    got = np.asarray(read_reference(path), int)
    expected = np.asarray(to_srgb(pixels, profile_for("adobe-rgb")), int)
    assert np.array_equal(got, expected)
    # sRGB numbers of the same green are further apart: more saturated than read as is.
    assert np.ptp(got[0, 0]) > np.ptp(np.asarray(pixels)[0, 0]) + 10


def test_a_raw_and_a_heic_reference_are_decoded(tmp_path):
    dng = write_sample_dng(tmp_path / "ref.dng", size=(192, 128), orientation=6, seed=4)
    got = read_reference(dng)
    # A half-size decode (references are used at a megapixel or less), upright.
    assert got.size == (96, 64)
    scene = make_scene("landscape", (96, 64), seed=4)
    assert _diff(got, scene) < _diff(got.transpose(Image.Transpose.ROTATE_180), scene)
    heic = write_sample_heic(tmp_path / "ref.heic", size=(120, 80), orientation=6, seed=5)
    assert read_reference(heic).size == (120, 80)


def test_what_cannot_be_read_is_named_with_its_reason(tmp_path):
    with pytest.raises(ValueError) as err:
        read_reference(tmp_path / "missing.jpg")
    assert str(err.value) == (f"ip_adapter reference {tmp_path / 'missing.jpg'} cannot be read: "
                              "No such file or directory")
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(ValueError, match="notes.jpg cannot be read: no reader for this format"):
        read_reference(text)
    cut = write_dng_without_data(tmp_path / "cut.dng", write_sample_dng(tmp_path / "whole.dng", size=(64, 48)))
    with pytest.raises(ValueError, match="cut.dng cannot be read: "):
        read_reference(cut)
    with pytest.raises(ValueError, match="needs a reference photo"):
        read_reference("")


def test_a_reference_is_decoded_once_for_a_shoot_and_again_when_it_changes(tmp_path):
    decodes = []

    class Counting:
        def __init__(self, reader):
            self.reader = reader

        def accept(self, head, path):
            return self.reader.accept(head, path)

        def read(self, path, **kwargs):
            decodes.append(path)
            return self.reader.read(path, **kwargs)

    read = ReferenceReader([Counting(r) for r in builtin_readers()])
    path = write_sample_photo(tmp_path / "ref.jpg", size=(96, 64), seed=1)
    first = read(path)
    first.paste((0, 0, 0), (0, 0, 10, 10))  # a copy: the kept picture is not changed
    assert _diff(read(path), first) > 0 and len(decodes) == 1
    write_sample_photo(path, size=(64, 96), seed=2)
    assert read(path).size == (64, 96) and len(decodes) == 2


def test_style_match_takes_a_raw_reference_and_refuses_a_broken_one_before_any_photo(tmp_path):
    """A RAW from the photographer's own shoot as the look (the recipe loader used to refuse
    anything Pillow could not open); a RAW cut short is named before any photo is run."""
    from photobatch.plugins.diffusion.standin import save_standin_model

    klein = str(save_standin_model(tmp_path / "klein", kind="flux2"))
    dng = write_sample_dng(tmp_path / "look.dng", size=(192, 128), orientation=6, seed=4)
    cut = write_dng_without_data(tmp_path / "cut.dng", dng)
    recipe = 'extends = "style-match"\nname = "{name}"\n\n[ip_adapter]\nreference = "{ref}"\n'
    run, _ = cli_shoot(tmp_path, raw=recipe.format(name="raw", ref=dng),
                       broken=recipe.format(name="broken", ref=cut))
    refused = run("broken", klein)
    assert refused.exit_code == 1
    assert f"recipe 'broken': ip_adapter reference {cut} cannot be read: " in refused.output
    assert not (tmp_path / "out").exists()
    done = run("raw", klein)
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["ip_adapter"]["model"] == "native"
    assert params["ip_adapter"]["reference"] == str(dng) and params["ip_adapter"]["reference_sha256"]
