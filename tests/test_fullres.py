"""Full resolution: detail transfer keeps the original's detail, tiles have no seams, colour match."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageFilter

from photobatch.plugins.diffusion.colormatch import match_colors
from photobatch.plugins.diffusion.engine import RunOutput
from photobatch.plugins.diffusion.fullres import detail_transfer, restore_full_resolution
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.tiles import merge_tiles, tile_boxes
from photobatch.recipes.schema import recipe_from_dict


def _textured_photo(w=384, h=256, seed=0):
    """Smooth shading plus fine texture and a hard edge: what a photo's detail looks like."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([80 + 80 * xx / w, 90 + 60 * yy / h, 140 - 40 * xx / w], axis=-1)
    base[:, w // 2:] += 50  # an edge
    texture = rng.normal(0, 14, (h, w, 1)).astype(np.float32)
    return Image.fromarray(np.clip(base + texture, 0, 255).astype(np.uint8))


def _low(img, size):
    return img.resize(size, Image.Resampling.LANCZOS)


def _blur(arr, radius=4):
    return np.asarray(Image.fromarray(arr.astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius))).astype(np.float32)


def _split(img, radius=4):
    arr = np.asarray(img).astype(np.float32)
    low = _blur(np.clip(arr, 0, 255), radius)
    return low, arr - low


def test_detail_transfer_keeps_the_sources_detail_and_takes_the_edits_colour():
    full = _textured_photo()
    before = _low(full, (96, 64))
    # The "model": a warm shift that varies smoothly over the picture, and its own blur.
    ramp = np.linspace(0, 30, 96, dtype=np.float32)[None, :, None]
    edit = np.asarray(before).astype(np.float32) + np.concatenate([ramp, 0 * ramp, -ramp], axis=-1)
    after = Image.fromarray(np.clip(edit, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))
    out = detail_transfer(full, before, after)
    assert out.size == full.size
    out_low, out_high = _split(out)
    src_low, src_high = _split(full)
    # High frequencies: the source's own (correlation ~1); a plain resize loses them.
    corr = np.corrcoef(out_high.ravel(), src_high.ravel())[0, 1]
    assert corr > 0.95
    resized = after.resize(full.size, Image.Resampling.LANCZOS)
    assert np.corrcoef(_split(resized)[1].ravel(), src_high.ravel())[0, 1] < 0.5
    # Low frequencies: the edit's (its colour ramp, upsampled), within a few levels.
    edit_low = _blur(np.asarray(resized).astype(np.float32))
    inner = (slice(16, -16), slice(16, -16))
    assert np.abs(out_low[inner] - edit_low[inner]).mean() < 4
    # The red-minus-blue ramp of the edit is there, left to right.
    shift = (out_low[..., 0] - out_low[..., 2]) - (src_low[..., 0] - src_low[..., 2])
    assert shift[:, -40:].mean() - shift[:, :40].mean() > 40


def test_an_identity_edit_returns_the_source_unchanged():
    full = _textured_photo(200, 150)
    before = _low(full, (96, 72))
    out = detail_transfer(full, before, before)
    assert np.abs(np.asarray(out).astype(int) - np.asarray(full)).max() <= 2


def _seam_ratio(img: np.ndarray, borders) -> float:
    """Mean jump across the tile-border columns divided by the median jump between columns."""
    jumps = np.abs(np.diff(img.astype(np.float32), axis=1)).mean(axis=(0, 2))
    return float(max(jumps[b - 1] for b in borders) / np.median(jumps))


def test_tile_blending_hides_tile_borders():
    width, height, tile, overlap = 300, 80, 128, 32
    boxes = tile_boxes(width, height, tile, 80, overlap)
    assert boxes[0][0] == 0 and boxes[-1][2] == width
    assert all(b[2] - b[0] == tile for b in boxes)
    rng = np.random.default_rng(0)
    smooth = np.tile(np.linspace(60, 180, width, dtype=np.float32)[None, :, None], (height, 1, 3))
    smooth += rng.normal(0, 2, (height, width, 1))  # the picture's own texture, shared by all tiles
    # Each tile comes back with its own brightness offset: hard pasting shows a step.
    tiles = [(box, np.clip(smooth[:, box[0]:box[2]] + (20 if i % 2 else -20), 0, 255).astype(np.uint8))
             for i, box in enumerate(boxes)]
    blended = merge_tiles(width, height, tiles, overlap)
    hard = np.zeros((height, width, 3), np.uint8)
    for box, pixels in tiles:
        hard[:, box[0]:box[2]] = pixels
    borders = [box[0] for box in boxes[1:]]
    assert _seam_ratio(hard, borders) > 5  # the measure does see seams
    assert _seam_ratio(blended, borders) < 2.5


def test_tiled_img2img_runs_over_the_full_size_photo_without_seams(standin_model):
    photo = _textured_photo(200, 136)
    recipe = recipe_from_dict({"name": "snow", "prompt": "winter", "strength": 0.5, "steps": 4,
                               "sampler": "Euler", "full_resolution": "tiled", "tile_overlap": 32})
    runner = DiffusersImg2ImgRunner(native_size=96)
    result = runner.run(photo, recipe, 3, str(standin_model))
    assert result.image.size == photo.size  # tiles come back at full size
    assert restore_full_resolution(photo, result, "tiled") is result.image
    again = runner.run(photo, recipe, 3, str(standin_model))
    assert np.array_equal(np.asarray(result.image), np.asarray(again.image))
    boxes = tile_boxes(200, 136, 96, 96, 32)
    borders = sorted({b[0] for b in boxes if b[0] > 0})
    assert len(borders) >= 2
    assert _seam_ratio(np.asarray(result.image), borders) < 2.5


def test_color_match_pulls_colours_to_the_source_and_keeps_lightness():
    from skimage import color

    source = _textured_photo(128, 96)
    cast = np.asarray(source).astype(np.float32) * np.array([1.25, 1.0, 0.7]) + np.array([0, 10, 0])
    drifted = Image.fromarray(np.clip(cast, 0, 255).astype(np.uint8))
    fixed = match_colors(drifted, source)
    lab = {name: color.rgb2lab(np.asarray(img) / 255.0) for name, img in
           (("src", source), ("drift", drifted), ("fixed", fixed))}
    for ch in (1, 2):
        before = abs(lab["drift"][..., ch].mean() - lab["src"][..., ch].mean())
        after = abs(lab["fixed"][..., ch].mean() - lab["src"][..., ch].mean())
        assert after < before / 3
    assert np.abs(lab["fixed"][..., 0] - lab["drift"][..., 0]).mean() < 1.5


def test_colours_matched_outside_srgb_are_clipped_without_a_warning():
    """A dark photo matched to a saturated yellow reference lands outside sRGB: the colours are
    clipped into it (all within 0-255) and skimage's clipping warning, which a photographer would
    read as an error in the run's output, is not shown."""
    import warnings

    rng = np.random.default_rng(0)
    dark = Image.fromarray(rng.integers(0, 40, (64, 96, 3), dtype=np.uint8))
    yellow = Image.fromarray(np.dstack([rng.integers(220, 256, (64, 96)), rng.integers(200, 256, (64, 96)),
                                        np.zeros((64, 96), dtype=int)]).astype(np.uint8))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        matched = np.asarray(match_colors(dark, yellow), dtype=float)
    assert not [w for w in seen if "CIE-LAB" in str(w.message)]
    # Pulled toward yellow: more red and green than blue, where the dark photo had as much of each.
    assert matched[..., 0].mean() > matched[..., 2].mean() + 5


@pytest.mark.parametrize("strategy", ["resize", "detail-transfer"])
def test_restore_brings_every_result_to_the_source_size(strategy):
    photo = _textured_photo(250, 170)
    model_input = photo.resize((96, 64), Image.Resampling.LANCZOS)
    result = RunOutput(model_input.filter(ImageFilter.GaussianBlur(2)), "m", None, "cpu", (96, 64), model_input)
    full = restore_full_resolution(photo, result, strategy, color_match=True)
    assert full.size == photo.size
    sharp = _split(full)[1].std()
    # Detail transfer keeps the source's texture; resize cannot invent it.
    if strategy == "detail-transfer":
        assert sharp > 0.8 * _split(photo)[1].std()
    else:
        assert sharp < 0.5 * _split(photo)[1].std()


def test_the_session_writes_detail_transferred_full_size_outputs(standin_model, tmp_path):
    from photobatch.daemon.app import App
    from photobatch.daemon.session import Session

    photo = _textured_photo(400, 300)
    src = tmp_path / "in" / "IMG_0001.jpg"
    src.parent.mkdir()
    photo.save(src, quality=95)
    app = App(catalog_path=tmp_path / "catalog.db", model=str(standin_model))
    app.runners.get("img2img").native_override = 64
    recipe = dataclasses.replace(app.recipe("color-correct"), steps=10)
    assert recipe.full_resolution == "detail-transfer"
    outcome = Session(app, tmp_path / "out").process(src, recipe)
    assert outcome.status == "done", outcome.error
    with Image.open(outcome.output) as out:
        assert out.size == photo.size
        out_high = _split(out.convert("RGB"))[1]
    with Image.open(src) as original:
        src_high = _split(original.convert("RGB"))[1]
    # Even with a random model, the output's fine detail is the photo's.
    assert np.corrcoef(out_high.ravel(), src_high.ravel())[0, 1] > 0.8
    assert "restore" in outcome.timings
    app.close()


def test_detail_transfer_in_bands_equals_the_whole_picture(monkeypatch):
    # Big photos are restored a band of rows at a time: the bands must not show.
    from photobatch.plugins.diffusion import fullres

    full = _textured_photo(300, 203)
    before = _low(full, (120, 80))
    after = before.filter(ImageFilter.GaussianBlur(2)).point(lambda v: min(255, v + 20))
    whole = np.asarray(detail_transfer(full, before, after))
    monkeypatch.setattr(fullres, "_CPU_BAND_PIXELS", 300 * 17)  # bands of 17 rows, the last one short
    assert fullres._band_rows("cpu", 300) == 17
    banded = np.asarray(detail_transfer(full, before, after))
    assert np.array_equal(whole, banded)
    # And the bands agree with one bilinear upsampling of the fitted maps over the whole photo.
    import torch
    import torch.nn.functional as F

    def planes(image):
        return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0

    maps = fullres.guided_coefficients(planes(before), planes(after), 2, 1e-2)
    maps[9:] *= 255.0
    up = F.interpolate(maps[None], size=(203, 300), mode="bilinear", align_corners=False)[0]
    src = planes(full) * 255.0
    a, b = up[:9].reshape(3, 3, 203, 300), up[9:]
    expected = (torch.einsum("rchw,chw->rhw", a, src) + b).clamp(0, 255).round()
    assert np.abs(banded.transpose(2, 0, 1).astype(float) - expected.numpy()).max() <= 1


def test_detail_transfer_keeps_16_bit_sources_in_16_bits():
    full = _textured_photo(200, 150)
    full16 = np.asarray(full).astype(np.uint16) * 257 + 100  # levels between the 8-bit ones
    before = _low(full, (96, 72))
    after = before.point(lambda v: min(255, v + 10))
    out = detail_transfer(full16, before, after)
    assert out.dtype == np.uint16 and out.shape == full16.shape
    # The 16-bit texture survives: not every value is a multiple of 257 (an 8-bit result widened).
    assert np.count_nonzero(out % 257) > out.size // 2
    # And the +10 levels of the edit are there (in 16-bit units), away from the borders.
    shift = out[10:-10, 10:-10].astype(float).mean() - full16[10:-10, 10:-10].astype(float).mean()
    assert abs(shift - 10 * 257) < 2 * 257


def test_detail_transfer_runs_on_the_cpu_when_the_gpu_is_out_of_memory(monkeypatch):
    from photobatch.plugins.diffusion import fullres

    calls = []
    real = fullres._detail_transfer

    def fake(full, before, after, radius, eps, device):
        calls.append(device)
        if device != "cpu":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(full, before, after, radius, eps, device)

    monkeypatch.setattr(fullres, "_detail_transfer", fake)
    full = _textured_photo(120, 80)
    before = _low(full, (60, 40))
    out = detail_transfer(full, before, before, device="cuda")
    assert calls == ["cuda", "cpu"] and out.size == full.size
    # Any other error is a bug and is not hidden by a retry.
    monkeypatch.setattr(fullres, "_detail_transfer",
                        lambda *a: (_ for _ in ()).throw(RuntimeError("CUDA error: illegal memory access")))
    with pytest.raises(RuntimeError, match="illegal memory access"):
        detail_transfer(full, before, before, device="cuda")



@pytest.mark.parametrize("shape, radius", [((2, 9, 13), 2), ((1, 5, 4), 3), ((3, 6, 6), 9), ((1, 1, 7), 1)])
def test_the_box_mean_counts_only_pixels_inside_the_picture(shape, radius):
    # He et al.'s normalised box, against the definition: each window clipped at the borders.
    import torch

    from photobatch.plugins.diffusion.fullres import _box

    x = torch.rand(shape, dtype=torch.float64)
    got = _box(x, radius)
    h, w = shape[1:]
    for y in range(h):
        for i in range(w):
            window = x[:, max(0, y - radius):y + radius + 1, max(0, i - radius):i + radius + 1]
            assert torch.allclose(got[:, y, i], window.mean(dim=(1, 2)))
