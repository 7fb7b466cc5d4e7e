"""``photobatch catalog``: look into the catalog, export it, check it against the disk, prune it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from photobatch.daemon.commands.common import Context
from photobatch.daemon.commands.selection import pop_selection, selection_options


@click.group()
def catalog():
    """Look into the catalog."""


def _open(obj: Context):
    from photobatch.catalog.store import Catalog
    from photobatch.daemon.paths import default_catalog_path

    return Catalog(obj.catalog or default_catalog_path())


def _pairs_with_state(obj: Context, selection, include_unrun: bool):
    """Selected (file, latest run) pairs, judged against the recipes and models in force."""
    from photobatch.catalog.queries import select_pairs
    from photobatch.daemon.commands.current import current_app

    app, chooser = current_app(obj)
    # Photos never run with a recipe are listed only for a recipe that exists now.
    include_unrun = include_unrun and selection.recipe in app.recipes
    try:
        return app.catalog_path, select_pairs(app.catalog.db, selection, chooser.current,
                                              include_unrun=include_unrun,
                                              left_out=chooser.left_out)
    finally:
        app.close()


@catalog.command("ls")
@selection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows instead of a table.")
@click.pass_obj
def catalog_ls(obj: Context, as_json, **selection_args):
    """Files with their latest run per recipe (stale outputs are marked)."""
    from photobatch.catalog.queries import STATE_UP_TO_DATE, PairRow, select_files_without_runs

    selection = pop_selection(selection_args)
    path, pairs = _pairs_with_state(obj, selection, include_unrun=bool(selection.recipe))
    notes: dict[int, str] = {}
    if not selection.recipe and not selection.narrows_runs:
        cat = _open(obj)
        unrun = select_files_without_runs(cat.db, selection)
        notes = _left_out_of_pairs(obj, cat, unrun)
        pairs += [PairRow(f, "") for f in unrun]
        cat.close()
        pairs.sort(key=lambda p: (p.file["path"], p.recipe))
    rows = [p.as_dict() for p in pairs]
    for row in rows:
        if row["file_id"] in notes and not row["recipe"]:
            row["note"] = notes[row["file_id"]]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"nothing in the catalog {path} matches" if not selection.is_empty
                   else f"the catalog {path} holds no files yet")
        return
    from photobatch.daemon.tables import distinct_names, render_table

    def status(row):
        if not row["status"]:
            return "not run"
        # "done" alone means up to date; otherwise say what the output needs.
        note = row["state"] if row["status"] == "done" and row["state"] != STATE_UP_TO_DATE else ""
        return f"{row['status']} ({note})" if note else row["status"]

    def culling(row):
        rating = row["rating"]
        stars = "" if rating is None else "rejected" if rating < 0 else "★" * rating or "0"
        return " ".join(filter(None, [stars, (row["labels"] or "").replace(",", " ")]))

    # Names alone, but for files or outputs named alike (two cards' IMG_0001.JPG in shoots of
    # their own): those get the folders that tell them apart.
    files = distinct_names([r["path"] for r in rows])
    outputs = distinct_names([r["output_path"] for r in rows if r["output_path"]])
    click.echo(render_table(
        ["file", "camera", "taken", "rating", "recipe", "status", "output / error"],
        [[files[r["path"]], r["camera_model"] or "", (r["date_taken"] or "")[:16],
          culling(r), r["recipe"] or "-", status(r),
          outputs[r["output_path"]] if r["output_path"] else (r["error"] or r.get("note", ""))]
         for r in rows]))


def _left_out_of_pairs(obj: Context, cat, files: list[dict]) -> dict[int, str]:
    """Why each of ``files`` (never run) is not run, for the halves of RAW+JPEG pairs that the
    config leaves out, by file id: "RAW+JPEG pair: IMG_0001.NEF runs"."""
    from photobatch.daemon.commands.current import daemon_config
    from photobatch.daemon.pairs import choice_for, left_out_for

    config = daemon_config(obj)
    names: dict[Path, set[str]] = {}
    for row in cat.db.execute("SELECT path FROM files"):  # the partner is catalogued too
        path = Path(row[0])
        names.setdefault(path.parent, set()).add(path.name)
    notes = {}
    for f in files:
        path = Path(f["path"])
        partner = left_out_for(path, choice_for(config, path), names.get(path.parent, set()))
        if partner is not None:
            notes[f["id"]] = f"RAW+JPEG pair: {partner.name} runs"
    return notes


@catalog.command("show")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True,
              help="Print the file's row and its runs as JSON, every EXIF tag included.")
@click.pass_obj
def catalog_show(obj: Context, file, as_json):
    """Everything recorded about one file (path, file name, sha256 or a sha256 prefix)."""
    from photobatch.catalog.culling import current_culling
    from photobatch.plugins.gallery.describe import photo_facts

    cat = _open(obj)
    row = cat.find_file(file)
    if row is None:
        named = cat.files_named(file)
        if named:
            paths = "\n  ".join(r["path"] for r in named)
            raise click.ClickException(f"{len(named)} files in the catalog are called {file}; "
                                       f"give its path:\n  {paths}")
        raise click.ClickException(f"{file} is not in the catalog {cat.path}")
    # The photographer's rating, labels and keywords as they are now (sidecars included).
    current = current_culling(cat.db, [row])[row["id"]].as_metadata()
    meta = json.loads(row.pop("exif") or "{}")
    meta.update(current, label=None)  # the embedded label is in ``labels`` when it counts
    runs = [dict(run_row) for run_row in cat.runs_for_file(row["id"])]
    earlier = [{k: v[k] for k in ("id", "sha256", "size", "first_seen", "last_seen")}
               for v in cat.versions(row["id"]) if v["id"] != row["id"]]
    if as_json:
        for run_row in runs:
            for key in ("timings", "params"):
                run_row[key] = json.loads(run_row[key]) if run_row.get(key) else None
        click.echo(json.dumps({**row, **current, "metadata": meta, "runs": runs,
                               "earlier_versions": earlier}, indent=2, default=str))
        return
    click.echo(f"file {row['path']}")
    for key in ("sha256", "size", "format", "width", "height", "camera_make", "camera_model",
                "lens", "date_taken", "first_seen", "last_seen"):
        click.echo(f"  {key:<13} {row[key] if row[key] is not None else '-'}")
    if row.get("replaced_by"):
        click.echo(f"  {'replaced by':<13} file {row['replaced_by']}, a newer version of this "
                   "photo at the same path: this content is gone")
    for version in earlier:
        click.echo(f"  {'earlier':<13} version {version['sha256'][:12]}, first seen "
                   f"{version['first_seen']} (`catalog show {version['sha256'][:12]}`)")
    # What the columns above do not say, as a photographer reads it.
    for label, value in photo_facts(meta, gps=True):
        if label not in ("Camera", "Lens", "Taken"):
            click.echo(f"  {label.lower():<13} {value}")
    tags = len(meta.get("exif") or {})
    click.echo(f"  {'metadata':<13} {tags} EXIF tag(s) recorded (--json prints them)")
    for run_row in runs:
        click.echo(f"run {run_row['id']}: {run_row['recipe']} {run_row['status']}")
        for key in ("recipe_fingerprint", "seed", "seed_source", "model_id", "model_config",
                    "model_hash", "adapters_hash", "runner", "device", "precision",
                    "working_size", "prompt", "mask_sha256", "attempts", "error", "output_path",
                    "output_sha256", "started_at", "finished_at", "timings", "params"):
            value = run_row[key]
            if value is None:
                continue
            if key == "timings":
                value = _timings_text(value)
            elif key == "params":
                for label, text in _settings_lines(value, run_row["prompt"]):
                    click.echo(f"  {label:<18} {text}")
                value = "every field of the recipe: --json prints them"
            click.echo(f"  {key:<18} {value}")


def _settings_lines(params: str, ran_prompt: str | None) -> list[tuple[str, str]]:
    """The recipe's main settings as a photographer reads them (as the gallery shows them)."""
    from photobatch.plugins.gallery.describe import recipe_facts

    try:
        facts = recipe_facts(json.loads(params), None, None, None)
    except (ValueError, TypeError, AttributeError):
        return []
    prompts = ("Prompt", "Negative prompt")
    # The prompts on lines of their own; the prompt as it ran is already shown above.
    lines = [(label.lower(), text) for label, text in facts
             if label in prompts and not (label == "Prompt" and ran_prompt)]
    rest = [f"{'CFG' if label == 'CFG scale' else label.lower()} {text}"
            for label, text in facts if label not in prompts]
    return [("settings", " · ".join(rest))] + lines if rest else lines


def _timings_text(timings: str) -> str:
    """Stage times as 'read 0.01 s · run 4.20 s · ...' (the stored JSON when it is not that)."""
    try:
        stages = json.loads(timings)
        return " · ".join(f"{stage} {float(seconds):.2f} s" for stage, seconds in stages.items())
    except (ValueError, TypeError, AttributeError):
        return timings


@catalog.command("stats")
@selection_options
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.pass_obj
def catalog_stats(obj: Context, as_json, **selection_args):
    """Runs by status and recipe, processing time and throughput."""
    from photobatch.catalog.queries import run_stats

    selection = pop_selection(selection_args)
    cat = _open(obj)
    stats = run_stats(cat.db, selection)
    cat.close()
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    click.echo(_format_stats(stats))


def _format_stats(stats: dict) -> str:
    from photobatch.daemon.tables import render_table

    order = [s for s, n in stats["by_status"].items()]
    lines = [f"{stats['files']} file(s), {stats['runs']} run(s): "
             + ", ".join(f"{stats['by_status'][s]} {s}" for s in order)]
    if stats["by_recipe"]:
        lines.append(render_table(["recipe", *order, "total"],
                                  [[name, *(c.get(s, 0) for s in order), sum(c.values())]
                                   for name, c in stats["by_recipe"].items()]))
    lines.append(f"processing time  {_duration(stats['processing_seconds'])}"
                 + (" (" + ", ".join(f"{k} {_duration(v)}" for k, v in stats["stage_seconds"].items())
                    + ")" if stats["stage_seconds"] else ""))
    if stats["seconds_per_done_run"] is not None:
        lines.append(f"per photo        {stats['seconds_per_done_run']:.2f} s")
    if stats["done_per_hour"] is not None:
        lines.append(f"throughput       {stats['done_per_hour']} photos/hour "
                     f"(from {stats['first_done']} to {stats['last_done']})")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = float(seconds or 0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


@catalog.command("export")
@selection_options
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True, help="Output format.")
@click.option("--all-runs", is_flag=True,
              help="Every run ever made (history), not only the latest per file and recipe.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@click.pass_obj
def catalog_export(obj: Context, fmt, all_runs, output, **selection_args):
    """The selected files and runs as CSV or JSON (for spreadsheets and scripts)."""
    from photobatch.catalog.queries import all_runs as every_run
    from photobatch.daemon.csv_export import write_csv

    selection = pop_selection(selection_args)
    if all_runs:
        cat = _open(obj)
        rows = every_run(cat.db, selection)
        cat.close()
    else:
        _, pairs = _pairs_with_state(obj, selection, include_unrun=False)
        rows = [p.as_dict() for p in pairs]
    stream = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        if fmt == "json":
            stream.write(json.dumps(rows, indent=2, default=str) + "\n")
        else:
            write_csv(stream, rows)
    finally:
        if output:
            stream.close()
    if output:
        click.echo(f"wrote {len(rows)} row(s) to {output}", err=True)


@catalog.command("sync-metadata")
@selection_options
@click.pass_obj
def catalog_sync_metadata(obj: Context, **selection_args):
    """Write each output's rating, label and keywords as its photo has them now (Lightroom's
    "Save Metadata to File"): for culling done after the outputs were made. The config's
    [copyright] preset is written too, as it is now. Pixels and the rest of the metadata stay;
    exit 1 if an output could not be written."""
    from photobatch.catalog.hashing import file_sha256
    from photobatch.catalog.queries import select_pairs
    from photobatch.plugins.metadata.culling_sync import sync_culling, sync_rights
    from photobatch.plugins.metadata.exiv2 import MetadataError

    selection = pop_selection(selection_args)
    from photobatch.daemon.config import rights_for

    config_rights = obj.config.rights if obj.config else None
    folder_rights = obj.config.folder_rights() if obj.config else ()
    cat = _open(obj)
    counts = {"updated": 0, "current": 0, "policy": 0}
    failed = 0
    try:
        for pair in select_pairs(cat.db, selection):
            run = pair.run
            if run and run["status"] != "done":
                run = cat.latest_done_run(pair.file["id"], pair.recipe)
            if not run or not run.get("output_path") or not Path(run["output_path"]).exists():
                continue
            params = json.loads(run["params"] or "{}")
            policy = (params.get("output") or {}).get("metadata", "all")
            culling = policy in ("all", "no-location")
            rights = rights_for(pair.file["path"], folder_rights, config_rights)
            if not culling and not (rights and policy != "none"):
                counts["policy"] += 1  # the recipe keeps no descriptive metadata in its outputs
                continue
            output = Path(run["output_path"])
            try:
                changed = culling and sync_culling(output, pair.file["culling"].as_xmp())
                if rights and policy != "none":
                    changed = sync_rights(output, rights.values(pair.file.get("date_taken")),
                                          _own_metadata(pair.file), rights.replace) or changed
            except MetadataError as exc:
                failed += 1
                click.secho(f"FAILED   {output}: {exc}", fg="red", err=True)
                continue
            if changed:
                # The catalog records what is on disk: `catalog verify` stays quiet.
                cat.db["runs"].update(run["id"], {"output_sha256": file_sha256(output)})
                click.echo(f"updated  {output.name}")
            counts["updated" if changed else "current"] += 1
    finally:
        cat.close()
    click.echo(f"{counts['updated']} output(s) updated, {counts['current']} already current, "
               f"{counts['policy']} left alone (their recipe's metadata policy keeps no ratings)"
               + (f", {failed} failed" if failed else ""))
    sys.exit(1 if failed else 0)


def _own_metadata(file: dict) -> dict:
    """The original's own EXIF, IPTC and XMP (merged), or, when it cannot be read (archived
    elsewhere), what the catalog kept of its EXIF."""
    from photobatch.plugins.metadata.exiv2 import MetadataError, open_file, read_group

    try:
        image = open_file(Path(file["path"]))
    except MetadataError:
        return dict((json.loads(file.get("exif") or "{}") or {}).get("exif") or {})
    try:
        return {**read_group(image, "exif", []), **read_group(image, "iptc", []),
                **read_group(image, "xmp", [])}
    finally:
        image.close()


@catalog.command("verify")
@click.option("--quick", is_flag=True,
              help="Read no file: originals by size, outputs by modification time.")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.pass_obj
def catalog_verify(obj: Context, quick, as_json):
    """Check originals and outputs against their recorded hashes; change nothing (exit 1 on a difference)."""
    from photobatch.catalog.verify import ORIGINAL_MISSING, OUTPUT_MISSING, planned_checks, verify
    from photobatch.daemon.progress import Progress

    cat = _open(obj)
    checks = planned_checks(cat.db)
    cat.close()
    findings = []
    with Progress(len(checks), "verifying", unit="file") as bar:
        for check in checks:
            findings += verify([check], quick=quick)
            bar.advance()
    if as_json:
        click.echo(json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        for f in findings:
            click.echo(f"{f.kind:<17} {f.path}: {f.detail}")
        originals = sum(c.kind == "original" for c in checks)
        click.echo(f"checked {originals} original(s) and {len(checks) - originals} output(s): "
                   + (f"{len(findings)} difference(s)" if findings else "all as recorded"))
        if any(f.kind in (ORIGINAL_MISSING, OUTPUT_MISSING) for f in findings):
            click.echo("moved or renamed outside photobatch? `photobatch catalog locate FOLDER` "
                       "finds them by their content")
    sys.exit(1 if findings else 0)


@catalog.command("locate")
@click.argument("folders", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Say what was found; record nothing.")
@click.pass_obj
def catalog_locate(obj: Context, folders, dry_run):
    """Find missing originals and outputs in FOLDERS by their content (a shoot's folder moved
    or renamed outside photobatch, a disk mounted elsewhere) and record where they are now, as
    Lightroom's Find Missing Photos. Files on disk are never touched."""
    from photobatch.catalog.locate import locate_missing, record
    from photobatch.daemon.paths import expand_inputs

    cat = _open(obj)
    try:
        # The photos of those folders, as `run` walks them (absolute, as the catalog records).
        located = locate_missing(cat, expand_inputs(list(folders)))
        for old, new, _ in located.originals:
            click.echo(f"original {old} -> {new}")
        for old, new in located.outputs:
            click.echo(f"output   {old} -> {new}")
        if not dry_run:
            record(cat, located)
    finally:
        cat.close()
    found = len(located.originals) + len(located.outputs)
    click.echo(f"{'would record' if dry_run else 'found'} {len(located.originals)} original(s) and "
               f"{len(located.outputs)} output(s)"
               + (f"; {len(located.still_missing)} still missing (`catalog verify` lists them)"
                  if located.still_missing else "")
               + ("" if found or located.still_missing else ": nothing was missing"))
    sys.exit(1 if located.still_missing else 0)


@catalog.command("forget")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--missing", is_flag=True, help="Also forget every file whose original is gone.")
@click.option("--dry-run", is_flag=True, help="List what would be forgotten; change nothing.")
@click.pass_obj
def catalog_forget(obj: Context, paths, missing, dry_run):
    """Remove photos (files, folders or sha256 prefixes) and their runs from the catalog.

    Files on disk, originals and outputs alike, are left where they are.
    """
    from photobatch.catalog.forget import ForgetRefused, forget_files
    from photobatch.catalog.queries import Selection, select_files

    if not paths and not missing:
        raise click.UsageError("name the photos or folders to forget, or pass --missing")
    cat = _open(obj)
    rows = []
    if paths:
        # Forgetting goes by what is named exactly: a bare name is this folder's file only.
        selection = pop_selection({"paths": paths}, bare_names=False)
        rows = select_files(cat.db, selection, culling=False)
        found = {r["path"] for r in rows}
        for place in selection.places:
            if not any(p == place or p.startswith(place.rstrip("/") + "/") for p in found) \
                    and not any(r["sha256"].startswith(place.lower()) for r in rows):
                click.secho(f"{place} is not in the catalog", err=True, fg="yellow")
    if missing:
        known = {r["id"] for r in rows}
        rows += [r for r in select_files(cat.db, Selection(), culling=False)
                 if r["id"] not in known and not Path(r["path"]).exists()]
    for row in rows:
        click.echo(f"{'would forget' if dry_run else 'forget'} {row['path']}")
    if dry_run or not rows:
        click.echo(f"{len(rows)} file(s) would be forgotten" if dry_run else "nothing to forget")
        cat.close()
        return
    try:
        done = forget_files(cat, [r["id"] for r in rows])
    except ForgetRefused as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        cat.close()
    click.echo(f"forgot {done.files} file(s) and {done.runs} run(s); nothing on disk was touched")


@catalog.command("backup")
@click.option("--to", "dest", type=click.Path(path_type=Path),
              help="Write it to this file (or into this folder) instead of the backups folder "
                   "beside the catalog.")
@click.pass_obj
def catalog_backup(obj: Context, dest):
    """Write a checked copy of the catalog; safe while the daemon runs.

    Backups are also taken by themselves: before an upgrade changes the catalog's tables,
    weekly while the daemon runs (the last 4 kept; the config's [backups] changes both), and
    before a restore.
    """
    from photobatch.catalog.backup import BackupError, backup_path

    cat = _open(obj)
    try:
        if dest is not None:
            dest = dest.expanduser()
            if dest.is_dir():
                dest = backup_path(cat.path, folder=dest)
            if dest.exists():
                raise click.ClickException(f"{dest} exists already: name a new file")
        path = cat.backup(dest=dest)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        cat.close()
    click.echo(f"backed up {cat.path} to {path} ({_size(path.stat().st_size)})")


@catalog.command("backups")
@click.pass_obj
def catalog_backups(obj: Context):
    """List the catalog's backups (in the backups folder beside it), oldest first."""
    from photobatch.catalog.backup import backup_folder, list_backups
    from photobatch.daemon.paths import default_catalog_path
    from photobatch.daemon.tables import render_table

    path = Path(obj.catalog or default_catalog_path())
    found = list_backups(path)
    if not found:
        click.echo(f"no backups of {path} yet (in {backup_folder(path)}); "
                   "`photobatch catalog backup` takes one")
        return
    rows = [(b.taken.astimezone().strftime("%Y-%m-%d %H:%M"), b.kind or "asked for",
             _size(b.size), str(b.path)) for b in found]
    click.echo(render_table(("taken", "why", "size", "file"), rows))


@catalog.command("restore")
@click.argument("backup", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def catalog_restore(obj: Context, backup):
    """Put a backup's content in place of the catalog's (the daemon must be stopped).

    The catalog as it was is backed up first, so a restore can itself be undone. Files on
    disk are not touched: outputs written after the backup was taken stay where they are,
    unknown to the restored catalog.
    """
    from photobatch.catalog.backup import BackupError, open_backup
    from photobatch.catalog.workers import pid_alive
    from photobatch.daemon.app import UsageError
    from photobatch.daemon.paths import default_catalog_path
    from photobatch.daemon.service import CatalogLock

    path = Path(obj.catalog or default_catalog_path())
    if backup.resolve() == path.resolve():
        raise click.ClickException(f"{backup} is the catalog itself: name a backup of it")
    lock = CatalogLock(path)
    try:
        lock.acquire()  # no daemon now, and none starts while the content changes
    except UsageError as exc:
        raise click.ClickException(f"{exc}: stop it before restoring a backup") from None
    try:
        try:
            source = open_backup(backup)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from None
        cat = _open(obj)
        try:
            busy = [w for (w,) in cat.db.execute(
                "SELECT worker FROM runs WHERE status = 'running'") if pid_alive(w)]
            if busy:
                raise click.ClickException("a `photobatch run` is writing to the catalog (process "
                                           f"{busy[0]}): let it finish, or stop it, first")
            safety = cat.backup("before-restore")
            cat.restore_from(source)
            files, runs = (cat.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                           for t in ("files", "runs"))
        except BackupError as exc:
            raise click.ClickException(f"nothing was restored: {exc}") from None
        finally:
            source.close()
            cat.close()
    finally:
        lock.release()
    click.echo(f"restored {path} from {backup}: {files} file(s), {runs} run(s)\n"
               f"the catalog as it was is in {safety} (restore that to undo this)")


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"
