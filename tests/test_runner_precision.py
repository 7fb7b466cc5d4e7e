"""Precision: fp32 / bf16 / fp16 chosen per device (bf16 on CPUs that compute it natively),
set in the config, handed to the runners, and recorded with each run in the catalog."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fakes import reloadable_service
from PIL import Image

from photobatch.daemon.cli import main
from photobatch.daemon.samples import write_sample_photo
from photobatch.plugins.diffusion import device as device_module
from photobatch.plugins.diffusion.device import pick_dtype
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.schema import recipe_from_dict


def test_auto_precision_on_the_cpu_follows_native_bf16(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert pick_dtype("cpu") == torch.bfloat16
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    assert pick_dtype("cpu") == torch.float32  # emulated bf16 would be slower than fp32
    assert pick_dtype("mps") == torch.float16


def test_asked_precision_wins_over_auto_and_bad_names_are_refused(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert pick_dtype("cpu", "fp32") == torch.float32
    assert pick_dtype("cuda", "fp32") == torch.float32
    monkeypatch.setenv("PHOTOBATCH_PRECISION", "fp32")
    assert pick_dtype("cpu") == torch.float32
    assert pick_dtype("cpu", "bf16") == torch.bfloat16  # the config's word beats the env's
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, fp16, bf16, got 'double'"):
        pick_dtype("cpu", "double")
    monkeypatch.setenv("PHOTOBATCH_PRECISION", "fp64")
    with pytest.raises(ValueError, match="PHOTOBATCH_PRECISION must be one of auto, fp32, fp16, bf16, got 'fp64'"):
        pick_dtype("cpu")


def test_the_runner_computes_in_the_precision_asked_and_says_so(standin_model):
    recipe = recipe_from_dict({"name": "p", "strength": 0.5, "steps": 4, "sampler": "Euler"})
    photo = Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    outputs = {}
    runner = DiffusersImg2ImgRunner(native_size=64, precision="fp32")
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        runner.use_precision(precision)
        assert runner.precision == precision
        pipe = runner.pipeline(str(standin_model))[0]
        assert {p.dtype for p in pipe.unet.parameters()} == {dtype}
        assert {p.dtype for p in pipe.vae.parameters()} == {dtype}
        outputs[precision] = runner.run(photo, recipe, seed=5, model=str(standin_model))
        assert outputs[precision].precision == precision
    # One copy of the model in memory: the fp32 one went when the bf16 one loaded.
    assert len(runner.cache._models) == 1
    a, b = (np.asarray(outputs[k].image, dtype=np.int16) for k in ("fp32", "bf16"))
    # The same picture computed in 8 bits of mantissa instead of 24: close, not equal.
    assert 0 < np.abs(a - b).mean() < 4


def test_an_inpaint_runner_shares_the_precision_of_its_cache(tmp_path):
    from photobatch.daemon.app import App

    app = App(catalog_path=tmp_path / "c.db", precision="fp32")
    assert app.runners.get("img2img").precision == "fp32"
    app.use_precision("bf16")
    assert app.runners.get("inpaint").precision == "bf16"


def test_the_config_precision_is_checked(tmp_path):
    from photobatch.daemon.config import ConfigError, parse_config

    assert parse_config({"defaults": {"precision": "bf16"}}).precision == "bf16"
    assert parse_config({}).precision is None
    with pytest.raises(ConfigError, match='defaults.precision must be "auto", "fp32", "bf16" or "fp16", got .fp64.'):
        parse_config({"defaults": {"precision": "fp64"}})


@pytest.mark.parametrize("configured, expected", [("fp32", "fp32"), ("bf16", "bf16"), (None, None)])
def test_each_run_records_its_precision_in_the_catalog(tmp_path, standin_model, configured, expected):
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_sample_photo(inbox / "a.jpg", size=(96, 64), seed=1)
    config = tmp_path / "config.toml"
    config.write_text("[defaults]\n" + (f'precision = "{configured}"\n' if configured else ""))
    if expected is None:
        expected = "bf16" if device_module.cpu_has_native_bf16() else "fp32"
    db = tmp_path / "c.db"
    result = CliRunner().invoke(main, ["--catalog", str(db), "--config", str(config), "run", str(inbox),
                                       "--recipe", "color-correct", "--model", str(standin_model),
                                       "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = sqlite3.connect(db).execute("SELECT status, device, precision FROM runs").fetchall()
    assert rows == [("done", "cpu", expected)]
    shown = CliRunner().invoke(main, ["--catalog", str(db), "catalog", "show", str(inbox / "a.jpg")])
    assert f"precision          {expected}" in shown.output


def test_a_reload_changes_the_precision(tmp_path):
    service, reload_with = reloadable_service(tmp_path, 'precision = "fp32"')
    assert service.app.runners.get("img2img").precision == "fp32"
    reload_with('precision = "bf16"')
    assert service.app.runners.get("inpaint").precision == "bf16"

