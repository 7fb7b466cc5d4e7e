"""A model whose output is NaN (half precision overflowing) fails the file with a reason a user
can act on; it is never written out as a black photo."""

from __future__ import annotations

import hashlib
import sqlite3

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from diffusers import AutoencoderKL
from PIL import Image

from photobatch.daemon.cli import main
from photobatch.daemon.samples import write_sample_photo
from photobatch.plugins.diffusion.engine import pictures
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.sources import ModelError
from photobatch.recipes.schema import recipe_from_dict


def _photo():
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))


@pytest.fixture()
def nan_vae(monkeypatch):
    """The VAE's decoder overflowing, as an fp16 VAE does on some models: NaN everywhere."""
    decode = AutoencoderKL.decode

    def overflowing(self, *args, **kwargs):
        out = decode(self, *args, **kwargs)
        (out[0] if isinstance(out, tuple) else out.sample).fill_(float("nan"))
        return out

    monkeypatch.setattr(AutoencoderKL, "decode", overflowing)


def test_the_runners_pictures_are_the_pipelines_own(standin_model):
    """Asking diffusers for floats and making the pictures here changes no pixel."""
    runner = DiffusersImg2ImgRunner(native_size=64)
    recipe = recipe_from_dict({"name": "t", "prompt": "natural colours", "strength": 0.5,
                               "steps": 4, "cfg": 6.0, "sampler": "Euler"})
    ours = runner.run(_photo(), recipe, 5, str(standin_model))
    pipe = runner.pipeline(str(standin_model))[0]
    from photobatch.plugins.diffusion.samplers import make_scheduler

    previous = pipe.scheduler
    pipe.scheduler = make_scheduler("Euler", previous.config)
    try:
        theirs = pipe(prompt="natural colours", image=ours.model_input, strength=0.5,
                      num_inference_steps=4, guidance_scale=6.0,
                      generator=[torch.Generator("cpu").manual_seed(5)]).images[0]
    finally:
        pipe.scheduler = previous
    assert np.array_equal(np.asarray(ours.image), np.asarray(theirs))


def test_nan_pixels_are_refused_with_the_precision_to_change():
    pipe = type("P", (), {"image_processor": None})()
    bad = np.full((1, 8, 8, 3), 0.5, dtype=np.float32)
    bad[0, 3, 4, 1] = np.nan
    with pytest.raises(ModelError, match=r'NaN\) computing in bf16.*precision = "fp32"'):
        pictures(pipe, bad, "bf16")
    with pytest.raises(ModelError, match=r"even in fp32: its weights may be damaged"):
        pictures(pipe, np.where(np.isnan(bad), np.inf, bad), "fp32")


def test_a_model_producing_nan_fails_the_file_and_writes_nothing(tmp_path, standin_model, nan_vae,
                                                                  monkeypatch):
    monkeypatch.setenv("PHOTOBATCH_PRECISION", "fp32")  # the message names the precision
    inbox, out, db = tmp_path / "in", tmp_path / "out", tmp_path / "c.db"
    inbox.mkdir()
    write_sample_photo(inbox / "DSCF0001.JPG", size=(160, 120), seed=1)
    before = hashlib.sha256((inbox / "DSCF0001.JPG").read_bytes()).hexdigest()
    result = CliRunner().invoke(main, ["--catalog", str(db), "run", str(inbox), "--recipe",
                                       "color-correct", "--model", str(standin_model), "--out",
                                       str(out)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    # Already in fp32: no precision left to raise, so the weights are suspect.
    assert ("DSCF0001.JPG: error while running color-correct on DSCF0001.JPG: the model produced "
            "invalid pixels (NaN) even in fp32: its weights may be damaged") in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())
    with sqlite3.connect(db) as con:
        status, error = con.execute("SELECT status, error FROM runs").fetchone()
    assert status == "failed" and "invalid pixels (NaN)" in error
    assert hashlib.sha256((inbox / "DSCF0001.JPG").read_bytes()).hexdigest() == before
