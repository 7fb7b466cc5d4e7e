"""A fake runner, a one-shot daemon run and a one-photo CLI shoot, shared by the tests."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from photobatch.plugins import hookimpl


class FakeRunner:
    """A runner named ``fake`` that says it runs on ``device`` (None: says nothing), takes
    ``seconds`` per call and records each call's photo count and thread."""

    name = "fake"

    def __init__(self, device: str | None, seconds: float = 0.2):
        if device is not None:
            self.device = device
        self.seconds = seconds
        self.calls: list[int] = []
        self.threads: set[str] = set()

    def _one(self, image, model):
        return SimpleNamespace(image=image.resize((48, 32)), model_id=model, model_hash=None,
                               device=getattr(self, "device", "cpu"), working_size=(48, 32))

    def run(self, image, recipe, seed, model):
        self.calls.append(1)
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)  # the model's time: the next photos are decoded meanwhile
        return self._one(image, model)

    def run_batch(self, images, recipe, seeds, model):
        self.calls.append(len(images))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        return [self._one(image, model) for image in images]

    def plugin(self):
        """A plugin contributing this runner."""
        return runner_plugin(self)


def runner_plugin(runner):
    """A plugin contributing ``runner`` (any object with the runner interface)."""

    class Plugin:
        @hookimpl
        def photobatch_runners(self):
            return [runner]
    return Plugin()


def watch_once(tmp_path: Path, runner: FakeRunner, recipe_toml: str, photos: int) -> Path:
    """``photobatch watch --once`` over ``photos`` sample photos with the recipe ``f`` (its TOML
    after the name and runner lines) on ``runner``; returns the output folder."""
    from photobatch.daemon.config import parse_config
    from photobatch.daemon.samples import write_sample_photo
    from photobatch.daemon.service import WatchService
    from photobatch.plugins.manager import build_plugin_manager

    inbox, recipes = tmp_path / "in", tmp_path / "recipes"
    inbox.mkdir()
    recipes.mkdir()
    (recipes / "f.toml").write_text('name = "f"\nrunner = "fake"\n' + recipe_toml, encoding="utf-8")
    for i in range(photos):
        write_sample_photo(inbox / f"P{i}.JPG", size=(96, 64), seed=i)
    config = parse_config({"recipe_dirs": [str(recipes)], "defaults": {"model": "test/model"},
                           "watch": [{"path": str(inbox), "recipes": ["f"], "output": str(tmp_path / "out"),
                                      "quiet_seconds": 0}]}, source="test")
    service = WatchService(None, tmp_path / "c.db", once=True, config=config,
                           plugin_manager_factory=lambda c: build_plugin_manager(
                               entrypoints=False, extra=[runner.plugin()]))
    assert service.run() == 0
    return tmp_path / "out"


def reloadable_service(tmp_path: Path, defaults_line: str):
    """A watch service built from a config whose ``[defaults]`` holds ``defaults_line``, and a
    function that rewrites that line and reloads the service (what a HUP does)."""
    from photobatch.daemon.service import WatchService

    inbox = tmp_path / "in"
    inbox.mkdir()
    config_file = tmp_path / "config.toml"

    def write(line: str) -> None:
        config_file.write_text(f'[defaults]\nmodel = "test/model"\n{line}\n[[watch]]\n'
                               f'path = "{inbox}"\nrecipes = ["color-correct"]\n'
                               f'output = "{tmp_path / "out"}"\n', encoding="utf-8")

    write(defaults_line)
    service = WatchService(config_file, tmp_path / "c.db")
    service.app = service.build_app(service.config)
    service.pipeline = SimpleNamespace(wake=lambda: None)

    def reload_with(line: str) -> None:
        write(line)
        service._reload()
    return service, reload_with


def noise_photo(width: int = 96, height: int = 64, seed: int = 0):
    """An RGB picture of uniform noise: what runner tests feed the tiny models."""
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def cli_shoot(tmp_path: Path, **recipes):
    """A one-photo shoot and a recipe folder holding ``recipes`` (name: TOML text); returns
    ``run(recipe, model, *more)``, which runs ``photobatch run`` on the shoot into out/, and
    ``cli(*args)`` for any other command, both on the one catalog."""
    from click.testing import CliRunner

    from photobatch.daemon.cli import main
    from photobatch.daemon.samples import write_sample_photo

    folder = tmp_path / "recipes"
    folder.mkdir(exist_ok=True)
    for name, text in recipes.items():
        (folder / f"{name}.toml").write_text(text)
    shoot = tmp_path / "shoot"
    shoot.mkdir(exist_ok=True)
    write_sample_photo(shoot / "DSCF0001.JPG", size=(96, 64), seed=1)

    def cli(*args):
        return CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "--recipes",
                                         str(folder), *map(str, args)])

    def run(recipe, model, *more):
        return cli("run", shoot, "--recipe", recipe, "--model", model, "--out", tmp_path / "out",
                   *more)

    return run, cli


def flow_recipe(**fields):
    """A recipe the flow models (FLUX.1, SD 3.x) run: Euler, 8 steps at strength 0.5, guidance
    3.5; ``fields`` change it."""
    from photobatch.recipes.schema import recipe_from_dict

    return recipe_from_dict({"name": "r", "prompt": "a photo of snow", "strength": 0.5, "steps": 8,
                             "cfg": 3.5, "sampler": "Euler", **fields})


def transformer_calls(pipe):
    """Count the forward calls of ``pipe``'s transformer (one per denoising step for Euler, two
    where guidance runs as a second pass): returns the list the calls go into and the hook to
    remove."""
    calls = []
    return calls, pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(1))


def pixels(out):
    """A runner output's picture as float64 pixels."""
    import numpy as np

    return np.asarray(out.image, dtype=np.float64)


def last_run(db: Path) -> tuple[str, dict]:
    """The status and recorded parameters of the last run in the catalog at ``db``."""
    import json
    import sqlite3

    con = sqlite3.connect(db)
    try:
        status, params = con.execute("SELECT status, params FROM runs ORDER BY id DESC").fetchone()
    finally:
        con.close()
    return status, json.loads(params)


def cache_on_hub(tmp_path: Path, repo_id: str, folder: Path, monkeypatch,
                 commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """Put a copy of ``folder`` in a Hugging Face cache under ``tmp_path`` as ``repo_id``'s
    snapshot ``commit`` (the cache's layout: models--org--name/{refs/main, snapshots/<commit>/}),
    and point huggingface_hub at that cache; returns the repo's folder."""
    import shutil

    from huggingface_hub import constants

    repo = tmp_path / "hub" / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return repo


def save_gguf(checkpoint: Path, target: Path, arch: str = "flux", quant: str = "Q8_0") -> Path:
    """The tensors of the .safetensors ``checkpoint`` written as a GGUF file the way city96's
    are (gguf-py's writer): each layer's 2-D weight whose rows split into 32-value blocks
    quantised to ``quant`` (a type gguf-py quantises: Q8_0, Q5_1, Q4_0...), the rest (biases,
    norms, pad tokens) kept in float32."""
    import gguf
    import numpy as np
    from safetensors.torch import load_file

    kind = gguf.GGMLQuantizationType[quant]
    writer = gguf.GGUFWriter(str(target), arch=arch)
    for name, tensor in load_file(str(checkpoint)).items():
        values = tensor.float().numpy()
        if name.endswith(".weight") and values.ndim == 2 and values.shape[1] % 32 == 0:
            writer.add_tensor(name, gguf.quants.quantize(values, kind), raw_dtype=kind)
        else:
            writer.add_tensor(name, values.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target


def same_weights(expected: dict, got: dict) -> bool:
    """Whether a loaded model's state dict ``got`` holds exactly ``expected``'s tensors, as
    read into the precision the model runs in (fp32, or bf16 on a CPU that computes it)."""
    return set(expected) == set(got) and all(
        got[k].equal(expected[k].to(got[k].dtype)) for k in expected)


def machine_precision() -> str:
    """The precision runners pick by default on this machine's CPU ("fp32", or "bf16" where the
    CPU computes bf16 natively)."""
    from photobatch.plugins.diffusion.device import pick_dtype, precision_name

    return precision_name(pick_dtype("cpu"))


def first_transformer_input(pipe, **call) -> dict:
    """The keyword arguments ``pipe``'s transformer is given in the first step of
    ``pipe(**call)``, as it runs them (what the pipeline's own hooks add included); the call is
    stopped there."""
    import pytest

    seen = {}

    class Seen(Exception):
        pass

    def stop(module, args, kwargs, output):
        seen.update(kwargs)
        raise Seen

    hook = pipe.transformer.register_forward_hook(stop, with_kwargs=True)
    try:
        with pytest.raises(Seen):
            pipe(**call)
    finally:
        hook.remove()
    return seen


# A drop-in plugin file (for --plugins-dir) with a runner named ``small``: it shrinks the
# picture to 48x32 and is no torch model, so the stages of `photobatch run` overlap.
SMALL_RUNNER_PLUGIN = '''
from types import SimpleNamespace
from photobatch.plugins import hookimpl


class Small:
    name = "small"

    def run(self, image, recipe, seed, model):
        out = image.resize((48, 32))
        return SimpleNamespace(image=out, model_id=model, model_hash=None, device="cpu",
                               working_size=out.size)


@hookimpl
def photobatch_runners():
    return [Small()]
'''
