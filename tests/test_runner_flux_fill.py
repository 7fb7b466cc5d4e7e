"""FLUX.1 Fill: BFL's inpainting model, a tiny one built in code (its transformer reads the
masked photo and the mask beside the noise), saved as a diffusers folder and loaded back
through the real loading code, which diffusers' AutoPipelines cannot do for it. (Its strength,
determinism, LoRA, prompt cache and exactness outside the mask are tested beside the other flow
models in test_runner_flow.py.)"""

from __future__ import annotations

import pytest
from fakes import cli_shoot, flow_recipe, last_run, noise_photo
from PIL import Image

from photobatch.plugins.diffusion.families import FLUX, family_of_folder
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner


@pytest.fixture(scope="module")
def fill(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    return str(save_standin_model(tmp_path_factory.mktemp("fill") / "FLUX.1-Fill-dev", kind="flux-fill"))


def _recipe(**fields):
    return flow_recipe(**{"prompt": "natural skin", "cfg": 30.0, **fields})


def test_a_fill_folder_is_a_flux_inpainting_model_that_reads_the_mask(fill):
    info = family_of_folder(fill)
    assert info.family is FLUX and info.inpainting and info.variant == "fill" and info.table == "fill"
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    loaded = runner.cache.get(fill)
    assert type(loaded.pipe).__name__ == "FluxFillPipeline" and loaded.info.variant == "fill"
    widths = []
    hook = loaded.pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["hidden_states"].shape[-1]), with_kwargs=True)
    try:
        # img2img on an inpainting model: everything masked, as A1111 does.
        out = runner.run(noise_photo(150, 100, seed=1), _recipe(), 3, fill)
    finally:
        hook.remove()
    assert out.image.size == (160, 112) and out.family == "fill"
    assert widths == [64 + 64 + 256] * 4  # noise, masked photo and mask, packed; int(8 x 0.5) steps
    assert list(loaded.task_pipes.values()) == [loaded.pipe]  # its own pipeline, not a copy


def test_fill_refuses_controlnets_and_ip_adapters_by_name(fill, tmp_path):
    runner = DiffusersImg2ImgRunner(device="cpu", native_size=128)
    photo = noise_photo(seed=2)
    with pytest.raises(ValueError, match="controlnet does not run on FLUX.1 Fill models"):
        runner.run(photo, _recipe(controlnet={"model": "InstantX/FLUX.1-dev-Controlnet-Canny"}), 1, fill)
    with pytest.raises(ValueError, match="ip_adapter does not run on FLUX.1 Fill models"):
        runner.run(photo, _recipe(ip_adapter={"model": "XLabs-AI/flux-ip-adapter", "reference": "r.jpg"}), 1, fill)


def test_the_builtins_run_on_fill_at_its_guidance_through_the_cli(fill, tmp_path):
    run, cli = cli_shoot(tmp_path)
    done = run("color-correct", fill)
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["cfg"] == 30.0 and params["sampler"] == "Euler"
    assert params["negative_prompt"] == ""  # flux's table, under fill's
    assert Image.open(tmp_path / "out" / "DSCF0001_color-correct.jpg").size == (96, 64)
