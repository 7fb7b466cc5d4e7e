"""``photobatch demo``: sample photos through color-correct, with a report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from photobatch.daemon.commands.common import Context, fail_on_usage_error


@click.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Workspace folder (default: a new temporary folder).")
@click.option("--model", help="A real model (a diffusers folder, a .safetensors or .gguf file or a hub "
                               "id); default: the stand-in.")
@click.pass_obj
@fail_on_usage_error
def demo(obj: Context, workdir, model):
    """Make a workspace with sample photos and run color-correct on them."""
    from photobatch.daemon.demo import run_demo

    ok = run_demo(workdir, model, catalog=obj.catalog, recipe_dirs=obj.recipe_dirs, echo=click.echo)
    sys.exit(0 if ok else 1)
