"""Benchmark: photobatch's runner against a plain diffusers loop over the same 32 photos.

Both sides load the model, run img2img with the same settings at the same working size and
write full-size JPEGs. The photobatch side is the daemon itself (``photobatch watch --once``
over the photos' folder, in this process): it hashes each file, records it and the run in
the catalog, queues it, carries EXIF over and restores full resolution by detail transfer,
its stages pipelined the way the daemon runs them (on a GPU the CPU stages overlap the model;
on the CPU they take turns with it).

    .venv/bin/python bench/runner.py [--images 32] [--model PATH] [--size 1200x800] [--batch N] [--repeats 2]
                                     [--precision auto|fp32|bf16|fp16]

Precision: the plain loop computes in what diffusers' own examples write (fp16 on CUDA, fp32
elsewhere); photobatch in its own choice (``auto``: bf16 where the device computes it natively,
CPUs with AVX512-BF16 or AMX included). ``--precision`` puts both sides on the one named.

Without --model it uses the tiny stand-in (CPU-friendly). The last line is
``photobatch/plain ratio: X.XX`` (images per second, photobatch over plain, from each side's best
round); the line before it gives each round's own ratio and their median.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
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


def plain_dtype(device: str, precision: str | None):
    """The plain loop's dtype: ``precision`` when given, else what diffusers' examples write."""
    import torch

    from photobatch.plugins.diffusion.device import pick_dtype

    if precision and precision != "auto":
        return pick_dtype(device, precision)
    return torch.float16 if device.startswith("cuda") else torch.float32


def plain_loop(paths, model: str, out: Path, recipe, native: int,
               precision: str | None) -> tuple[float, float]:
    """The 20-line script: load, img2img at working size, resize back, save. Returns (seconds,
    seconds in the model stage: the scaling to working size and the pipeline call)."""
    import torch
    from diffusers import AutoPipelineForImage2Image, DPMSolverMultistepScheduler

    from photobatch.plugins.diffusion.device import pick_device
    from photobatch.plugins.diffusion.params import working_size

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    device = pick_device()
    pipe = AutoPipelineForImage2Image.from_pretrained(model, dtype=plain_dtype(device, precision)).to(device)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type="dpmsolver++")
    pipe.set_progress_bar_config(disable=True)
    model_seconds = 0.0
    for i, path in enumerate(paths):
        img = Image.open(path).convert("RGB")
        model_start = time.perf_counter()  # the bench's own clock, not part of the script
        small = img.resize(working_size(img.width, img.height, native), Image.Resampling.LANCZOS)
        result = pipe(prompt=recipe.prompt, negative_prompt=recipe.negative_prompt, image=small,
                      strength=recipe.strength, num_inference_steps=recipe.steps,
                      guidance_scale=recipe.cfg, generator=torch.Generator("cpu").manual_seed(i)).images[0]
        model_seconds += time.perf_counter() - model_start
        result.resize(img.size, Image.Resampling.LANCZOS).save(out / path.name, quality=95)
    return time.perf_counter() - start, model_seconds


def photobatch_run(paths, model: str, out: Path, recipe_file: Path,
                   precision: str | None) -> tuple[float, int, float]:
    """``photobatch watch --once`` over the photos' folder, in this process. Returns (seconds,
    photos done, seconds in the model stage by the catalog's timings): the daemon's own intake,
    queue, catalog and stage pipeline."""
    from sqlite_utils import Database

    from photobatch.catalog.queries import Selection, run_stats
    from photobatch.daemon.config import Config, WatchFolder
    from photobatch.daemon.service import WatchService

    out.mkdir(parents=True, exist_ok=True)
    # The shoot is on disk already: nothing is still being copied, so no quiet period.
    folder = WatchFolder(path=paths[0].parent, recipes=(recipe_file.stem,), output=out / "enhanced",
                         quiet_seconds=0)
    config = Config(watch=(folder,), model=model, recipe_dirs=(recipe_file.parent,), source="bench",
                    precision=precision)
    start = time.perf_counter()
    status = WatchService(None, catalog_path=out / "catalog.db", once=True, config=config).run()
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"photobatch watch --once exited with {status}")
    stats = run_stats(Database(out / "catalog.db"), Selection())
    # "run": the scaling to working size and the pipeline call (the first photo's includes the
    # model's loading, which the plain loop does before its first photo).
    return seconds, stats["by_status"]["done"], stats["stage_seconds"].get("run", 0.0)


def run_side(side: str, work: Path, model: str, images: int, round_: int, torch_threads: int | None,
             precision: str | None) -> tuple[float, float]:
    """Run one side in a fresh process (how a user runs either); return (seconds, seconds in
    the model stage).

    A fresh process each: torch's CPU thread team belongs to the thread that first runs it,
    and a second thread running torch in one process makes both teams stop spinning between
    operations (about 20 % slower on 2 cores), so two sides in one process would not measure
    what a user gets from either.
    """
    cmd = [sys.executable, __file__, "--side", side, "--work", str(work), "--model", model,
           "--images", str(images), "--round", str(round_)]
    if torch_threads:
        cmd += ["--torch-threads", str(torch_threads)]
    if precision:
        cmd += ["--precision", precision]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {side} side failed:\n{done.stdout}{done.stderr}")
    seconds, model_seconds = done.stdout.strip().splitlines()[-1].split()
    return float(seconds), float(model_seconds)


def one_side(args) -> None:
    """The child process: run ``args.side`` once and print its seconds and its model stage's
    seconds on the last line."""
    # Both sides import torch and diffusers' pipelines before their clock starts (the import
    # alone takes seconds; photobatch would otherwise pay it inside its first model load).
    import torch
    from diffusers import AutoPipelineForImage2Image  # noqa: F401

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    from photobatch.plugins.diffusion.families import family_of_folder
    from photobatch.recipes.loader import BUILTIN_DIR, load_recipe_file

    work = Path(args.work)
    recipe_file = work / "recipes" / "bench-color-correct.toml"
    paths = sorted((work / "photos").glob("*.jpg"))[:args.images]
    if args.side == "plain":
        recipe = load_recipe_file(recipe_file, [BUILTIN_DIR])
        seconds, model_seconds = plain_loop(paths, args.model, work / f"plain{args.round}", recipe,
                                            family_of_folder(args.model).native, args.precision)
    else:
        seconds, ok, model_seconds = photobatch_run(paths, args.model, work / f"ours{args.round}",
                                                    recipe_file, args.precision)
        if ok != len(paths):
            raise SystemExit(f"photobatch finished {ok} of {len(paths)} photos")
    print(f"{seconds:.3f} {model_seconds:.3f}")


def main() -> None:
    """Run both sides and print images per second and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--model", help="diffusers folder (default: the tiny stand-in)")
    parser.add_argument("--size", default="1200x800", help="photo size WxH")
    parser.add_argument("--batch", type=int, default=1, help="images per pipeline call (GPUs)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of both sides (best time kept)")
    parser.add_argument("--full-resolution", choices=("detail-transfer", "resize"), default=None,
                        help="override the recipe's (resize: what the plain loop does, to see the "
                             "cost of the catalog and metadata alone)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch's CPU threads for both sides (1: the model gets one core, the way "
                             "a GPU is one device, and the host's CPU stages get the rest)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=None,
                        help="both sides compute in this (default: the plain loop in what diffusers' "
                             "examples use, photobatch in its own choice)")
    parser.add_argument("--side", choices=("plain", "photobatch"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return one_side(args)
    size = tuple(int(v) for v in args.size.lower().split("x"))

    import torch

    from photobatch.plugins.diffusion.device import pick_device, pick_dtype, precision_name
    from photobatch.plugins.diffusion.families import family_of_folder
    from photobatch.plugins.diffusion.standin import save_standin_model
    from photobatch.recipes.loader import BUILTIN_DIR, load_recipe_file

    work = Path(tempfile.mkdtemp(prefix="photobatch-bench-"))
    model = args.model or str(save_standin_model(work / "standin"))
    native = family_of_folder(model).native
    # The built-in recipe as a user's own file would extend it (batch only matters on GPUs).
    recipe_file = work / "recipes" / "bench-color-correct.toml"
    recipe_file.parent.mkdir()
    text = f'extends = "color-correct"\nname = "{recipe_file.stem}"\nbatch = {args.batch}\n'
    if args.full_resolution:
        text += f'full_resolution = "{args.full_resolution}"\n'
    recipe_file.write_text(text, encoding="utf-8")
    recipe = load_recipe_file(recipe_file, [BUILTIN_DIR])
    make_photos(work / "photos", args.images, size)
    threads = args.torch_threads or torch.get_num_threads()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, {threads} torch "
          f"threads, device {pick_device()}")
    device = pick_device()
    print(f"precision: plain {precision_name(plain_dtype(device, args.precision))}, photobatch "
          f"{precision_name(pick_dtype(device, args.precision))}")
    print(f"{args.images} photos {size[0]}x{size[1]}, model {'stand-in' if not args.model else model}, "
          f"working side {native}, recipe {recipe.name}: strength {recipe.strength}, {recipe.steps} steps, "
          f"{recipe.sampler}, full_resolution {recipe.full_resolution}, batch {args.batch}")
    # Alternate the sides and keep each one's best time: a shared machine's load then biases
    # neither side.
    plain_times, ours_times, plain_model, ours_model = [], [], [], []
    for round_ in range(args.repeats):
        for side, times, model_times in (("plain", plain_times, plain_model),
                                         ("photobatch", ours_times, ours_model)):
            seconds, model_seconds = run_side(side, work, model, args.images, round_,
                                              args.torch_threads, args.precision)
            times.append(seconds)
            model_times.append(model_seconds)
        print(f"round {round_ + 1}: plain {plain_times[-1]:.1f} s (model stage {plain_model[-1]:.1f} s), "
              f"photobatch {ours_times[-1]:.1f} s (model stage {ours_model[-1]:.1f} s)", flush=True)
    plain_s, ours_s = min(plain_times), min(ours_times)
    plain_ips, ours_ips = args.images / plain_s, args.images / ours_s
    print(f"plain diffusers loop: {plain_s:.1f} s, {plain_ips:.3g} images/s "
          f"({plain_s / args.images:.2f} s per image)")
    print(f"photobatch:           {ours_s:.1f} s, {ours_ips:.3g} images/s "
          f"({ours_s / args.images:.2f} s per image)")
    # Each round's two sides ran minutes apart under the same load: their ratio is the steadier
    # reading on a shared machine, and the median of them is printed beside the best times'.
    paired = sorted(p / o for p, o in zip(plain_times, ours_times))
    # Where the time goes, per photo (medians over the rounds): the model stage is diffusers'
    # pipeline call on both sides; the rest is each side's own work around it (photobatch's is
    # intake, catalog, detail transfer and the metadata-keeping write; on a GPU it runs beside
    # the model, on the CPU it takes turns with it), and photobatch's model loading, which
    # its first photo's model stage includes.
    def per_photo(values):
        return 1000 * statistics.median_high(values) / args.images

    rest_plain = [t - m for t, m in zip(plain_times, plain_model)]
    rest_ours = [t - m for t, m in zip(ours_times, ours_model)]
    print(f"per photo (median of rounds): model stage plain {per_photo(plain_model):.0f} ms, "
          f"photobatch {per_photo(ours_model):.0f} ms; the rest plain {per_photo(rest_plain):.0f} ms, "
          f"photobatch {per_photo(rest_ours):.0f} ms")
    print("per-round ratios: " + ", ".join(f"{r:.2f}" for r in paired)
          + f" (median {statistics.median_high(paired):.2f})")
    print(f"photobatch/plain ratio: {ours_ips / plain_ips:.2f}")


if __name__ == "__main__":
    main()
