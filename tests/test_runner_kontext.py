"""FLUX.1 Kontext: a tiny Kontext [dev] pipeline built in code, saved as a diffusers folder and
loaded back through the real loading code. It runs as strength-based img2img that also reads
the photo itself, with the recipes' [family.kontext] tables (instructions) over flux's.
(Its strength, determinism, working size, LoRA, prompt cache and inpainting exactness are
tested beside the other flow models in test_runner_flow.py.)"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from fakes import cli_shoot, flow_recipe, last_run, noise_photo
from fakes import pixels as _pixels
from PIL import Image

from photobatch.plugins.diffusion.families import FLUX, family_of_folder
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.schema import recipe_from_dict


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    root = tmp_path_factory.mktemp("kontext")
    # The same seed: the same weights, one saved as FLUX.1 [dev], one as Kontext [dev].
    return {kind: str(save_standin_model(root / kind, kind=kind)) for kind in ("flux", "flux-kontext")}


@pytest.fixture(scope="module")
def runner():
    return DiffusersImg2ImgRunner(device="cpu", native_size=128)


_recipe = functools.partial(flow_recipe, prompt="Make it winter", cfg=2.5)


def test_a_kontext_folder_is_flux_that_also_reads_the_photo(models, runner):
    info = family_of_folder(models["flux-kontext"])
    assert info.family is FLUX and info.kontext and info.table == "kontext"
    assert not family_of_folder(models["flux"]).kontext and family_of_folder(models["flux"]).table == "flux"
    photo = noise_photo(150, 100, seed=1)
    loaded = runner.cache.get(models["flux-kontext"])
    assert type(loaded.pipe).__name__ == "FluxKontextPipeline" and loaded.info.kontext
    tokens = []
    hook = loaded.pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: tokens.append(kwargs["hidden_states"].shape[1]), with_kwargs=True)
    try:
        out = runner.run(photo, _recipe(), 3, models["flux-kontext"])
    finally:
        hook.remove()
    assert out.family == "kontext" and out.image.size == out.working_size == (160, 112)
    # The noise's 10 x 7 packed latents, and as many of the photo's own beside them.
    assert tokens == [2 * 10 * 7] * 4
    assert [type(p).__name__ for p in loaded.task_pipes.values()] == ["FluxKontextInpaintPipeline"]
    # The same weights as plain FLUX.1 img2img give another picture: the photo is read.
    plain = runner.run(photo, _recipe(), 3, models["flux"])
    assert np.abs(_pixels(out) - _pixels(plain)).mean() > 0.5


def test_kontext_tables_apply_over_flux_ones():
    recipe = recipe_from_dict({
        "name": "t", "prompt": "a winter photograph", "negative_prompt": "blurry", "cfg": 7.0,
        "family": {"flux": {"sampler": "Euler", "cfg": 3.5, "negative_prompt": ""},
                   "kontext": {"prompt": "Make it winter. Keep everything else.", "cfg": 2.5}}})
    on_flux, on_kontext = recipe.for_family("flux"), recipe.for_family("kontext")
    assert (on_flux.prompt, on_flux.cfg, on_flux.negative_prompt) == ("a winter photograph", 3.5, "")
    assert (on_kontext.prompt, on_kontext.cfg) == ("Make it winter. Keep everything else.", 2.5)
    assert on_kontext.sampler == "Euler" and on_kontext.negative_prompt == ""  # from flux's
    assert recipe.for_family("sd1").prompt == "a winter photograph"
    assert on_kontext.fingerprint != on_flux.fingerprint


def test_the_builtin_recipes_carry_kontext_instructions_variant_by_variant():
    from photobatch.recipes.loader import BUILTIN_DIR, load_recipes

    builtins = load_recipes([BUILTIN_DIR])
    for name in ("color-correct", "portrait-retouch", "season:winter", "season:autumn",
                 "time-of-day", "time-of-day:night", "style-match"):
        on_kontext = builtins[name].for_family("kontext")
        assert on_kontext.cfg == 2.5 and on_kontext.sampler == "Euler", name
        assert on_kontext.prompt != builtins[name].for_family("flux").prompt, name
        assert "Keep" in on_kontext.prompt and on_kontext.negative_prompt == "", name
    assert "to winter" in builtins["season:winter"].for_family("kontext").prompt
    assert "to autumn" in builtins["season:autumn"].for_family("kontext").prompt
    assert "golden hour" in builtins["time-of-day"].for_family("kontext").prompt


def test_kontext_takes_an_ip_adapter_and_refuses_a_controlnet_by_name(models, runner, tmp_path):
    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.standin_flow import save_standin_flux_ip_adapter

    adapter = save_standin_flux_ip_adapter(DiffusionPipeline.from_pretrained(models["flux-kontext"]),
                                           tmp_path / "ip")
    reference = tmp_path / "look.png"
    noise_photo(64, 64, seed=9).save(reference)
    photo = noise_photo(160, 112, seed=8)
    model = models["flux-kontext"]

    def styled(scale):
        return _pixels(runner.run(photo, _recipe(ip_adapter={
            "model": str(adapter), "reference": str(reference), "scale": scale}), 2, model))

    plain = _pixels(runner.run(photo, _recipe(), 2, model))
    strong, weak = styled(1.0), styled(0.2)
    assert np.abs(strong - plain).mean() > 0.5 and np.abs(strong - weak).mean() > 0.2
    assert np.array_equal(plain, _pixels(runner.run(photo, _recipe(), 2, model)))  # unloaded
    with pytest.raises(ValueError, match="controlnet does not run on FLUX.1 Kontext models"):
        runner.run(photo, _recipe(controlnet={"model": "InstantX/FLUX.1-dev-Controlnet-Canny"}), 2, model)


def test_the_builtin_season_runs_on_kontext_through_the_cli_with_its_instruction(models, tmp_path, read_meta):
    run, cli = cli_shoot(tmp_path, structure=(
        'prompt = "snow"\nstrength = 0.5\nsteps = 4\nsampler = "Euler"\n'
        '[controlnet]\nmodel = "InstantX/FLUX.1-dev-Controlnet-Canny"\n'))
    refused = run("structure", models["flux-kontext"])
    assert refused.exit_code != 0 and "recipe 'structure': controlnet does not run on FLUX.1 Kontext" in refused.output
    assert not (tmp_path / "out").exists()  # refused before any photo
    done = run("season:winter", models["flux-kontext"])
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["cfg"] == 2.5 and params["sampler"] == "Euler"
    assert params["prompt"].startswith("Change the season of this photograph to winter")
    output = tmp_path / "out" / "DSCF0001_season-winter.jpg"
    assert Image.open(output).size == (96, 64)
    exif, _, xmp = read_meta(output)
    assert exif["Exif.Image.Model"]
    assert "Change the season of this photograph to winter" in "".join(map(str, xmp.values()))
    shown = cli("recipes", "show", "season:winter", "--family", "kontext")
    assert shown.exit_code == 0 and 'cfg = 2.5' in shown.output and "to winter" in shown.output


def test_a_kontext_single_file_is_told_by_its_model_config(models, tmp_path):
    from safetensors.numpy import save_file

    from photobatch.daemon.app import _local_info

    # A FLUX.1 transformer's header (only the header is read): BFL's layout.
    single = tmp_path / "flux1-kontext-dev.safetensors"
    save_file({"double_blocks.0.img_attn.qkv.weight": np.zeros((3, 1), np.float32)}, str(single))
    assert _local_info(str(single), models["flux-kontext"]).table == "kontext"
    assert _local_info(str(single), models["flux"]).table == "flux"


def test_a_recipe_that_writes_its_own_prompt_is_not_given_its_bases_kontext_instruction(tmp_path):
    from photobatch.recipes.loader import BUILTIN_DIR, load_recipes

    (tmp_path / "mine.toml").write_text('extends = "season:winter"\nprompt = "a snowy alpine village"\n')
    (tmp_path / "slower.toml").write_text('extends = "season:winter"\nsteps = 40\n')
    (tmp_path / "worded.toml").write_text('extends = "season:winter"\nprompt = "snowy village"\n'
                                          '[family.kontext]\nprompt = "Cover the village in snow."\n')
    recipes = load_recipes([BUILTIN_DIR, tmp_path])
    mine = recipes["mine"].for_family("kontext")
    assert mine.prompt == "a snowy alpine village" and mine.cfg == 2.5  # the rest of the table stays
    assert recipes["slower"].for_family("kontext").prompt == recipes["season:winter"].for_family("kontext").prompt
    assert recipes["worded"].for_family("kontext").prompt == "Cover the village in snow."
    assert recipes["worded"].for_family("sd1").prompt == "snowy village"
