"""Shared fixtures: no network, private user dirs, and the stand-in model built once per run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest


class NetworkBlocked(RuntimeError):
    """Raised when a test tries to reach the network."""


def _refuse(*args, **kwargs):
    raise NetworkBlocked("tests must not touch the network")


# This machine itself is not the network: a test may serve and reach 127.0.0.1 (a local stand-in
# for a notification server).
_LOOPBACK = ("127.0.0.1", "::1")
_connect, _connect_ex, _create_connection = (socket.socket.connect, socket.socket.connect_ex,
                                             socket.create_connection)


def _loopback_only(real):
    def guarded(*args, **kwargs):
        address = args[1] if real is not _create_connection else args[0]
        if isinstance(address, tuple) and address[0] in _LOOPBACK:
            return real(*args, **kwargs)
        return _refuse()

    return guarded


def pytest_configure(config):
    """In an xdist worker, give torch (here and in the CLI processes tests start) its share of
    the cores: two workers with a thread per core each run 2-3x slower than one."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers > 1:
        share = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        import torch

        torch.set_num_threads(share)


@pytest.fixture(autouse=True)
def no_network_and_private_dirs(monkeypatch, tmp_path_factory):
    """Block sockets (but for loopback), force Hugging Face offline, and keep user dirs out of $HOME."""
    monkeypatch.setattr(socket.socket, "connect", _loopback_only(_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _loopback_only(_connect_ex))
    monkeypatch.setattr(socket, "create_connection", _loopback_only(_create_connection))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("PHOTOBATCH_LOG", str(home / "photobatch.log"))
    monkeypatch.delenv("PHOTOBATCH_CATALOG", raising=False)
    monkeypatch.delenv("PHOTOBATCH_MODEL", raising=False)
    monkeypatch.setenv("PHOTOBATCH_DEVICE", "cpu")
    monkeypatch.delenv("PHOTOBATCH_PRECISION", raising=False)  # tests run what users get


@pytest.fixture(scope="session")
def standin_model(tmp_path_factory):
    """The tiny random SD pipeline, saved once as a diffusers folder."""
    from photobatch.plugins.diffusion.standin import save_standin_model

    return save_standin_model(tmp_path_factory.mktemp("models") / "standin")


class ExifTool:
    """exiftool, the independent check of the metadata photobatch reads and writes."""

    MISSING = ("exiftool is not installed (Debian: apt install libimage-exiftool-perl); "
               "it is the independent check of the metadata we {}")

    @property
    def available(self) -> bool:
        """True when exiftool is on PATH."""
        return shutil.which("exiftool") is not None

    def require(self, checks: str = "write") -> str:
        """The exiftool executable; without one the test fails under CI and is skipped elsewhere.

        ``checks`` ends the reason: the metadata we ``write`` (or ``read and write``).
        """
        exe = shutil.which("exiftool")
        if exe is None:
            reason = self.MISSING.format(checks)
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        return exe

    def json(self, path: Path, *options: str, checks: str = "write") -> dict:
        """exiftool's reading of ``path`` (numbers as numbers: -n), as a dict."""
        result = subprocess.run([self.require(checks), "-j", "-n", *options, str(path)],
                                capture_output=True, text=True, check=False)
        return json.loads(result.stdout)[0]

    def warnings(self, path: Path, *, exit_zero: bool = False) -> list[str]:
        """Run ``exiftool -validate``; fail on any error (and, with ``exit_zero``, on a non-zero
        exit status); return the "Warning..." lines."""
        result = subprocess.run([self.require(), "-validate", "-warning", "-error", "-a", "-s",
                                 "-s", str(path)], capture_output=True, text=True, check=False)
        lines = result.stdout.splitlines() + result.stderr.splitlines()
        if exit_zero:
            assert result.returncode == 0, lines
        assert not [line for line in lines if "Error" in line], lines
        return [line for line in lines if line.startswith("Warning")]


@pytest.fixture(scope="session")
def exiftool() -> ExifTool:
    """The exiftool helper: ``require()``, ``json(path, *options)``, ``warnings(path)``."""
    return ExifTool()


def _read_meta(path: Path) -> tuple[dict, dict, dict]:
    import pyexiv2

    img = pyexiv2.ImageData(path.read_bytes())
    try:
        return img.read_exif(), img.read_iptc(), img.read_xmp()
    finally:
        img.close()


@pytest.fixture(scope="session")
def read_meta():
    """``read_meta(path)``: the file's (EXIF, IPTC, XMP) dicts as pyexiv2 reads them."""
    return _read_meta


@pytest.fixture()
def identity_plugin():
    """A plugin whose one runner, "identity", returns its input, so a test sees exactly what
    the session read and wrote around the model."""
    from photobatch.plugins import hookimpl
    from photobatch.plugins.diffusion.runner import RunOutput

    class Identity:
        name = "identity"

        def run(self, image, recipe, seed, model):
            return RunOutput(image.copy(), str(model), None, "cpu", image.size)

    class IdentityPlugin:
        @hookimpl
        def photobatch_runners(self):
            return [Identity()]

    return IdentityPlugin()


@pytest.fixture()
def identity_session(tmp_path, identity_plugin):
    """A Session writing to ``tmp_path/out`` whose recipes may use the "identity" runner; its
    model is a placeholder folder, never loaded."""
    from photobatch.daemon.app import App
    from photobatch.daemon.session import Session
    from photobatch.plugins.manager import build_plugin_manager

    model = tmp_path / "placeholder-model"
    model.mkdir(exist_ok=True)
    (model / "model_index.json").write_text("{}")  # resolves as a diffusers folder
    app = App(catalog_path=tmp_path / "catalog.db", model=str(model),
              plugin_manager=build_plugin_manager(entrypoints=False, extra=[identity_plugin]))
    yield Session(app, tmp_path / "out")
    app.close()
