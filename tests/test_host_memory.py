"""Freed host memory kept for reuse: big tensors stop being page-faulted in afresh every time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from photobatch.plugins.diffusion import host_memory

# A child process (malloc settings are per process and cannot be undone): allocate, fill and
# free a 64 MB tensor thirty times, and count the page faults of the last 29 rounds. (Kept,
# the first few rounds may still take fresh memory before malloc settles on reusing two
# blocks; measured: 6 of 30.)
_CHILD = r"""
import json, resource, sys
import torch
from photobatch.plugins.diffusion.host_memory import keep_freed_memory
applied = keep_freed_memory()
def round_():
    t = torch.empty(16 << 20)  # 64 MB of float32
    t.fill_(1.0)
    del t
round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(29):
    round_()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": applied, "faults": faults}))
"""


def _child(keep: str) -> dict:
    env = dict(os.environ, PHOTOBATCH_KEEP_FREED_MEMORY=keep)
    done = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings: Linux only")
def test_kept_memory_is_reused_without_page_faults():
    kept, returned = _child("1"), _child("0")
    assert kept["applied"] is True and returned["applied"] is False
    pages = 29 * (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    # Returned to the kernel, every round faults its pages in again; kept, they are reused.
    assert returned["faults"] > pages * 0.9
    assert kept["faults"] < pages * 0.4


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setattr(host_memory, "_applied", None)
    monkeypatch.setenv(host_memory.KEEP_FREED_MEMORY_ENV, "off")
    assert host_memory.keep_freed_memory() is False


def test_nothing_to_do_without_glibc(monkeypatch):
    monkeypatch.setattr(host_memory, "_applied", None)
    monkeypatch.delenv(host_memory.KEEP_FREED_MEMORY_ENV, raising=False)
    monkeypatch.setattr(host_memory.sys, "platform", "darwin")
    assert host_memory.keep_freed_memory() is False


def test_loading_a_model_keeps_freed_memory(monkeypatch, tmp_path):
    from photobatch.plugins.diffusion import cache as cache_module
    from photobatch.plugins.diffusion.standin import save_standin_model

    calls = []
    monkeypatch.setattr(cache_module, "keep_freed_memory", lambda: calls.append(1) or True)
    cache = cache_module.PipelineCache("cpu")
    cache.get(str(save_standin_model(tmp_path / "standin")))
    assert calls == [1]
