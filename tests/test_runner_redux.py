"""FLUX.1 Redux as a recipe's ip_adapter model: a tiny prior (SigLIP encoder and projection)
built in code, saved as a diffusers folder laid out like black-forest-labs/FLUX.1-Redux-dev and
loaded back through the real loading code; its tokens join the prompt's."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import cli_shoot, flow_recipe, last_run, noise_photo, pixels

from photobatch.plugins.diffusion.redux import is_redux
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.sources import ModelError


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model
    from photobatch.plugins.diffusion.standin_flow import save_standin_flux_redux

    root = tmp_path_factory.mktemp("redux")
    references = []
    for seed in (9, 10):
        path = root / f"look-{seed}.png"
        noise_photo(64, 64, seed=seed).save(path)
        references.append(str(path))
    return dict(flux=str(save_standin_model(root / "flux", kind="flux")),
                redux=str(save_standin_flux_redux(root / "FLUX.1-Redux-dev")), references=references,
                runner=DiffusersImg2ImgRunner(device="cpu", native_size=128), root=root)


def _styled(kit, photo, scale=1.0, reference=None, **fields):
    recipe = flow_recipe(ip_adapter={"model": kit["redux"], "scale": scale,
                                     "reference": reference or kit["references"][0]}, **fields)
    return kit["runner"].run(photo, recipe, 2, kit["flux"])


def test_redux_tokens_join_the_prompts_and_each_setting_is_read(kit):
    assert is_redux(kit["redux"]) and not is_redux(kit["flux"])
    assert is_redux("black-forest-labs/FLUX.1-Redux-dev")  # a hub id not cached: by its name
    photo = noise_photo(160, 112, seed=8)
    plain = pixels(kit["runner"].run(photo, flow_recipe(), 2, kit["flux"]))
    transformer = kit["runner"].cache.get(kit["flux"]).pipe.transformer
    tokens = []
    hook = transformer.register_forward_pre_hook(
        lambda module, args, kwargs: tokens.append(kwargs["encoder_hidden_states"].shape[1]), with_kwargs=True)
    try:
        strong = pixels(_styled(kit, photo, 1.0))
    finally:
        hook.remove()
    assert set(tokens) == {512 + 64}  # the prompt's T5 tokens, and 8 x 8 of the reference's
    weak = pixels(_styled(kit, photo, 0.3))
    other = pixels(_styled(kit, photo, 1.0, reference=kit["references"][1]))
    both = pixels(_styled(kit, photo, 1.0, reference=kit["references"]))
    # Small in a tiny model (64 image tokens beside 512 prompt tokens), and each one's own:
    assert np.abs(strong - plain).mean() > 0.2  # the reference is read
    assert np.abs(strong - weak).mean() > 1.0  # the scale (it scales the prompt's part too)
    assert np.abs(strong - other).mean() > 0.1  # which photo it is
    assert np.abs(both - strong).mean() > 0.05 and np.abs(both - other).mean() > 0.05  # both count
    assert np.array_equal(plain, pixels(kit["runner"].run(photo, flow_recipe(), 2, kit["flux"])))


def test_redux_goes_with_a_flux_controlnet_and_nowhere_it_cannot_run(kit, standin_model, tmp_path):
    import shutil

    from diffusers import DiffusionPipeline

    from photobatch.plugins.diffusion.standin_flow import save_standin_flux_controlnet

    controlnet = str(save_standin_flux_controlnet(DiffusionPipeline.from_pretrained(kit["flux"]),
                                                  tmp_path / "canny"))
    photo = noise_photo(seed=3)
    with_cn = pixels(_styled(kit, photo, controlnet={"model": controlnet}))
    assert with_cn.std() > 0  # Redux conditions through the prompt, which ControlNet pipelines take
    with pytest.raises(ValueError, match="is FLUX.1 Redux, which conditions FLUX.1 models only, not SD 1.x"):
        DiffusersImg2ImgRunner(native_size=64).run(photo, flow_recipe(
            sampler="DPM++ 2M", ip_adapter={"model": kit["redux"], "reference": kit["references"][0]}),
            1, str(standin_model))
    broken = tmp_path / "redux-half-copied"
    shutil.copytree(kit["redux"], broken)
    (broken / "image_embedder" / "diffusion_pytorch_model.safetensors").write_bytes(b"broken")
    with pytest.raises(ModelError, match=f"ip_adapter {broken} could not be loaded"):
        kit["runner"].run(photo, flow_recipe(ip_adapter={"model": str(broken), "reference": kit["references"][0]}),
                          2, kit["flux"])


def test_style_match_takes_redux_through_a_family_table_and_records_it(kit, tmp_path):
    run, _ = cli_shoot(tmp_path, look=(
        f'extends = "style-match"\n[ip_adapter]\nreference = "{kit["references"][0]}"\n'
        f'[family.flux.ip_adapter]\nmodel = "{kit["redux"]}"\nscale = 0.8\n'))
    done = run("look", kit["flux"])
    assert done.exit_code == 0, done.output
    status, params = last_run(tmp_path / "c.db")
    assert status == "done" and params["ip_adapter"]["model"] == kit["redux"]
    assert params["ip_adapter"]["scale"] == 0.8 and params["sampler"] == "Euler"


def test_redux_conditions_flux_kontext_too(kit):
    """Kontext reads the photo itself and the prompt's tokens: a Redux reference joins those as
    on FLUX.1 [dev]."""
    from photobatch.plugins.diffusion.standin import save_standin_model

    kontext = str(save_standin_model(kit["root"] / "kontext", kind="flux-kontext"))
    photo = noise_photo(160, 112, seed=8)
    plain = pixels(kit["runner"].run(photo, flow_recipe(cfg=2.5), 2, kontext))
    transformer = kit["runner"].cache.get(kontext).pipe.transformer
    tokens = []
    hook = transformer.register_forward_pre_hook(
        lambda module, args, kwargs: tokens.append(kwargs["encoder_hidden_states"].shape[1]), with_kwargs=True)
    try:
        styled = pixels(kit["runner"].run(photo, flow_recipe(cfg=2.5, ip_adapter={
            "model": kit["redux"], "scale": 1.0, "reference": kit["references"][0]}), 2, kontext))
    finally:
        hook.remove()
    assert set(tokens) == {512 + 64}
    assert np.abs(styled - plain).mean() > 0.2


def test_redux_conditions_flux_fill_for_masked_work(kit):
    """Fill + Redux, ComfyUI's way of putting a reference's look into a masked region: the Fill
    pipeline takes the prompt embeddings Redux makes, though no IP-Adapter."""
    from PIL import Image

    from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
    from photobatch.plugins.diffusion.standin import save_standin_model

    fill = str(save_standin_model(kit["root"] / "fill", kind="flux-fill"))
    inpaint = DiffusersInpaintRunner(device="cpu", native_size=128, cache=kit["runner"].cache)
    photo = noise_photo(160, 112, seed=8)
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (40, 20, 120, 90))
    plain = pixels(inpaint.run(photo, flow_recipe(cfg=30.0), 2, fill, mask=mask))
    transformer = kit["runner"].cache.get(fill).pipe.transformer
    tokens = []
    hook = transformer.register_forward_pre_hook(
        lambda module, args, kwargs: tokens.append(kwargs["encoder_hidden_states"].shape[1]), with_kwargs=True)
    try:
        styled = pixels(inpaint.run(photo, flow_recipe(cfg=30.0, ip_adapter={
            "model": kit["redux"], "scale": 1.0, "reference": kit["references"][0]}), 2, fill, mask=mask))
    finally:
        hook.remove()
    assert set(tokens) == {512 + 64}
    assert np.abs(styled - plain).mean() > 0.2
    # A plain IP-Adapter still has nowhere to go on Fill.
    with pytest.raises(ValueError) as err:
        inpaint.run(photo, flow_recipe(cfg=30.0, ip_adapter={
            "model": "XLabs-AI/flux-ip-adapter", "reference": kit["references"][0]}), 2, fill, mask=mask)
    assert "ip_adapter does not run on FLUX.1 Fill models" in str(err.value)
