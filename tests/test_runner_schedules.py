"""A1111's "Schedule type": a recipe's `schedule` spreads its sampler's steps over the noise
levels as diffusers' table maps it; combinations diffusers would ignore silently are refused;
recipes that leave it unset keep their fingerprints."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.samplers import SAMPLER_MAP, SCHEDULE_MAP, make_scheduler
from photobatch.plugins.diffusion.settings import settings_from_recipe
from photobatch.recipes.runner_fields import FIXED_SIGMA_SAMPLERS, SCHEDULES, SIGMA_SCHEDULES
from photobatch.recipes.schema import SAMPLERS, RecipeError, recipe_from_dict


def _recipe(**fields):
    return recipe_from_dict({"name": "s", "prompt": "a photo of snow", "strength": 0.5, "steps": 8,
                             "sampler": "DPM++ 2M", **fields})


def _photo():
    return Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8))


def test_the_schema_and_the_runner_know_the_same_schedules():
    assert set(SCHEDULES) == set(SCHEDULE_MAP)
    assert SCHEDULE_MAP["Automatic"] == {}


def test_the_samplers_refused_sigma_schedules_are_those_diffusers_has_no_option_for():
    import diffusers

    for sampler in SAMPLERS:
        params = inspect.signature(getattr(diffusers, SAMPLER_MAP[sampler][0]).__init__).parameters
        takes_sigmas = all(f"use_{kind}_sigmas" in params for kind in ("karras", "exponential", "beta"))
        assert takes_sigmas == (sampler not in FIXED_SIGMA_SAMPLERS), sampler
        assert "timestep_spacing" in params, sampler  # SGM Uniform goes with every sampler


def test_schedule_counts_in_the_fingerprint_only_when_set():
    plain = _recipe()
    assert "schedule" not in plain.params()
    assert _recipe(schedule="Automatic").fingerprint == plain.fingerprint
    karras = _recipe(schedule="Karras")
    assert karras.params()["schedule"] == "Karras"
    assert karras.fingerprint != plain.fingerprint != _recipe(schedule="Exponential").fingerprint


@pytest.mark.parametrize("fields, message", [
    ({"schedule": "karras"}, "schedule must be one of 'Automatic', 'Karras', 'Exponential', 'Beta', "
                             "'SGM Uniform'; got 'karras'"),
    ({"sampler": "DPM++ 2M Karras", "schedule": "Exponential"},
     "schedule 'Exponential' does not go with sampler 'DPM++ 2M Karras', which names its own "
     "schedule; use sampler 'DPM++ 2M' with it"),
    ({"sampler": "DDIM", "schedule": "Karras"},
     "schedule 'Karras' does not apply to sampler 'DDIM' (its diffusers scheduler has no such "
     "option)"),
    ({"sampler": "Euler a", "schedule": "Beta"}, "schedule 'Beta' does not apply to sampler 'Euler a'"),
])
def test_a_schedule_that_cannot_apply_is_refused_naming_the_recipe(fields, message):
    with pytest.raises(RecipeError) as err:
        _recipe(**fields)
    assert str(err.value).startswith("recipe 's': ")
    assert message in str(err.value)


def test_combinations_that_do_apply_load():
    assert _recipe(sampler="DPM++ 2M Karras", schedule="Karras").schedule == "Karras"
    assert _recipe(sampler="DDIM", schedule="SGM Uniform").schedule == "SGM Uniform"
    assert _recipe(sampler="Euler", schedule="Beta").schedule == "Beta"


def test_a_runner_given_a_plain_object_refuses_it_too():
    recipe = SimpleNamespace(prompt="x", strength=0.5, steps=8, sampler="LCM", schedule="Exponential")
    with pytest.raises(ValueError, match="schedule 'Exponential' does not apply to sampler 'LCM'"):
        settings_from_recipe(recipe)


def test_each_schedule_sets_diffusers_option_and_karras_equals_the_karras_sampler(standin_model):
    pipe = DiffusersImg2ImgRunner(native_size=64).pipeline(str(standin_model))[0]
    config = pipe.scheduler.config

    def sigmas(sampler, schedule="Automatic"):
        scheduler = make_scheduler(sampler, config, schedule=schedule)
        scheduler.set_timesteps(10)
        return getattr(scheduler, "sigmas", np.array([])), scheduler

    automatic = sigmas("DPM++ 2M")[0].numpy()
    karras, scheduler = sigmas("DPM++ 2M", "Karras")
    karras = karras.numpy()
    assert scheduler.config.use_karras_sigmas and scheduler.config.algorithm_type == "dpmsolver++"
    assert np.array_equal(karras, sigmas("DPM++ 2M Karras")[0].numpy())
    exponential, scheduler = sigmas("DPM++ 2M", "Exponential")
    assert scheduler.config.use_exponential_sigmas
    _, scheduler = sigmas("Euler", "Beta")
    assert scheduler.config.use_beta_sigmas
    # Each spreads the same range otherwise: Karras spends more steps at low noise than the
    # model's own spacing, which is why the same strength edits less with it.
    assert not np.allclose(automatic, karras) and not np.allclose(karras, exponential.numpy())
    assert np.median(karras[:-1]) < np.median(automatic[:-1])
    _, leading = sigmas("DDIM")
    _, trailing = sigmas("DDIM", "SGM Uniform")
    assert trailing.config.timestep_spacing == "trailing"
    assert leading.config.timestep_spacing != "trailing"
    assert trailing.timesteps[0] == config.num_train_timesteps - 1  # trailing starts at the top
    assert leading.timesteps[0] != trailing.timesteps[0]


def test_a_schedule_changes_the_picture_and_a_seed_repeats_it(standin_model):
    runner = DiffusersImg2ImgRunner(native_size=64)
    model = str(standin_model)
    pictures = {}
    for schedule in SCHEDULES:
        recipe = _recipe(sampler="Euler", schedule=schedule)
        pictures[schedule] = np.asarray(runner.run(_photo(), recipe, 7, model).image, dtype=int)
        again = np.asarray(runner.run(_photo(), recipe, 7, model).image, dtype=int)
        assert np.array_equal(again, pictures[schedule]), schedule
    for schedule in SCHEDULES[1:]:
        assert np.abs(pictures[schedule] - pictures["Automatic"]).mean() > 0.1, schedule
    # The pipeline's own sampler is left as it was: the next recipe starts from the model's.
    assert type(runner.pipeline(model)[0].scheduler).__name__ == "PNDMScheduler"
    named = np.asarray(runner.run(_photo(), _recipe(sampler="DPM++ 2M Karras"), 7, model).image)
    chosen = np.asarray(runner.run(_photo(), _recipe(schedule="Karras"), 7, model).image)
    assert np.array_equal(named, chosen)


@pytest.mark.parametrize("schedule", [s for s in SCHEDULES if s in SIGMA_SCHEDULES or s == "SGM Uniform"])
def test_strength_still_runs_int_steps_times_strength(standin_model, schedule):
    runner = DiffusersImg2ImgRunner(native_size=64)
    pipe = runner.pipeline(str(standin_model))[0]
    calls = []
    handle = pipe.unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        runner.run(_photo(), _recipe(sampler="Euler", schedule=schedule, steps=10, strength=0.3), 1,
                   str(standin_model))
    finally:
        handle.remove()
    assert len(calls) == 3
