"""Benchmark: photobatch's runner against a plain diffusers loop over the same 32 photos.

Both sides load the model, run img2img with the same settings at the same working size and
write full-size JPEGs. photobatch also hashes each file, records it and the run in the
catalog, carries EXIF over, and restores full resolution by detail transfer; its CPU stages
(read, restore, write) overlap the model stage in threads, the way the daemon runs them.

    .venv/bin/python bench/runner.py [--images 32] [--model PATH] [--size 1200x800] [--batch N] [--repeats 2]

Without --model it uses the tiny stand-in (CPU-friendly). The last line is
``photobatch/plain ratio: X.XX`` (images per second, photobatch over plain).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import queue
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """Write ``count`` textured JPEGs with camera EXIF (what a shoot looks like to both sides)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for i in range(count):
        base = np.stack([90 + 70 * xx / w, 80 + 90 * yy / h, 150 - 50 * xx / w], axis=-1) + i
        pixels = np.clip(base + rng.normal(0, 12, (h, w, 1)), 0, 255).astype(np.uint8)
        img = Image.fromarray(pixels)
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "BenchCam", "BenchCam One"  # Make, Model
        path = folder / f"IMG_{i:04d}.jpg"
        img.save(path, quality=92, exif=exif.tobytes())
        paths.append(path)
    return paths


def plain_loop(paths, model: str, out: Path, recipe, native: int) -> float:
    """The 20-line script: load, img2img at working size, resize back, save. Returns seconds."""
    import torch
    from diffusers import AutoPipelineForImage2Image, DPMSolverMultistepScheduler

    from photobatch.plugins.diffusion.device import pick_device, pick_dtype
    from photobatch.plugins.diffusion.params import working_size

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    device = pick_device()
    pipe = AutoPipelineForImage2Image.from_pretrained(model, dtype=pick_dtype(device)).to(device)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type="dpmsolver++")
    pipe.set_progress_bar_config(disable=True)
    for i, path in enumerate(paths):
        img = Image.open(path).convert("RGB")
        small = img.resize(working_size(img.width, img.height, native), Image.Resampling.LANCZOS)
        result = pipe(prompt=recipe.prompt, negative_prompt=recipe.negative_prompt, image=small,
                      strength=recipe.strength, num_inference_steps=recipe.steps,
                      guidance_scale=recipe.cfg, generator=torch.Generator("cpu").manual_seed(i)).images[0]
        result.resize(img.size, Image.Resampling.LANCZOS).save(out / path.name, quality=95)
    return time.perf_counter() - start


def photobatch_run(paths, model: str, out: Path, recipe, native: int, batch: int) -> tuple[float, int]:
    """Session stages in a pipeline: prepare and finish in threads, the model stage in this one."""
    from photobatch.daemon.app import App
    from photobatch.daemon.session import Session

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    app = App(catalog_path=out / "catalog.db", model=model)
    runner = app.runners.get(recipe.runner)
    runner.native_override = native
    session = Session(app, out / "enhanced")
    prepared: queue.Queue = queue.Queue(maxsize=4)
    finished: queue.Queue = queue.Queue()
    done = []

    def reader():
        for path in paths:
            prepared.put(session.prepare(path, recipe))
        prepared.put(None)

    def writer():
        while (job := finished.get()) is not None:
            done.append(session.finish(job))

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    pending = []
    while True:
        job = prepared.get()
        if job is not None and not hasattr(job, "decoded"):
            done.append(job)  # skipped or failed while preparing
            continue
        if job is not None:
            pending.append(job)
        if pending and (job is None or len(pending) >= batch):
            if batch > 1:
                results = runner.run_batch([j.decoded.image for j in pending], recipe,
                                           [j.seed for j in pending], model)
                for j, result in zip(pending, results):
                    j.result = result
                    finished.put(j)
            else:
                for j in pending:
                    finished.put(session.generate(j))
            pending = []
        if job is None:
            break
    finished.put(None)
    for t in threads:
        t.join()
    app.close()
    ok = sum(1 for o in done if getattr(o, "status", "") == "done")
    return time.perf_counter() - start, ok


def main() -> None:
    """Run both sides and print images per second and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--model", help="diffusers folder (default: the tiny stand-in)")
    parser.add_argument("--size", default="1200x800", help="photo size WxH")
    parser.add_argument("--native", type=int, default=None, help="working side (default: the model's)")
    parser.add_argument("--batch", type=int, default=1, help="images per pipeline call (GPUs)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of both sides (best time kept)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch's CPU threads for both sides (1: the model gets one core, the way "
                             "a GPU is one device, and the host's CPU stages get the rest)")
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    size = tuple(int(v) for v in args.size.lower().split("x"))

    import torch

    from photobatch.plugins.diffusion.device import pick_device
    from photobatch.plugins.diffusion.families import family_of_folder
    from photobatch.plugins.diffusion.standin import save_standin_model
    from photobatch.recipes.loader import BUILTIN_DIR, load_recipe_file

    work = Path(tempfile.mkdtemp(prefix="photobatch-bench-"))
    model = args.model or str(save_standin_model(work / "standin"))
    native = args.native or family_of_folder(model).native
    recipe = dataclasses.replace(load_recipe_file(BUILTIN_DIR / "color-correct.toml"), batch=args.batch)
    paths = make_photos(work / "photos", args.images, size)
    device = pick_device()
    print(f"machine: {platform.node()} {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"device {device}")
    print(f"{args.images} photos {size[0]}x{size[1]}, model {'stand-in' if not args.model else model}, "
          f"working side {native}, recipe {recipe.name}: strength {recipe.strength}, {recipe.steps} steps, "
          f"{recipe.sampler}, full_resolution {recipe.full_resolution}, batch {args.batch}")
    # Alternate the sides and keep each one's best time: a shared machine's load then biases
    # neither side.
    plain_times, ours_times = [], []
    for round_ in range(args.repeats):
        plain_times.append(plain_loop(paths, model, work / f"plain{round_}", recipe, native))
        seconds, ok = photobatch_run(paths, model, work / f"ours{round_}", recipe, native, args.batch)
        if ok != len(paths):
            raise SystemExit(f"photobatch finished {ok} of {len(paths)} photos")
        ours_times.append(seconds)
        print(f"round {round_ + 1}: plain {plain_times[-1]:.1f} s, photobatch {seconds:.1f} s")
    plain_s, ours_s = min(plain_times), min(ours_times)
    plain_ips, ours_ips = len(paths) / plain_s, len(paths) / ours_s
    print(f"plain diffusers loop: {plain_s:.1f} s, {plain_ips:.2f} images/s")
    print(f"photobatch:           {ours_s:.1f} s, {ours_ips:.2f} images/s")
    print(f"photobatch/plain ratio: {ours_ips / plain_ips:.2f}")


if __name__ == "__main__":
    main()
