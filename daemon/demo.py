"""``photobatch demo``: a workspace with sample photos, color-correct on each, and a report."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

from photobatch.daemon.paths import default_model_cache

STANDIN_NOTICE = (
    "No model given, so the demo uses photobatch's stand-in: a tiny model with random weights.\n"
    "Everything runs for real (loading, img2img, EXIF, catalog) but its pictures are colour\n"
    "noise, not edits. For real results point at a Stable Diffusion model, e.g.\n"
    "  photobatch demo --model /path/to/stable-diffusion-v1-5   (a diffusers folder)\n"
    "  photobatch demo --model stable-diffusion-v1-5/stable-diffusion-v1-5   (a hub id)"
)


def run_demo(workdir: Path | None, model: str | None, *, catalog: Path | None = None,
             recipe_dirs=(), echo: Callable[[str], None] = print) -> bool:
    """Build the workspace, run color-correct on the samples, print a table; True if all worked."""
    from photobatch.daemon.app import App
    from photobatch.daemon.paths import expand_inputs
    from photobatch.daemon.run_stages import Work, process_all
    from photobatch.daemon.samples import write_demo_shoot
    from photobatch.daemon.session import Session
    from photobatch.daemon.tables import render_table
    from photobatch.plugins import metadata

    started = time.perf_counter()
    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="photobatch-demo-"))
    inbox, outbox = workdir / "inbox", workdir / "enhanced"
    inbox.mkdir(parents=True, exist_ok=True)
    if model is None:
        from photobatch.plugins.diffusion.standin import save_standin_model

        echo(STANDIN_NOTICE)
        model = str(save_standin_model(default_model_cache()))
    app = App(catalog_path=catalog or workdir / "catalog.db", recipe_dirs=recipe_dirs, model=model)
    recipe = app.recipe("color-correct")
    app.check_runnable(recipe, app.model_for(recipe))
    recipe = app.for_model(recipe, app.model_for(recipe))  # what the line below says runs
    write_demo_shoot(inbox)
    session = Session(app, outbox)
    echo(f"\nworkspace {workdir}\n  photos   {inbox}\n  outputs  {outbox}\n  catalog  {app.catalog_path}")
    label = app.model_label(model, recipe.model_config)
    echo(f"recipe {recipe.name}: strength {recipe.strength}, {recipe.steps} steps "
         f"({recipe.denoising_steps} denoising), CFG {recipe.cfg}, {recipe.sampler}; model {model}"
         f"{f' ({label})' if label else ''}\n")
    rows = []

    def on_outcome(outcome) -> None:
        path = outcome.path
        src = metadata.read_summary(path)
        if outcome.status == "done":
            out = metadata.read_summary(outcome.output)
            kept = [k for k in ("make", "model", "date_taken", "gps_lat") if out.get(k) == src.get(k)]
            rows.append([path.name, camera_name(src.get("make"), src.get("model")),
                         src.get("orientation") or 1, outcome.output.name,
                         _size(outcome.output), f"{len(kept)}/4", out.get("orientation"),
                         f"{outcome.seconds:.1f}"])
        else:
            rows.append([path.name, "", "", outcome.status, "", "", "", outcome.error or ""])

    photos = expand_inputs([inbox])
    process_all(session, [Work(path, recipe) for path in photos], on_outcome)
    ok = all(row[3] not in ("failed", "skipped") for row in rows)
    echo(render_table(["photo", "camera", "orient.", "output", "size", "EXIF kept",
                       "orient. out", "seconds"], rows))
    base = f"{_command()} --catalog {app.catalog_path}"
    gallery = workdir / "gallery"
    echo(f"\n{sum(r[3] != 'failed' for r in rows)} of {len(rows)} photos enhanced in "
         f"{time.perf_counter() - started:.1f} s. Look around:\n"
         f"  {base} catalog ls\n"
         f"  {base} catalog show {photos[0]}\n"
         f"  {base} export gallery --out {gallery}   "
         f"(then open {gallery / 'index.html'}: a before/after slider on each photo)\n"
         f"  {base} export files --out {workdir / 'web'} --long-edge 1024 --sharpen screen   "
         f"(web-size copies, as Lightroom exports them)")
    app.close()
    return ok


def _command() -> str:
    """How to call photobatch from here: by name when it is on PATH, else the venv's script."""
    import shutil
    import sys

    script = Path(sys.executable).with_name("photobatch")
    on_path = shutil.which("photobatch")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "photobatch"
    return str(script) if script.exists() else "photobatch"


def camera_name(make: str | None, model: str | None) -> str:
    """'Canon EOS R6m2' rather than 'Canon Canon EOS R6m2' (many models repeat the make)."""
    make, model = (make or "").strip(), (model or "").strip()
    if model.lower().startswith(make.split(" ")[0].lower()):
        return model
    return f"{make} {model}".strip()


def _size(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as img:
        return f"{img.width}x{img.height}"
