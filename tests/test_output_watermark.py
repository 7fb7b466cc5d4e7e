"""``[output] watermark``: the photographer's copyright line on every output, at 8 and 16 bits."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from photobatch.daemon.sample_formats import sample_tiff16_pixels
from photobatch.daemon.samples import write_sample_photo
from photobatch.plugins.watermark import Mark, draw_watermark, read_logo
from photobatch.recipes.loader import load_recipe_file
from photobatch.recipes.schema import WATERMARK_POSITIONS, RecipeError, recipe_from_dict

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


# --- a graphic watermark (the photographer's logo) and where a mark sits ---------------------

def _logo(path, size=(200, 100), colour=(220, 30, 30)):
    """A logo as photographers save one: an opaque disc on a transparent PNG."""
    from PIL import ImageDraw

    logo = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((0, 0, size[1] - 1, size[1] - 1), fill=(*colour, 255))
    logo.save(path)
    return path


def _grey(size=(600, 400)):
    return Image.new("RGB", size, (128, 128, 128))


@pytest.mark.parametrize("position", WATERMARK_POSITIONS)
@pytest.mark.parametrize("kind", ["text", "logo"])
def test_a_mark_sits_at_each_of_lightroom_s_nine_anchors(tmp_path, position, kind):
    mark = (Mark(text=MARK, position=position) if kind == "text"
            else Mark(logo=read_logo(_logo(tmp_path / "logo.png")), position=position))
    changed = np.argwhere(np.any(np.asarray(draw_watermark(_grey(), mark)) != 128, axis=2))
    assert len(changed) > 50
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    centre_y, centre_x = (top + bottom) / 2, (left + right) / 2
    want_y = 0 if position.startswith("top") else 2 if position.startswith("bottom") else 1
    want_x = 0 if position.endswith("left") else 2 if position.endswith("right") else 1
    assert (int(centre_y // (400 / 3)), int(centre_x // (600 / 3))) == (want_y, want_x)
    inset = 0.03 * 400  # 3 % of the shorter side, from the edges it is anchored to
    if want_y != 1:
        edge = top if want_y == 0 else 399 - bottom
        assert inset - 6 <= edge <= inset + 6  # (the text's shadow reaches a little further)


def test_a_logo_is_drawn_at_its_size_and_opacity_and_only_where_it_is_opaque(tmp_path):
    logo = read_logo(_logo(tmp_path / "logo.png"))  # 200 x 100, a 100 px disc at its left
    marked = np.asarray(draw_watermark(_grey(), Mark(logo=logo, size=50, opacity=100,
                                                     position="center"))).astype(int)
    # 50 % of the 400 px shorter side: 200 x 100, centred; the disc fills its left 100 px, the
    # rest is clear.
    touched = np.argwhere(np.abs(marked - 128).max(axis=2) > 8)  # (past the resampling's ringing)
    (top, left), (bottom, right) = touched.min(axis=0), touched.max(axis=0)
    assert np.abs(np.array([top, left, bottom, right]) - (150, 200, 249, 299)).max() <= 1
    assert tuple(marked[200, 250]) == (220, 30, 30)  # the disc's middle, its own colour
    assert tuple(marked[200, 350]) == (128, 128, 128)  # its transparent part leaves the photo
    # A portrait frame of the same shoot gets the same mark, not one two thirds its size.
    upright = np.asarray(draw_watermark(_grey((400, 600)), Mark(logo=logo, size=50, opacity=100,
                                                                position="center"))).astype(int)
    assert (np.abs(upright - 128).max(axis=2) > 8).sum() == len(touched)
    half = np.asarray(draw_watermark(_grey(), Mark(logo=logo, size=50, opacity=50,
                                                   position="center"))).astype(int)
    assert np.abs(half[200, 250] - (np.array([220, 30, 30]) + 128) / 2).max() <= 1


def test_a_logo_keeps_its_colours_on_an_adobe_rgb_picture(tmp_path):
    from photobatch.plugins.colour import from_srgb, profile_for

    adobe = profile_for("adobe-rgb")
    logo = read_logo(_logo(tmp_path / "logo.png"))
    marked = np.asarray(draw_watermark(_grey(), Mark(logo=logo, opacity=100, position="center",
                                                     size=50), icc=adobe))
    expected = np.asarray(from_srgb(Image.new("RGB", (1, 1), (220, 30, 30)), adobe))[0, 0]
    # The logo's red as Adobe RGB numbers say it (duller numbers, the same colour on screen),
    # not sRGB's numbers read as Adobe RGB's wider, more saturated red.
    assert tuple(marked[200, 250]) == tuple(expected) and tuple(expected) != (220, 30, 30)


def test_a_logo_at_sixteen_bits_matches_the_eight_bit_one(tmp_path):
    pixels = sample_tiff16_pixels((300, 200))
    mark = Mark(logo=read_logo(_logo(tmp_path / "logo.png")), opacity=80)
    marked = draw_watermark(pixels, mark)
    eight = np.asarray(draw_watermark(Image.fromarray((pixels >> 8).astype(np.uint8)), mark))
    touched = np.any(marked != pixels, axis=2)
    assert touched.sum() > 100 and np.abs(marked.astype(np.int64) // 257 - eight).max() <= 1
    assert np.array_equal(marked[~touched], pixels[~touched])


def _logo_recipe(folder, logo="logo.png", **output):
    folder.mkdir(exist_ok=True)
    fields = {"watermark_image": logo, "watermark_position": "top-left", **output}
    lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in fields.items())
    path = folder / "branded.toml"
    path.write_text(f'runner = "identity"\n[output]\nformat = "png"\n{lines}', encoding="utf-8")
    return path


def test_a_logo_recipe_finds_its_logo_beside_it_and_a_new_logo_makes_old_outputs_stale(tmp_path):
    folder = tmp_path / "recipes"
    path = _logo_recipe(folder)
    _logo(folder / "logo.png")
    first = load_recipe_file(path)
    assert first.output.watermark_image == str(folder / "logo.png")
    assert first.params()["output"]["watermark_image_sha256"] == first.output.watermark_image_sha256
    _logo(folder / "logo.png", colour=(30, 30, 220))  # the studio's new logo, same file name
    assert load_recipe_file(path).fingerprint != first.fingerprint
    plain = recipe_from_dict({"name": "p"})
    # Placing a mark that is not there changes nothing: not counted, nothing turns stale.
    placed = recipe_from_dict({"name": "p", "output": {"watermark_position": "top", "watermark_size": 20}})
    assert placed.fingerprint == plain.fingerprint
    with pytest.raises(RecipeError, match="a watermark is text or a graphic"):
        recipe_from_dict({"name": "p", "output": {"watermark": MARK, "watermark_image": "x.png"}})
    with pytest.raises(RecipeError, match="output.watermark_position must be one of"):
        recipe_from_dict({"name": "p", "output": {"watermark_position": "lower-right"}})


def test_a_logo_that_is_missing_or_not_an_image_is_named_when_the_recipe_loads(tmp_path):
    folder = tmp_path / "recipes"
    path = _logo_recipe(folder)
    with pytest.raises(RecipeError, match=r"output.watermark_image .*logo.png cannot be read "
                                          r"\(No such file or directory\)"):
        load_recipe_file(path)
    (folder / "logo.png").write_text("not a picture")
    with pytest.raises(RecipeError, match=r"output.watermark_image .*logo.png is not an image "
                                          r"Pillow reads"):
        load_recipe_file(path)


def test_outputs_carry_the_logo_and_a_logo_gone_at_run_time_fails_the_photo_for_a_retry(
        tmp_path, identity_session):
    folder = tmp_path / "recipes"
    _logo(folder.mkdir() or folder / "logo.png")
    recipe = load_recipe_file(_logo_recipe(folder))
    source = write_sample_photo(tmp_path / "IMG_0003.JPG", size=(300, 200), seed=3)
    plain = identity_session.process(source, recipe_from_dict(
        {"name": "plain", "runner": "identity", "output": {"format": "png"}}))
    marked = identity_session.process(source, recipe)
    assert marked.status == "done", marked.error
    with Image.open(plain.output) as a, Image.open(marked.output) as b:
        changed = np.argwhere(np.abs(np.asarray(b.convert("RGB")).astype(int)
                                     - np.asarray(a.convert("RGB"))).max(axis=2) > 0)
    assert len(changed) > 100
    assert changed[:, 0].max() < 200 * 0.3 and changed[:, 1].max() < 300 * 0.3  # top left
    (folder / "logo.png").unlink()  # the logo moved while the daemon runs
    gone = identity_session.process(write_sample_photo(tmp_path / "IMG_0004.JPG", size=(120, 80)), recipe)
    assert gone.status == "failed" and not gone.lasting  # put the logo back: the retry works
    assert gone.error == (f"error while watermarking the output of IMG_0004.JPG: the watermark "
                          f"image {folder / 'logo.png'} is not there")
    assert not list((tmp_path / "out").glob("IMG_0004*"))


def test_a_logo_changed_while_the_daemon_runs_is_what_the_run_records(tmp_path, identity_session):
    folder = tmp_path / "recipes"
    _logo(folder.mkdir() or folder / "logo.png")
    recipe = load_recipe_file(_logo_recipe(folder))  # loaded once, as the daemon does
    _logo(folder / "logo.png", size=(240, 100), colour=(30, 30, 220))  # the new logo, same name
    source = write_sample_photo(tmp_path / "IMG_0005.JPG", size=(300, 200), seed=5)
    outcome = identity_session.process(source, recipe)
    assert outcome.status == "done", outcome.error
    run = identity_session.app.catalog.db["runs"].get(outcome.run_id)
    # The blue logo was drawn, and the run says so: a recipe loaded now (with the new logo)
    # finds the output up to date, not stale.
    assert run["recipe_fingerprint"] == load_recipe_file(folder / "branded.toml").fingerprint
    assert run["recipe_fingerprint"] != recipe.fingerprint
    with Image.open(outcome.output) as img:
        corner = np.asarray(img.convert("RGB"))[:60, :90].astype(int)
    assert (corner[..., 2] - corner[..., 0]).max() > 60  # blue, not red


def test_on_a_transparent_picture_the_mark_is_laid_over_as_a_layer(tmp_path):
    logo = read_logo(_logo(tmp_path / "logo.png"))
    hidden = Image.new("RGB", (600, 400), (0, 255, 0))  # colours under alpha 0: never seen
    clear = np.zeros((400, 600), np.uint8)
    for opacity in (100, 50):
        marked, alpha = draw_watermark(hidden, Mark(logo=logo, size=50, opacity=opacity,
                                                    position="center"), alpha=clear)
        # The disc's own colour at the mark's opacity, not mixed with the hidden green.
        assert tuple(np.asarray(marked)[200, 250]) == (220, 30, 30)
        assert abs(int(alpha[200, 250]) - round(255 * opacity / 100)) <= 1
        assert alpha[200, 350] == 0 and alpha[20, 20] == 0  # clear where the logo is clear
    assert clear.max() == 0  # the caller's alpha is not changed in place
    # Over an opaque picture, the same as without alpha.
    opaque = np.full((400, 600), 255, np.uint8)
    mark = Mark(logo=logo, size=50, position="center")
    over, kept = draw_watermark(_grey(), mark, alpha=opaque)
    assert np.array_equal(np.asarray(over), np.asarray(draw_watermark(_grey(), mark)))
    assert (kept == 255).all()


def test_a_cut_out_png_keeps_its_transparency_and_shows_the_mark_over_it(tmp_path, identity_session):
    rgba = np.zeros((200, 300, 4), np.uint8)
    rgba[..., :3] = (40, 90, 160)
    rgba[:, 150:, 3] = 255  # a product on the right half, nothing on the left
    source = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(source)
    outcome = identity_session.process(source, recipe_from_dict(
        {"name": "proof", "runner": "identity",
         "output": {"format": "png", "watermark": MARK, "watermark_position": "bottom-left"}}))
    assert outcome.status == "done", outcome.error
    with Image.open(outcome.output) as img:
        assert img.mode == "RGBA"
        out = np.asarray(img)
    shown = out[..., 3] > 0
    assert shown[:, 150:].all()  # the product stays opaque
    mark = np.argwhere(shown[:, :150])
    assert len(mark) > 50 and mark[:, 0].min() > 200 * 0.7  # the mark, at the bottom left
    assert not shown[: int(200 * 0.6), :150].any()  # and the rest of the left still clear
