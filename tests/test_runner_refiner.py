"""A1111's Refiner for SDXL: a tiny SDXL base and a tiny refiner (second text encoder only,
aesthetic-score conditioning), both built in code, saved and loaded through the real code."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fakes import noise_photo
from PIL import Image

from photobatch.plugins.diffusion.refiner import handover
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.settings import settings_from_recipe
from photobatch.plugins.diffusion.sources import adapters_hash, missing_files
from photobatch.recipes.schema import RecipeError, recipe_from_dict


@pytest.fixture(scope="module")
def models(tmp_path_factory, standin_model):
    from photobatch.plugins.diffusion.standin import save_standin_model

    root = tmp_path_factory.mktemp("refiner")
    return {"base": str(save_standin_model(root / "base", kind="sdxl")),
            "refiner": str(save_standin_model(root / "refiner", kind="sdxl-refiner", seed=1)),
            "sd1": str(standin_model)}


def _recipe(**fields):
    return recipe_from_dict({"name": "r", "prompt": "winter morning", "strength": 0.5, "steps": 10,
                             "sampler": "Euler", **fields})


def _photo():
    return noise_photo(seed=4)


def test_switch_at_is_a_fraction_of_the_steps_that_run():
    assert handover(1.0, 0.8) == pytest.approx(0.8)  # from pure noise: diffusers' own number
    assert handover(0.5, 0.8) == pytest.approx(0.9)  # img2img starts at half the noise
    assert handover(0.2, 0.5) == pytest.approx(0.9)


def test_the_refiner_takes_over_the_last_steps(models):
    runner = DiffusersImg2ImgRunner(native_size=64)
    base_pipe = runner.pipeline(models["base"])[0]
    refiner_pipe = runner.pipeline(models["refiner"])[0]
    calls = {"base": [], "refiner": []}
    hooks = [pipe.unet.register_forward_pre_hook(lambda module, args, k=k: calls[k].append(int(args[1])))
             for k, pipe in (("base", base_pipe), ("refiner", refiner_pipe))]
    try:
        alone = runner.run(_photo(), _recipe(), 3, models["base"])
        base_alone = list(calls["base"])
        calls["base"].clear()
        refined = runner.run(_photo(), _recipe(refiner={"model": models["refiner"], "switch_at": 0.6}),
                             3, models["base"])
        again = runner.run(_photo(), _recipe(refiner={"model": models["refiner"], "switch_at": 0.6}),
                           3, models["base"])
    finally:
        for hook in hooks:
            hook.remove()
    # int(10 x 0.5) = 5 steps either way (CFG is one batched call a step): 60 % of them on the
    # base, the rest on the refiner, each on its own timesteps, high noise first.
    assert len(base_alone) == 5
    assert len(calls["base"]) == 2 * 3 and len(calls["refiner"]) == 2 * 2
    first_run = calls["base"][:3] + calls["refiner"][:2]
    assert first_run == base_alone
    assert min(calls["base"][:3]) > max(calls["refiner"][:2])
    a, b = (np.asarray(x.image, dtype=int) for x in (refined, again))
    assert np.array_equal(a, b)  # the seed repeats it
    assert np.abs(a - np.asarray(alone.image, dtype=int)).max() > 5
    assert refined.image.size == alone.image.size
    # The shared pipelines are left as they were: the base alone gives its picture again.
    assert np.array_equal(np.asarray(runner.run(_photo(), _recipe(), 3, models["base"]).image),
                          np.asarray(alone.image))


def test_the_refiner_inpaints_inside_the_mask_and_the_rest_stays_the_photos(models):
    from PIL import Image

    from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner

    runner = DiffusersInpaintRunner(native_size=64)
    photo = noise_photo(128, 96, seed=7)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (40, 30, 90, 70))
    refiner_pipe = runner.cache.task_pipe(runner.cache.get(models["refiner"]), "inpaint")
    calls = []
    handle = refiner_pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        recipe = _recipe(refiner={"model": models["refiner"], "switch_at": 0.6}, mask_blur=0)
        refined = runner.run(photo, recipe, 3, models["base"], mask=mask)
        alone = runner.run(photo, _recipe(mask_blur=0), 3, models["base"], mask=mask)
    finally:
        handle.remove()
    assert len(calls) == 2  # the last 40 % of int(10 x 0.5) = 5 steps
    assert type(refiner_pipe).__name__ == "StableDiffusionXLInpaintPipeline"
    from photobatch.plugins.diffusion.fullres import restore_full_resolution

    full = np.asarray(restore_full_resolution(photo, refined, "resize"), dtype=int)
    outside = np.asarray(mask) == 0
    assert np.array_equal(full[outside], np.asarray(photo, dtype=int)[outside])
    assert np.abs(np.asarray(refined.image, dtype=int) - np.asarray(alone.image, dtype=int)).max() > 5


@pytest.mark.parametrize("base, refiner, fields, message", [
    ("sd1", "refiner", {}, "the refiner needs an SDXL model; "),
    ("base", "sd1", {}, "is SD 1.x, not an SDXL model"),
])
def test_a_refiner_that_cannot_take_over_is_refused_before_any_step(models, base, refiner, fields, message):
    runner = DiffusersImg2ImgRunner(native_size=64)
    recipe = _recipe(refiner={"model": models[refiner]}, **fields)
    with pytest.raises(ValueError, match=message):
        runner.run(_photo(), recipe, 3, models[base])


def test_a_plugins_recipe_object_with_a_refiner_and_a_controlnet_is_refused_at_run_time(models):
    from types import SimpleNamespace

    recipe = SimpleNamespace(prompt="x", strength=0.5, steps=4, sampler="Euler",
                             refiner={"model": models["refiner"]}, controlnet={"model": "c"})
    with pytest.raises(ValueError, match="the refiner does not go with controlnet"):
        DiffusersImg2ImgRunner(native_size=64).run(_photo(), recipe, 1, models["base"])


def test_refiner_fields_are_checked_and_counted_only_when_set(models, tmp_path):
    plain = _recipe()
    assert "refiner" not in plain.params()
    refined = _recipe(refiner={"model": models["refiner"]})
    assert refined.refiner.switch_at == 0.8
    assert refined.fingerprint != plain.fingerprint != _recipe(refiner={"model": models["refiner"],
                                                                        "switch_at": 0.7}).fingerprint
    for value, message in [
        ({"model": "m", "switch_at": 1}, "refiner switch_at must be between 0 and 1 (exclusive), got 1"),
        ({"model": "m", "switch_at": 0}, "refiner switch_at must be between 0 and 1 (exclusive), got 0"),
        ({"switch_at": 0.5}, "refiner needs model"),
    ]:
        with pytest.raises(RecipeError) as err:
            _recipe(refiner=value)
        assert f"recipe 'r': {message}" in str(err.value)
    with pytest.raises(RecipeError, match="recipe 'r': refiner does not go with controlnet"):
        _recipe(refiner={"model": "m"}, controlnet={"model": "c"})
    # The refiner's weights count among the files a run reads: replaced, its outputs are stale.
    assert adapters_hash(settings_from_recipe(refined))
    assert adapters_hash(settings_from_recipe(refined)) != adapters_hash(settings_from_recipe(
        dataclasses.replace(refined, refiner={"model": models["base"]})))
    gone = _recipe(refiner={"model": str(tmp_path / "nowhere")})
    assert missing_files(settings_from_recipe(gone)) == [f"refiner {tmp_path / 'nowhere'}"]


def test_the_cli_runs_a_refined_recipe_and_refuses_an_sd1_base_before_any_photo(models, tmp_path):
    import sqlite3

    from click.testing import CliRunner

    from photobatch.daemon.cli import main
    from photobatch.daemon.samples import write_sample_photo

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "winter.toml").write_text(
        'name = "winter"\nprompt = "winter morning"\nstrength = 0.5\nsteps = 4\nsampler = "Euler"\n'
        f'[refiner]\nmodel = "{models["refiner"]}"\nswitch_at = 0.5\n')
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    write_sample_photo(shoot / "DSCF0001.JPG", size=(96, 64), seed=1)

    def run(model):
        return CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "--recipes", str(recipes),
                                         "run", str(shoot), "--recipe", "winter", "--model", model,
                                         "--out", str(tmp_path / "out")])

    refused = run(models["sd1"])
    assert refused.exit_code == 1
    assert (f"recipe 'winter': the refiner needs an SDXL model; {models['sd1']} is SD 1.x"
            in refused.output)
    assert not (tmp_path / "out").exists()
    done = run(models["base"])
    assert done.exit_code == 0, done.output
    con = sqlite3.connect(tmp_path / "c.db")
    status, adapters = con.execute("SELECT status, adapters_hash FROM runs").fetchone()
    con.close()
    assert status == "done" and adapters
    assert Image.open(tmp_path / "out" / "DSCF0001_winter.jpg").size == (96, 64)
