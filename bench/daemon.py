"""Benchmark: the daemon's host overhead over its runner, and memory with a long queue.

Phase 1: 200 JPEGs (1600x1200) through the real watch service (catalog queue, pipeline,
decode, metadata, encode) with a runner of fixed cost, against the same runner called alone on
the same, already decoded, inputs. Host overhead = daemon wall time / runner-alone time - 1:
the service's start and stop, and whatever CPU work the pipeline fails to hide behind the runner.
Phase 2: 1,000 small files queued at once with a zero-cost runner; peak RSS after the first 100
against the peak at the end shows whether memory stays flat with a long queue.

    .venv/bin/python bench/daemon.py [--files 200] [--cost 0.25]

The last line reads ``host overhead: X.X%``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil

from photobatch.daemon.config import parse_config
from photobatch.daemon.samples import write_sample_photo
from photobatch.daemon.service import WatchService
from photobatch.plugins import hookimpl
from photobatch.plugins.manager import build_plugin_manager


class FixedCostRunner:
    """Sleeps ``cost`` seconds per image (a GPU's time, during which the host must keep up)."""

    name = "fixed-cost"

    def __init__(self, cost: float):
        self.cost = cost
        self.calls = 0

    def run(self, image, recipe, seed, model):
        self.calls += 1
        time.sleep(self.cost)
        small = image.resize((max(8, image.width // 2), max(8, image.height // 2)))
        return SimpleNamespace(image=small, model_id=model, model_hash=None, device="cpu",
                               working_size=small.size)


class RunnerPlugin:
    """Registers the fixed-cost runner through the hook a third-party runner uses."""

    def __init__(self, runner):
        self.runner = runner

    @hookimpl
    def photobatch_runners(self):
        """The bench's runner."""
        return [self.runner]


def _workspace(root: Path, count: int, size: tuple[int, int]) -> Path:
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    first = write_sample_photo(inbox / "IMG_00000.JPG", size=size, seed=0)
    data = first.read_bytes()
    for i in range(1, count):
        # Distinct content per file (identity is by hash): append a byte after the EOI marker.
        (inbox / f"IMG_{i:05d}.JPG").write_bytes(data + i.to_bytes(4, "big"))
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / "bench.toml").write_text('name = "bench"\nrunner = "fixed-cost"\nstrength = 0.3\n'
                                        'steps = 10\n[output]\nquality = 90\n')
    return root


def _service(root: Path, runner) -> WatchService:
    config = parse_config({
        "recipe_dirs": [str(root / "recipes")],
        "defaults": {"model": "bench/fixed-cost"},
        "workers": {"decode": 2, "encode": 2},
        "watch": [{"path": str(root / "inbox"), "recipes": ["bench"], "output": str(root / "out"),
                   "quiet_seconds": 0}],
    }, source="bench")
    return WatchService(None, root / "catalog.db", once=True, config=config,
                        plugin_manager_factory=lambda cfg: build_plugin_manager(
                            entrypoints=False, extra=[RunnerPlugin(runner)]))


def _run(service: WatchService) -> float:
    # Signal handlers need the main thread, which is where the service runs here too.
    started = time.perf_counter()
    status = service.run()
    assert status == 0, f"watch --once failed ({status})"
    return time.perf_counter() - started


def runner_alone(root: Path, runner) -> float:
    """The same runner calls on the same (already decoded) inputs, one after another."""
    from PIL import Image, ImageOps

    total = 0.0
    for path in sorted((root / "inbox").iterdir()):
        with Image.open(path) as img:
            image = ImageOps.exif_transpose(img).convert("RGB")
        started = time.perf_counter()
        runner.run(image, None, 0, "bench/fixed-cost")
        total += time.perf_counter() - started
    return total


def phase_overhead(files: int, cost: float) -> tuple[float, float]:
    """``files`` JPEGs through the daemon and the runner alone: (daemon seconds, runner seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = _workspace(Path(tmp), files, (1600, 1200))
        alone = runner_alone(root, FixedCostRunner(cost))
        runner = FixedCostRunner(cost)
        wall = _run(_service(root, runner))
        assert runner.calls == files, runner.calls
        return wall, alone


def phase_memory(files: int) -> tuple[float, float]:
    """Peak RSS in MiB over the first 100 of ``files`` queued photos and over the rest."""
    proc = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        root = _workspace(Path(tmp), files, (640, 480))
        runner = FixedCostRunner(0.0)
        peaks = {"early": 0.0, "end": 0.0}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                rss = proc.memory_info().rss / 2**20
                key = "early" if runner.calls <= 100 else "end"
                peaks[key] = max(peaks[key], rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _run(_service(root, runner))
        stop.set()
        sampler.join()
        return peaks["early"], peaks["end"]


def main() -> None:
    """Run both phases and print the host overhead and the memory peaks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--cost", type=float, default=0.25, help="runner seconds per image")
    parser.add_argument("--memory-files", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}")
    early, end = phase_memory(args.memory_files)
    print(f"memory: {args.memory_files} files queued; peak RSS {early:.0f} MiB over the first 100, "
          f"{end:.0f} MiB over the rest ({(end / early - 1) * 100:+.1f}%)")
    wall, runner_time = phase_overhead(args.files, args.cost)
    print(f"throughput: {args.files} JPEGs 1600x1200 in {wall:.1f} s "
          f"({args.files / wall:.2f}/s); runner alone {runner_time:.1f} s")
    print(f"host overhead: {(wall / runner_time - 1) * 100:.1f}%")


if __name__ == "__main__":
    main()
