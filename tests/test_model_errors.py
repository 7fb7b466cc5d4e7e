"""A model that cannot be used: refused once, before any photo, or failed with its reason.

A wrong path, a pickle checkpoint or a folder that is no pipeline is refused by ``run``,
``demo``, ``rerun --model`` and ``watch``'s config check before a single photo; a model gone
since its run was queued fails that run with the reason in the catalog; a hub that gives no
answer is asked once, a cached hub model then loads from the cache, and a model that failed to
load fails the next photos at once instead of loading again for each.
"""

from __future__ import annotations

import re
import shutil
import socket
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save_file

from photobatch.daemon.cli import main
from photobatch.daemon.samples import write_sample_photo
from photobatch.plugins.diffusion import cache as cache_module
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.sources import HUB_PROBE_SECONDS, ModelError
from photobatch.recipes.schema import recipe_from_dict


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture()
def inbox(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    for i in range(3):
        write_sample_photo(folder / f"DSCF000{i}.JPG", size=(96, 64), orientation=1, seed=i)
    return folder


# What diffusers writes into a part's config.json when it saves a model quantized on load.
BNB_NF4 = {"quant_method": "bitsandbytes", "load_in_4bit": True, "load_in_8bit": False,
           "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "bfloat16",
           "bnb_4bit_use_double_quant": False, "llm_int8_skip_modules": None}
TORCHAO_INT8 = {"quant_method": "torchao", "quant_type": "int8wo", "quant_type_kwargs": {}}


def _quantized_copy(standin_model, folder, part: str, quantization: dict):
    """The stand-in model, its ``part`` saying it was saved with ``quantization`` (the weights
    stay as they are: what is checked is read from the configs)."""
    import json

    shutil.copytree(standin_model, folder)
    config_file = folder / part / "config.json"
    config = json.loads(config_file.read_text())
    config["quantization_config"] = quantization
    config_file.write_text(json.dumps(config))
    return folder


def _bad_models(tmp_path, standin_model):
    incomplete = tmp_path / "half-copied-model"
    shutil.copytree(standin_model, incomplete, ignore=shutil.ignore_patterns("unet"))
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"not looked at")
    not_a_pipeline = tmp_path / "photos-not-a-model"
    not_a_pipeline.mkdir()
    broken = tmp_path / "half-downloaded.safetensors"
    broken.write_bytes(b"\xff" * 64)
    flux = tmp_path / "FLUX.1-Canny-dev"  # a complete folder of a pipeline photobatch does not run
    flux.mkdir()
    (flux / "model_index.json").write_text('{"_class_name": "FluxControlPipeline", "transformer": '
                                           '["diffusers", "FluxTransformer2DModel"]}')
    (flux / "transformer").mkdir()
    nf4 = _quantized_copy(standin_model, tmp_path / "sd15-nf4", "unet", BNB_NF4)
    lora = tmp_path / "film-lora.safetensors"  # a real safetensors file, but no checkpoint
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight":
               np.zeros((4, 4), np.float32)}, str(lora))
    return [(tmp_path / "missing", "does not exist"),
            (pickle, "pickle checkpoints .* can run code"),
            (not_a_pipeline, "has no model_index.json"),
            (broken, "half-downloaded.safetensors is not a readable .safetensors file"),
            (lora, "film-lora.safetensors does not look like a Stable Diffusion 1.x, 2.x or SDXL "
                   "checkpoint"),
            (incomplete, "half-copied-model has no unet/, which its model_index.json names"),
            (nf4, r"sd15-nf4 holds bitsandbytes 4-bit nf4 weights \(unet\), which diffusers loads "
                  r"only on a GPU, and this runs on the CPU: run it on a CUDA device, or use the "
                  r"model's unquantized folder or a GGUF file"),
            (flux, r"FLUX.1-Canny-dev is a FluxControlPipeline; photobatch runs Stable Diffusion 1.x, "
                   r"2.x, SDXL, SD 3.x, FLUX.1 \(Kontext and Fill included\), FLUX.2 \(\[klein\] and "
                   r"\[dev\]\), Qwen-Image \(Edit included\) and Z-Image models")]


def test_pipelines_of_other_families_are_named_and_refused():
    from photobatch.plugins.diffusion.families import unsupported_pipeline

    for ok in ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionXLPipeline",
               "StableDiffusionXLInpaintPipeline", "LatentConsistencyModelPipeline",
               "StableDiffusion3Pipeline", "FluxPipeline", "FluxImg2ImgPipeline", "FluxKontextPipeline",
               "FluxKontextInpaintPipeline", "FluxFillPipeline", "Flux2KleinPipeline", "Flux2Pipeline",
               "ZImagePipeline",
               "ZImageImg2ImgPipeline", "QwenImagePipeline", "QwenImageInpaintPipeline",
               "QwenImageEditPipeline", "QwenImageEditInpaintPipeline", "QwenImageEditPlusPipeline", None):
        assert unsupported_pipeline(ok, "m") is None, ok
    for other in ("FluxControlPipeline", "FluxPriorReduxPipeline", "StableDiffusionControlNetPipeline",
                  "KandinskyV22Pipeline", "StableDiffusion3ControlNetPipeline", "Flux2KontextPipeline",
                  "ZImageControlNetPipeline", "QwenImageLayeredPipeline", "QwenImage21Pipeline"):
        assert unsupported_pipeline(other, "model m").startswith(f"model m is a {other}; "), other


def test_run_refuses_a_model_that_cannot_be_there_before_any_photo(inbox, tmp_path, standin_model):
    db = tmp_path / "catalog.db"
    for model, reason in _bad_models(tmp_path, standin_model):
        result = _invoke("--catalog", db, "run", inbox, "--recipe", "color-correct",
                         "--model", model, "--out", tmp_path / "out")
        assert result.exit_code == 1
        assert re.search(reason, result.output), result.output
        # Said once, not once per photo, and without a traceback.
        assert result.output.count("Error:") == 1 and "Traceback" not in result.output
        assert "FAILED" not in result.output and "unexpected" not in result.output
    assert not (tmp_path / "out").exists()
    if db.exists():  # nothing was registered or run
        with sqlite3.connect(db) as con:
            assert con.execute("select count(*) from runs").fetchone()[0] == 0


def test_a_cached_hub_model_of_a_pipeline_photobatch_does_not_run_is_refused_before_any_photo(
        inbox, tmp_path, monkeypatch):
    """Its cached model_index.json tells, as a folder's does (offline: nothing is asked)."""
    from fakes import cache_on_hub

    edit = tmp_path / "edit"
    edit.mkdir()
    (edit / "model_index.json").write_text('{"_class_name": "QwenImageLayeredPipeline"}')
    cache_on_hub(tmp_path, "Qwen/Qwen-Image-Layered", edit, monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _invoke("--catalog", tmp_path / "c.db", "run", inbox, "--recipe", "color-correct",
                     "--model", "Qwen/Qwen-Image-Layered", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "model Qwen/Qwen-Image-Layered is a QwenImageLayeredPipeline; photobatch runs" in result.output
    assert result.output.count("Error:") == 1 and not (tmp_path / "out").exists()


def test_quantized_folders_say_what_they_need(tmp_path, standin_model, monkeypatch):
    import sys

    import torch

    from photobatch.plugins.diffusion import quantized
    from photobatch.plugins.diffusion.loading import load_pipeline
    from photobatch.plugins.diffusion.sources import resolve_model

    nf4 = _quantized_copy(standin_model, tmp_path / "flux-nf4", "text_encoder", BNB_NF4)
    int8 = _quantized_copy(standin_model, tmp_path / "sd-int8", "unet", TORCHAO_INT8)
    assert set(quantized.quantized_parts(nf4)) == {"text_encoder"}
    assert quantized.quantized_parts(standin_model) == {}
    assert quantized.quantized_folder_problem(standin_model, "cpu", "model m") is None
    monkeypatch.setattr(quantized, "_installed", lambda module: False)
    assert quantized.quantized_folder_problem(nf4, "cuda:0", "model m") == (
        f"model m holds bitsandbytes 4-bit nf4 weights (text_encoder), which need the "
        f"bitsandbytes package: install it with {sys.executable} -m pip install bitsandbytes")
    assert quantized.quantized_folder_problem(int8, "cpu", "model m") == (
        f"model m holds torchao int8wo weights (unet), which need the torchao package: install "
        f"it with {sys.executable} -m pip install torchao")
    monkeypatch.setattr(quantized, "_installed", lambda module: True)
    assert quantized.quantized_folder_problem(int8, "cpu", "model m") is None
    assert quantized.quantized_folder_problem(nf4, "cuda", "model m") is None
    monkeypatch.undo()
    # Loaded without the check first (a hub id cached meanwhile): diffusers' own error ("No
    # GPU found", a missing package's metadata) becomes the same sentence.
    with pytest.raises(ModelError, match=r"flux-nf4 holds bitsandbytes 4-bit nf4 weights "
                                         r"\(text_encoder\), which diffusers loads only on a GPU"):
        load_pipeline(resolve_model(str(nf4)), "cpu", torch.float32)


def test_demo_refuses_a_missing_model_before_writing_its_photos(tmp_path):
    result = _invoke("demo", "--dir", tmp_path / "ws", "--model", tmp_path / "missing")
    assert result.exit_code == 1 and "does not exist" in result.output
    assert list((tmp_path / "ws" / "inbox").iterdir()) == []


def test_rerun_refuses_a_missing_model(tmp_path):
    result = _invoke("--catalog", tmp_path / "c.db", "rerun", "--all", "--now",
                     "--model", tmp_path / "missing")
    assert result.exit_code == 1 and "does not exist" in result.output
    assert "nothing to re-run" not in result.output


def test_watch_does_not_start_with_a_model_that_cannot_be_there(tmp_path, standin_model):
    from photobatch.daemon.config import Config, ConfigError, WatchFolder
    from photobatch.daemon.service import WatchService

    (tmp_path / "in").mkdir()
    folder = WatchFolder(path=tmp_path / "in", recipes=("color-correct",), output=tmp_path / "out")
    for model, reason in _bad_models(tmp_path, standin_model):
        config = Config(watch=(folder,), model=str(model), source="test.toml")
        service = WatchService(None, catalog_path=tmp_path / "c.db", once=True, config=config)
        with pytest.raises(ConfigError, match=rf"test.toml: watch\[0\] runs 'color-correct': .*{reason}"):
            service.run()
    # No model at all is the same kind of mistake: said at start, not once per photo.
    service = WatchService(None, catalog_path=tmp_path / "c.db", once=True,
                           config=Config(watch=(folder,), source="test.toml"))
    with pytest.raises(ConfigError, match="runs 'color-correct' with no model"):
        service.run()


def test_a_run_whose_model_has_gone_fails_with_the_reason_in_the_catalog(inbox, tmp_path):
    # A run queued (or re-run) with a model that was moved since: a clear reason, recorded.
    from photobatch.daemon.app import App
    from photobatch.daemon.session import Session

    app = App(catalog_path=tmp_path / "c.db")
    recipe = app.recipe("color-correct")
    photo = inbox / "DSCF0000.JPG"
    outcome = Session(app, tmp_path / "out").process(photo, recipe, model=str(tmp_path / "moved"))
    assert outcome.status == "failed"
    assert outcome.error.startswith("error while running color-correct on DSCF0000.JPG: model ")
    assert "does not exist" in outcome.error and "unexpected" not in outcome.error
    run = app.catalog.db.execute("select status, error, model_id from runs").fetchall()
    assert run == [("failed", outcome.error, str(tmp_path / "moved"))]
    app.close()


@pytest.fixture()
def connections(monkeypatch):
    """Sockets stay blocked (conftest); this counts the attempts to open one."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise ConnectionRefusedError("no network in tests")

    monkeypatch.setattr(socket, "create_connection", refuse)
    # Not told to stay offline: the hub is asked (huggingface_hub read the variable at import).
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return attempts


def _recipe():
    return recipe_from_dict({"name": "t", "prompt": "natural colours", "strength": 0.5, "steps": 4,
                             "cfg": 6.0, "sampler": "Euler"})


def test_an_uncached_hub_model_with_no_network_is_asked_once_and_says_so(connections):
    runner = DiffusersImg2ImgRunner()
    with pytest.raises(ModelError, match=r"not in the Hugging Face cache and the Hugging Face hub "
                                         r"cannot be reached \(.*no network in tests.*\)"):
        runner.pipeline("nobody/not-a-cached-model")
    # One question, no retries: huggingface_hub's backoff asks six times (~23 s) per photo.
    # (huggingface_hub may also try once for its own agent registry, timeout 3 s.)
    assert [a for a in connections if a[-1] == HUB_PROBE_SECONDS] == [(("huggingface.co", 443),
                                                                     HUB_PROBE_SECONDS)]
    assert len(connections) <= 2
    # The next photo fails at once, with the same reason, without asking again.
    asked = len(connections)
    with pytest.raises(ModelError, match="cannot be reached"):
        runner.pipeline("nobody/not-a-cached-model")
    assert len(connections) == asked


def test_a_cached_hub_model_loads_from_the_cache_when_the_hub_gives_no_answer(
        connections, standin_model, tmp_path, monkeypatch):
    from huggingface_hub import constants

    # The Hugging Face cache's layout: models--org--name/{refs/main, snapshots/<commit>/...}.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--cached-standin"
    shutil.copytree(standin_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    runner = DiffusersImg2ImgRunner(native_size=64)
    pipe, ref, _, _ = runner.pipeline("someone/cached-standin")
    assert ref.kind == "hub" and type(pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    assert [a for a in connections if a[-1] == HUB_PROBE_SECONDS] == [(("huggingface.co", 443),
                                                                     HUB_PROBE_SECONDS)]
    from PIL import Image

    out = runner.run(Image.new("RGB", (96, 64), (120, 90, 60)), _recipe(), seed=1,
                     model="someone/cached-standin")
    assert out.image.size == out.model_input.size
    # Its catalog identity is the cached revision; a newer one downloaded makes it another
    # (what `rerun --stale` compares).
    from photobatch.plugins.diffusion.sources import model_hash, resolve_model

    assert out.model_hash == commit[:16]
    newer = "89abcdef0123456789abcdef0123456789abcdef"
    shutil.copytree(repo / "snapshots" / commit, repo / "snapshots" / newer)
    (repo / "refs" / "main").write_text(newer)
    assert model_hash(resolve_model("someone/cached-standin")) == newer[:16]
    assert model_hash(resolve_model("someone/not-cached")) is None


def test_a_model_that_failed_to_load_fails_the_next_photos_at_once(standin_model, tmp_path,
                                                                   monkeypatch):
    broken = tmp_path / "broken"
    shutil.copytree(standin_model, broken)
    shutil.rmtree(broken / "unet")
    loads = []
    real = cache_module.load_pipeline
    monkeypatch.setattr(cache_module, "load_pipeline", lambda *a: loads.append(a) or real(*a))
    runner = DiffusersImg2ImgRunner()
    with pytest.raises(ModelError) as first:
        runner.pipeline(str(broken))
    with pytest.raises(ModelError) as second:
        runner.pipeline(str(broken))
    assert str(second.value) == str(first.value) and len(loads) == 1
    # Named for what it lacks, not for the config.json diffusers looked for inside it.
    assert str(first.value).endswith("broken has no unet/, which its model_index.json names: an "
                                     "incomplete download or copy")
    # Later (the user may have mended it) the next photo loads it again.
    shutil.copytree(standin_model / "unet", broken / "unet")
    monkeypatch.setattr(cache_module, "FAILED_LOAD_SECONDS", 0.0)
    pipe, *_ = runner.pipeline(str(broken))
    assert len(loads) == 2 and pipe is not None


def test_a_recipe_whose_adapter_files_are_not_there_is_refused_before_any_photo(inbox, tmp_path,
                                                                                standin_model):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "film.safetensors").write_bytes(b"found beside the recipe")
    write_sample_photo(recipes / "look.jpg", size=(64, 48), orientation=1, seed=9)
    (recipes / "my-look.toml").write_text(
        'extends = "color-correct"\nname = "my-look"\n'
        'loras = [{path = "film.safetensors", weight = 0.8},\n'
        '         {path = "/nowhere/grain.safetensors", weight = 0.5},\n'
        '         {path = "someone/lora-on-the-hub", weight = 0.5}]\n'
        'embeddings = [{path = "easyneg.safetensors", token = "easyneg"}]\n'
        'vae = "./vaes/ft-mse"\n'
        '[ip_adapter]\nmodel = "h94/IP-Adapter"\nreference = "look.jpg"\nscale = 0.6\n')
    db = tmp_path / "c.db"
    result = _invoke("--catalog", db, "--recipes", recipes, "run", inbox, "--recipe", "my-look",
                     "--model", standin_model, "--out", tmp_path / "out")
    assert result.exit_code == 1 and result.output.count("Error:") == 1
    assert ("recipe 'my-look' reads files that are not there: lora /nowhere/grain.safetensors; "
            "embedding easyneg.safetensors; vae ./vaes/ft-mse" in result.output), result.output
    # The file found beside the recipe and the hub ids (which only the hub can answer for) pass.
    assert "film" not in result.output and "lora-on-the-hub" not in result.output
    assert "h94" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_lora_path_with_nothing_there_says_so_when_it_loads(standin_model, tmp_path):
    # What a run queued earlier meets if the file went since: not a hub error about offline mode.
    recipe = recipe_from_dict({"name": "t", "prompt": "natural colours", "strength": 0.5,
                               "steps": 4, "cfg": 6.0, "sampler": "Euler",
                               "loras": [{"path": str(tmp_path / "gone.safetensors"), "weight": 1}]})
    from PIL import Image

    with pytest.raises(ModelError, match=r"^lora .*gone.safetensors does not exist$"):
        DiffusersImg2ImgRunner(native_size=64).run(Image.new("RGB", (64, 64)), recipe, seed=1,
                                                   model=str(standin_model))


def test_a_broken_single_file_fails_its_load_with_a_model_error(tmp_path):
    # The path a queued run takes (no check before it): a ModelError with the reason, which the
    # session records as the run's error, not an unexpected SafetensorError.
    broken = tmp_path / "half-downloaded.safetensors"
    broken.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelError, match=r"could not be loaded: half-downloaded.safetensors is not a "
                                         r"readable .safetensors file \(Error while deserializing"):
        DiffusersImg2ImgRunner().pipeline(str(broken))


def test_the_daemon_records_a_photo_whose_model_went_after_it_started(inbox, tmp_path,
                                                                      standin_model, monkeypatch):
    # Checked at start, gone by the time a photo arrives (an unmounted disk): the photo is not
    # dropped with a log line; its run fails with the reason in the catalog, to be retried.
    from photobatch.daemon.config import Config, WatchFolder
    from photobatch.daemon.service import WatchService

    model = tmp_path / "model-on-a-disk"
    shutil.copytree(standin_model, model)
    real_build = WatchService.build_app

    def build_then_unmount(self, config):
        app = real_build(self, config)
        shutil.rmtree(model)
        return app

    monkeypatch.setattr(WatchService, "build_app", build_then_unmount)
    folder = WatchFolder(path=inbox, recipes=("color-correct",), output=tmp_path / "out",
                         quiet_seconds=0)
    config = Config(watch=(folder,), model=str(model), source="test.toml")
    status = WatchService(None, catalog_path=tmp_path / "c.db", once=True, config=config).run()
    assert status == 1
    with sqlite3.connect(tmp_path / "c.db") as con:
        runs = con.execute("select status, error from runs").fetchall()
    assert len(runs) == 3 and {r[0] for r in runs} == {"failed"}
    assert all("model-on-a-disk' does not exist" in r[1] for r in runs), runs


@pytest.mark.parametrize("device, setup, reason", [
    ("cuda", {"cuda_build": None, "gpus": 0},
     r"device cuda: this PyTorch \(.*\) is built without CUDA: install a CUDA build of torch, or "
     r"set the device to auto or cpu"),
    ("cuda", {"cuda_build": "12.4", "gpus": 0},
     r"device cuda: no CUDA GPU is visible \(the driver, CUDA_VISIBLE_DEVICES\)"),
    ("cuda:1", {"cuda_build": "12.4", "gpus": 1},
     r"device cuda:1: this machine has 1 CUDA GPU\(s\), cuda:0 to cuda:0"),
    ("mps", {"mps": False}, r"device mps: Apple's Metal \(MPS\) is not available here"),
    ("tpu", {}, r"device 'tpu' is not one torch knows: use auto, cpu, cuda, cuda:N or mps"),
])
def test_a_device_that_is_not_here_is_refused_before_any_photo(inbox, tmp_path, standin_model,
                                                               monkeypatch, device, setup, reason):
    # What this machine lacks is simulated the way torch reports it (its build, its GPU count).
    import torch

    if "cuda_build" in setup:
        monkeypatch.setattr(torch.version, "cuda", setup["cuda_build"])
        monkeypatch.setattr(torch.version, "hip", None, raising=False)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: setup["gpus"])
    if "mps" in setup:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: setup["mps"])
    monkeypatch.setenv("PHOTOBATCH_DEVICE", device)
    result = _invoke("--catalog", tmp_path / "c.db", "run", inbox, "--recipe", "color-correct",
                     "--model", standin_model, "--out", tmp_path / "out")
    assert result.exit_code == 1 and result.output.count("Error:") == 1
    assert re.search(reason, result.output), result.output
    assert "unexpected" not in result.output and not (tmp_path / "out").exists()
    # A run that gets past the check (queued before the config changed) fails with it too.
    from PIL import Image

    with pytest.raises(ModelError, match=reason):
        DiffusersImg2ImgRunner(device=device).run(Image.new("RGB", (64, 64)), _recipe(), seed=1,
                                                  model=str(standin_model))


def test_a_precision_that_is_no_precision_is_refused_before_any_photo(inbox, tmp_path,
                                                                      standin_model, monkeypatch):
    monkeypatch.setenv("PHOTOBATCH_PRECISION", "fp8")
    result = _invoke("--catalog", tmp_path / "c.db", "run", inbox, "--recipe", "color-correct",
                     "--model", standin_model, "--out", tmp_path / "out")
    assert result.exit_code == 1 and result.output.count("Error:") == 1
    assert "PHOTOBATCH_PRECISION must be one of auto, fp32, fp16, bf16, got 'fp8'" in result.output


def test_rerun_now_refuses_once_when_a_lora_its_recipe_reads_is_gone(inbox, tmp_path, standin_model):
    from photobatch.plugins.diffusion.standin_addons import save_standin_lora

    recipes = tmp_path / "recipes"
    pipe = DiffusersImg2ImgRunner().pipeline(str(standin_model))[0]
    lora = save_standin_lora(pipe, recipes / "film.safetensors", seed=1)
    (recipes / "film.toml").write_text('extends = "color-correct"\nname = "film"\n'
                                       'loras = [{path = "film.safetensors", weight = 0.5}]\n')
    db = tmp_path / "c.db"
    done = _invoke("--catalog", db, "--recipes", recipes, "run", inbox, "--recipe", "film",
                   "--model", standin_model, "--out", tmp_path / "out")
    assert done.exit_code == 0, done.output
    lora.unlink()
    result = _invoke("--catalog", db, "--recipes", recipes, "rerun", "--all", "--now")
    assert result.exit_code == 1 and result.output.count("Error:") == 1, result.output
    assert "recipe 'film' reads files that are not there: lora film.safetensors" in result.output
    assert "FAILED" not in result.output
    with sqlite3.connect(db) as con:
        assert con.execute("select status from runs").fetchall() == [("done",)] * 3
