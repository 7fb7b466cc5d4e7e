"""``photobatch rerun``: run recipes again over a catalog selection (queued, or now)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from photobatch.daemon.commands.common import Context, fail_on_usage_error, process_and_sum_up
from photobatch.daemon.commands.selection import pop_selection, selection_options


class SeedChoice(click.ParamType):
    """``--seed``: a seed number, ``new`` or ``recipe``."""

    name = "seed"

    def convert(self, value, param, ctx):
        """The seed as an int, or the words "new" / "recipe"."""
        if isinstance(value, int) or value in ("new", "recipe"):
            return value
        try:
            number = int(value)
        except ValueError:
            number = -1
        if not 0 <= number < 2**32:
            self.fail(f"{value!r} is not a seed: give a number from 0 to {2**32 - 1}, "
                      "`new` or `recipe`", param, ctx)
        return number


@click.command()
@selection_options
@click.option("--all", "everything", is_flag=True,
              help="Select the whole catalog (a rerun needs some selection).")
@click.option("--model", help="A diffusers folder, a .safetensors or .gguf file or a hub id to run on "
                               "(default: as each run chose it).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: where each run's output went).")
@click.option("--force", is_flag=True, help="Also redo runs that are up to date.")
@click.option("--seed", "seed", type=SeedChoice(), metavar="N|new|recipe",
              help="Redo with this seed for the photo (A1111's seed field): a number, `new` for a "
                   "fresh random one each (another take of the same recipe), or `recipe` to go back "
                   "to the recipe's own. A seed chosen so is kept by the photo's later runs of that "
                   "recipe (and recorded), so `--stale` after a recipe change keeps the take. "
                   "Implies --force; the output is replaced (an earlier take comes back with "
                   "--seed and its recorded seed).")
@click.option("--takes", type=click.IntRange(1, 16), default=1, show_default=True,
              help="With --seed new: this many takes of each photo, each with its own seed "
                   "(A1111's batch count). Above 1, each take is a file of its own named with "
                   "its seed (IMG_0001_color-correct_1234.jpg) and the photo's output stays; "
                   "--seed with a take's number makes it the output.")
@click.option("--now", is_flag=True, help="Run here and now instead of queuing for the daemon.")
@click.option("--dry-run", is_flag=True, help="List what would run, and why; change nothing.")
@click.pass_obj
@fail_on_usage_error
def rerun(obj: Context, everything, model, out_dir, force, seed, takes, now, dry_run,
          **selection_args):
    """Run recipes again over catalogued photos: stale outputs, failures, a recipe, a shoot.

    Without --force only what needs it runs: outputs whose recipe, model (or its weights) or
    adapter files (LoRA, embedding, VAE, ControlNet, IP-Adapter) changed, failed runs, missing
    outputs, and (with --recipe) photos never run with that recipe. Runs are queued for
    `photobatch watch` unless --now.
    """
    from photobatch.daemon.commands.current import current_app
    from photobatch.daemon.reruns import plan_reruns

    if takes > 1 and seed != "new":
        raise click.UsageError("--takes needs --seed new (each take draws its own seed)")
    selection = pop_selection(selection_args)
    if selection.is_empty and not everything:
        raise click.UsageError("say what to re-run: --stale, --failed, --recipe NAME, a folder or "
                               "photos, other filters, or --all for the whole catalog")
    app, chooser = current_app(obj, model)
    if model:
        app.check_model(model)
    if selection.recipe:
        app.recipe(selection.recipe)  # an unknown recipe is an error naming those that exist
    plan = plan_reruns(app, selection, chooser, force=force or seed is not None, out_dir=out_dir,
                       seed=seed, takes=takes)
    _echo_left_alone(plan)
    if dry_run:
        _echo_plan(plan, "run now" if now else "queue", new_seeds=seed == "new")
        app.close()
        return
    if not plan.items:
        click.echo("nothing to re-run")
        app.close()
        sys.exit(1 if plan.problems else 0)
    _echo_changes(plan)
    ok = _run_now(app, plan) if now else _queue(app, plan)
    app.close()
    sys.exit(0 if ok and not plan.problems else 1)


def _echo_left_alone(plan) -> None:
    if plan.up_to_date:
        click.echo(f"{len(plan.up_to_date)} up to date, left alone (--force redoes them)")
    if plan.pending:
        click.echo(f"{len(plan.pending)} already queued or running")
    for pair, why in plan.problems:
        click.secho(f"cannot re-run {pair.path.name} [{pair.recipe}]: {why}", fg="red", err=True)


def _echo_plan(plan, verb: str, new_seeds: bool = False) -> None:
    from photobatch.daemon.tables import render_table

    if not plan.items:
        click.echo("nothing to re-run")
        return
    seeds = any(i.seed is not None for i in plan.items)
    click.echo(render_table(
        ["file", "recipe", "why", "model", *(["seed"] if seeds else []), "output folder"],
        [[i.pair.path.name, i.recipe.name, i.reason, _model_name(i.model_id),
          # A dry run draws no seed worth showing: the real run draws its own.
          *(["new (random)" if new_seeds else str(i.seed)] if seeds else []), str(i.out_dir)]
         for i in plan.items], max_width=60))
    _echo_changes(plan)
    click.echo(f"would {verb} {len(plan.items)} run(s) ({_reasons(plan)}); nothing changed (--dry-run)")


def _echo_changes(plan) -> None:
    """What changed in each recipe since its stale outputs were made, once per recipe and
    change (a shoot's outputs usually share one)."""
    from photobatch.recipes.changes import summary

    seen: dict[tuple[str, tuple[str, ...]], int] = {}
    for item in plan.items:
        changes = tuple(item.changes)
        if changes:
            seen[(item.recipe.name, changes)] = seen.get((item.recipe.name, changes), 0) + 1
    for (name, changes), count in seen.items():
        click.echo(f"{name} changed since {count} of its output(s) were made: "
                   f"{summary(list(changes), most=6)}")


def _queue(app, plan) -> bool:
    from photobatch.daemon.reruns import queue_plan

    queued, already = queue_plan(app, plan)
    click.echo(f"queued {len(queued)} run(s) ({_reasons(plan)})"
               + (f"; {len(already)} were queued already" if already else ""))
    if queued and not _daemon_up(app):
        click.echo("the daemon is not running: start `photobatch watch` (or `watch --once`), "
                   "or re-run with --now")
    return True


def _run_now(app, plan) -> bool:
    from photobatch.daemon.run_stages import Work
    from photobatch.daemon.session import Session

    # What would fail every photo alike (a model or LoRA gone, a device not here) is said
    # once, before any photo.
    for recipe, model in {(item.recipe.name, item.model): (item.recipe, item.model)
                          for item in plan.items}.values():
        app.check_runnable(recipe, model)
    # Every item was chosen to run again: redo it even where an identical run is done.
    session = Session(app, Path("."), force=True)
    work = [Work(item.pair.path, item.recipe, item.out_dir, item.model, item.seed)
            for item in plan.items]
    def show(outcome, bar) -> None:
        if outcome.status == "failed":
            bar.echo(f"FAILED   {outcome.path} [{outcome.recipe}]: {outcome.error}", err=True,
                     fg="red")
        else:
            bar.echo(f"{outcome.status:<8} {outcome.path.name} [{outcome.recipe}] -> "
                     f"{outcome.output} ({outcome.seconds:.1f} s)")

    # On a GPU: decoding and writing overlap the model, and same-size photos share its calls.
    counts = process_and_sum_up(app, session, work, show, "re-running")
    return counts["failed"] == 0


def _reasons(plan) -> str:
    return ", ".join(f"{n} {why}" for why, n in sorted(plan.reasons().items()))


def _daemon_up(app) -> bool:
    from photobatch.daemon.service import CatalogLock

    return CatalogLock(app.catalog_path).held_by_other()


def _model_name(model_id: str) -> str:
    # A local folder by its name; a hub id ("org/name") as it is.
    return Path(model_id).name if Path(model_id).is_absolute() else model_id
