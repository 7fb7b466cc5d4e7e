"""Shared fixtures: no network, private user dirs, and the stand-in model built once per run."""

from __future__ import annotations

import socket

import pytest


class NetworkBlocked(RuntimeError):
    """Raised when a test tries to reach the network."""


def _refuse(*args, **kwargs):
    raise NetworkBlocked("tests must not touch the network")


@pytest.fixture(autouse=True)
def no_network_and_private_dirs(monkeypatch, tmp_path_factory):
    """Block sockets, force Hugging Face offline, and keep user dirs out of $HOME."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
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


@pytest.fixture(scope="session")
def standin_model(tmp_path_factory):
    """The tiny random SD pipeline, saved once as a diffusers folder."""
    from photobatch.plugins.diffusion.standin import save_standin_model

    return save_standin_model(tmp_path_factory.mktemp("models") / "standin")
