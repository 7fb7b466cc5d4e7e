"""``photobatch catalog``: look into the catalog."""

from __future__ import annotations

import json
from pathlib import Path

import click

from photobatch.daemon.commands.common import Context


@click.group()
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
