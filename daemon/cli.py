"""The ``photobatch`` command line (click). Heavy libraries load only inside the commands."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from photobatch.daemon.logs import setup_logging


class Context:
    """Options shared by every command, and the App built from them on demand."""

    def __init__(self, catalog: Path | None, recipe_dirs: tuple[Path, ...]):
        self.catalog = catalog
        self.recipe_dirs = recipe_dirs

    def app(self, model: str | None = None):
        """Build the App (plugins, recipes, catalog path) or exit with a one-line reason."""
        from photobatch.daemon.app import App
        from photobatch.plugins.manager import PluginError
        from photobatch.recipes.schema import RecipeError

        try:
            return App(catalog_path=self.catalog, recipe_dirs=self.recipe_dirs, model=model)
        except (RecipeError, PluginError) as exc:
            raise click.ClickException(str(exc)) from None


def _fail_on_usage_error(fn):
    """Turn a UsageError into click's one-line error (exit 1) instead of a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from photobatch.daemon.app import UsageError

        try:
            return fn(*args, **kwargs)
        except UsageError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--catalog", type=click.Path(dir_okay=False, path_type=Path), envvar="PHOTOBATCH_CATALOG",
              help="Catalog database file (default: catalog.db in the user data dir; env PHOTOBATCH_CATALOG).")
@click.option("--recipes", "recipe_dirs", multiple=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A folder of extra recipe *.toml files (repeatable).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="photobatch")
@click.pass_context
def main(ctx, catalog, recipe_dirs, verbose):
    """photobatch: diffusion recipes for photo shoots, with a catalog and metadata kept."""
    setup_logging(verbose)
    ctx.obj = Context(catalog, recipe_dirs)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--recipe", "recipe_name", required=True, help="Recipe name (see the recipes folder).")
@click.option("--model", help="Diffusers folder or hub id (default: the recipe's, or PHOTOBATCH_MODEL).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("enhanced"),
              show_default=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Redo files that already have an output for this recipe.")
@click.pass_obj
@_fail_on_usage_error
def run(obj: Context, paths, recipe_name, model, out_dir, force):
    """Run a recipe on photos and folders (folders are walked); exit 1 if any file failed."""
    from photobatch.daemon.paths import expand_inputs
    from photobatch.daemon.session import Session

    app = obj.app(model)
    recipe = app.recipe(recipe_name)
    app.model_for(recipe)
    files = expand_inputs(list(paths), exclude=[out_dir])
    if not files:
        raise click.ClickException("no photos found in " + ", ".join(map(str, paths)))
    session = Session(app, out_dir, force=force)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    for path in files:
        outcome = session.process(path, recipe)
        counts[outcome.status] += 1
        _print_outcome(outcome)
    click.echo(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed "
               f"(catalog: {app.catalog_path})")
    app.close()
    sys.exit(1 if counts["failed"] else 0)


def _print_outcome(outcome) -> None:
    if outcome.status == "done":
        click.echo(f"done     {outcome.path.name} -> {outcome.output} ({outcome.seconds:.1f} s)")
    elif outcome.status == "skipped":
        click.echo(f"skipped  {outcome.path.name}: {outcome.error}")
    else:
        click.secho(f"FAILED   {outcome.path}: {outcome.error}", fg="red", err=True)


@main.group()
def catalog():
    """Look into the catalog."""


@catalog.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows instead of a table.")
@click.pass_obj
def catalog_ls(obj: Context, as_json):
    """Files with their latest run per recipe."""
    from photobatch.catalog.store import Catalog
    from photobatch.daemon.paths import default_catalog_path

    cat = Catalog(obj.catalog or default_catalog_path())
    rows = cat.files_with_latest_runs()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"the catalog {cat.path} holds no files yet")
        return
    from photobatch.daemon.tables import render_table

    click.echo(render_table(
        ["file", "camera", "taken", "recipe", "status", "output / error"],
        [[Path(r["path"]).name, r["camera_model"] or "", (r["date_taken"] or "")[:16],
          r["recipe"] or "-", r["status"] or "not run",
          Path(r["output_path"]).name if r["output_path"] else (r["error"] or "")]
         for r in rows]))


@catalog.command("show")
@click.argument("file")
@click.pass_obj
def catalog_show(obj: Context, file):
    """Everything recorded about one file (path, sha256 or a sha256 prefix)."""
    from photobatch.catalog.store import Catalog
    from photobatch.daemon.paths import default_catalog_path

    cat = Catalog(obj.catalog or default_catalog_path())
    row = cat.find_file(file)
    if row is None:
        raise click.ClickException(f"{file} is not in the catalog {cat.path}")
    exif = json.loads(row.pop("exif") or "{}")
    click.echo(f"file {row['path']}")
    for key in ("sha256", "size", "format", "width", "height", "camera_make", "camera_model",
                "lens", "date_taken", "first_seen", "last_seen"):
        click.echo(f"  {key:<13} {row[key] if row[key] is not None else '-'}")
    click.echo("  metadata      " + json.dumps(exif, sort_keys=True))
    for run_row in cat.runs_for_file(row["id"]):
        click.echo(f"run {run_row['id']}: {run_row['recipe']} {run_row['status']}")
        for key in ("recipe_fingerprint", "seed", "model_id", "model_hash", "runner", "device",
                    "attempts", "error", "output_path", "output_sha256", "started_at",
                    "finished_at", "timings", "params"):
            if run_row[key] is not None:
                click.echo(f"  {key:<18} {run_row[key]}")


@main.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Workspace folder (default: a new temporary folder).")
@click.option("--model", help="A real model (diffusers folder or hub id); default: the stand-in.")
@click.pass_obj
@_fail_on_usage_error
def demo(obj: Context, workdir, model):
    """Make a workspace with sample photos and run color-correct on them."""
    from photobatch.daemon.demo import run_demo

    ok = run_demo(workdir, model, catalog=obj.catalog, recipe_dirs=obj.recipe_dirs, echo=click.echo)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
