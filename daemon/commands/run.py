"""``photobatch run``: run recipes over photos and folders now."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from photobatch.daemon.commands.common import Context, fail_on_usage_error, process_and_sum_up
from photobatch.daemon.pairs import DEFAULT_PAIRS, PAIR_CHOICES


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--recipe", "recipe_names", required=True, multiple=True,
              help="Recipe name (see `photobatch recipes`); repeatable: each photo gets an output "
                   "of each, as a watch folder's recipes do.")
@click.option("--model", help="A diffusers folder, a .safetensors or .gguf file or a hub id (default: "
                               "the recipe's, or PHOTOBATCH_MODEL).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("enhanced"),
              show_default=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Redo files that already have an output for the recipe.")
@click.option("--pairs", type=click.Choice(PAIR_CHOICES), default=None,
              help="RAW+JPEG pairs in the folders walked (IMG_0001.NEF beside IMG_0001.JPG): run "
                   "the RAW, the camera's JPEG, or both (default: the config's [defaults] pairs, "
                   "else raw).")
@click.option("--flat", is_flag=True,
              help="Put every output straight in --out (by default the subfolders of a folder "
                   "given are kept: shoot/day2/x.jpg goes to OUT/day2/).")
@click.pass_obj
@fail_on_usage_error
def run(obj: Context, paths, recipe_names, model, out_dir, force, pairs, flat):
    """Run recipes on photos and folders (folders are walked); exit 1 if any file failed."""
    from photobatch.daemon.pairs import why_left_out
    from photobatch.daemon.paths import expand_inputs, mirrored_output
    from photobatch.daemon.run_stages import Work
    from photobatch.daemon.session import Session

    app = obj.app(model)
    recipes = [app.recipe(name) for name in dict.fromkeys(recipe_names)]
    for recipe in recipes:  # every recipe's problem before any photo
        app.check_runnable(recipe, app.model_for(recipe))
    left_out: list[tuple[Path, Path]] = []
    roots: dict[Path, Path] = {}
    files = expand_inputs(list(paths), exclude=[out_dir], left_out=left_out, roots=roots,
                          pairs=pairs or (obj.config.pairs if obj.config else DEFAULT_PAIRS))
    if not files:
        raise click.ClickException("no photos found in " + ", ".join(map(str, paths)))
    for path, partner in left_out:
        click.echo(f"left out {why_left_out(path, partner, '--pairs both')}")
    session = Session(app, out_dir, force=force)
    # Recipe by recipe, so each model loads once. On a GPU: decoding and writing overlap the
    # model, and same-size photos share its calls.
    work = [Work(path, recipe, None if flat or path not in roots
                 else mirrored_output(out_dir, roots[path], path))
            for recipe in recipes for path in files]
    counts = process_and_sum_up(
        app, session, work, lambda outcome, bar: _print_outcome(outcome, bar, len(recipes) > 1),
        "running")
    app.close()
    sys.exit(1 if counts["failed"] else 0)


def _print_outcome(outcome, bar, with_recipe: bool = False) -> None:
    recipe = f" [{outcome.recipe}]" if with_recipe else ""
    if outcome.status == "done":
        bar.echo(f"done     {outcome.path.name}{recipe} -> {outcome.output} "
                 f"({outcome.seconds:.1f} s)")
    elif outcome.status == "skipped":
        bar.echo(f"skipped  {outcome.path.name}{recipe}: {outcome.error}")
    else:
        bar.echo(f"FAILED   {outcome.path}{recipe}: {outcome.error}", err=True, fg="red")
