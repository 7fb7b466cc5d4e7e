"""Files replaced under the same name make outputs stale: the model's weights, and the LoRA,
embedding, VAE, ControlNet and IP-Adapter files a recipe reads (A1111 records their hashes in
its infotext for the same reason). Real runner, real stand-in model and LoRAs, the real CLI."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from photobatch.daemon.cli import main
from photobatch.daemon.samples import write_sample_photo
from photobatch.plugins.diffusion.settings import settings_from_recipe
from photobatch.plugins.diffusion.sources import adapters_hash, file_identity
from photobatch.recipes.schema import recipe_from_dict


@pytest.fixture()
def studio(tmp_path, standin_model):
    from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
    from photobatch.plugins.diffusion.standin_addons import save_standin_lora

    model = shutil.copytree(standin_model, tmp_path / "model")
    recipes = tmp_path / "recipes"
    pipe = DiffusersImg2ImgRunner(native_size=64).pipeline(str(model))[0]
    loras = {seed: save_standin_lora(pipe, tmp_path / f"lora{seed}" / "film.safetensors", seed=seed)
             for seed in (1, 2)}
    (recipes / "loras").mkdir(parents=True)
    shutil.copy(loras[1], recipes / "loras" / "film.safetensors")
    (recipes / "film.toml").write_text(
        f'name = "film"\nmodel = "{model}"\nprompt = "film look"\nstrength = 0.5\nsteps = 2\n'
        'sampler = "Euler"\nfull_resolution = "resize"\n'
        'loras = [{ path = "loras/film.safetensors", weight = 0.8 }]\n')
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    write_sample_photo(shoot / "DSCF0001.JPG", size=(96, 64), seed=1)
    return {"root": tmp_path, "model": model, "recipes": recipes, "loras": loras, "shoot": shoot}


def _cli(studio, *args):
    base = ["--catalog", studio["root"] / "catalog.db", "--recipes", studio["recipes"]]
    return CliRunner().invoke(main, [str(a) for a in (*base, *args)], catch_exceptions=False)


def _runs(studio):
    con = sqlite3.connect(studio["root"] / "catalog.db")
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY id")]
    con.close()
    return rows


def test_a_replaced_lora_or_model_weights_make_outputs_stale(studio):
    done = _cli(studio, "run", studio["shoot"], "--recipe", "film", "--out", studio["root"] / "out")
    assert done.exit_code == 0, done.output
    first = _runs(studio)[-1]
    assert first["status"] == "done" and first["adapters_hash"] and first["model_hash"]
    # The output's XMP record says the same: what a photo was made with travels with it.
    from photobatch.plugins.metadata import read_record

    record = read_record(studio["root"] / "out" / "DSCF0001_film.jpg")
    assert (record["ModelHash"], record["AdaptersHash"], record["Precision"]) == (
        first["model_hash"], first["adapters_hash"], first["precision"])
    assert "nothing to re-run" in _cli(studio, "rerun", "--stale").output

    # Another LoRA saved over the first one: same name, same size, other weights.
    lora = studio["recipes"] / "loras" / "film.safetensors"
    replacement = studio["loras"][2]
    assert replacement.stat().st_size == lora.stat().st_size
    shutil.copy(replacement, lora)
    listing = _cli(studio, "catalog", "ls", "--stale")
    assert "stale: adapters changed" in listing.output, listing.output
    now = _cli(studio, "rerun", "--stale", "--now")
    assert now.exit_code == 0 and "1 done" in now.output, now.output
    assert _runs(studio)[-1]["adapters_hash"] != first["adapters_hash"]
    assert "nothing to re-run" in _cli(studio, "rerun", "--stale").output

    # The model folder's weights replaced under the same path (here: its scheduler's config).
    config = studio["model"] / "scheduler" / "scheduler_config.json"
    settings = json.loads(config.read_text())
    settings["steps_offset"] = 1 - settings.get("steps_offset", 0)
    config.write_text(json.dumps(settings))
    dry = _cli(studio, "rerun", "--stale", "--dry-run")
    assert "stale: model changed" in dry.output, dry.output


def test_adapter_identity_follows_content_weight_and_missing_files(tmp_path):
    (tmp_path / "a.safetensors").write_bytes(b"a" * 1000)
    recipe = recipe_from_dict({"name": "x", "loras": [{"path": "a.safetensors", "weight": 0.5}]},
                              source=str(tmp_path / "x.toml"))
    settings = settings_from_recipe(recipe)
    before = adapters_hash(settings)
    assert before and adapters_hash(settings_from_recipe(recipe_from_dict({"name": "x"}))) is None
    (tmp_path / "a.safetensors").write_bytes(b"b" * 1000)  # same size, other bytes
    assert adapters_hash(settings) != before
    heavier = recipe_from_dict({"name": "x", "loras": [{"path": "a.safetensors", "weight": 0.6}]},
                               source=str(tmp_path / "x.toml"))
    assert adapters_hash(settings_from_recipe(heavier)) != adapters_hash(settings)
    # Big files are sampled, not read whole; a folder is the identities of its files.
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(9 << 20))
    first = file_identity(big)
    with open(big, "r+b") as fh:
        fh.seek(3 << 20)  # inside the middle sample (size // 3)
        fh.write(b"x")
    assert file_identity(big) != first
    folder = tmp_path / "cn"
    folder.mkdir()
    (folder / "w.safetensors").write_bytes(b"1" * 100)
    one = file_identity(folder)
    (folder / "w.safetensors").write_bytes(b"2" * 100)
    assert file_identity(folder) != one
