"""What every command shares: the options context, and one-line errors instead of tracebacks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


class Context:
    """Options shared by every command, and the App built from them on demand."""

    def __init__(self, catalog: Path | None, recipe_dirs: tuple[Path, ...],
                 config_path: Path | None = None, verbosity: int = 0,
                 plugins_dir: Path | None = None, plugin_manager=None, config=None):
        self.catalog = catalog
        self.recipe_dirs = recipe_dirs
        self.config_path = config_path
        self.verbosity = verbosity
        self.plugins_dir = plugins_dir
        self.plugin_manager = plugin_manager  # built from --plugins-dir; None: App builds one
        self.config = config  # the config file's settings (recipe folders, default model)

    def app(self, model: str | None = None):
        """Build the App (plugins, recipes, catalog path) or exit with a one-line reason."""
        from photobatch.daemon.app import App
        from photobatch.plugins.manager import PluginError
        from photobatch.recipes.schema import RecipeError

        try:
            config_dirs = tuple(self.config.recipe_dirs) if self.config else ()
            config_model = self.config.model if self.config else None
            return App(catalog_path=self.catalog, recipe_dirs=config_dirs + tuple(self.recipe_dirs),
                       model=model or os.environ.get("PHOTOBATCH_MODEL") or config_model,
                       plugin_manager=self.plugin_manager,
                       **(self.config.app_settings() if self.config else {}))
        except (RecipeError, PluginError) as exc:
            raise click.ClickException(str(exc)) from None


def fail_on_usage_error(fn):
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


def process_and_sum_up(app, session, work, show, desc: str) -> dict[str, int]:
    """Run ``work`` (run_stages.Work items), ``show(outcome, bar)`` each outcome as it comes
    (on a terminal, above a progress bar with an ETA, labelled ``desc``), and print the summary
    line; return the counts per status. Ctrl-C says what was done and what was not, and exits
    with status 130 (the shell's for an interrupt); a full output disk stops the batch
    likewise (status 1) rather than fail every photo after it."""
    from photobatch.daemon.progress import Progress
    from photobatch.daemon.run_stages import DiskFull, process_all

    counts = {"done": 0, "skipped": 0, "failed": 0}

    def stopped(why: str, then: str, status: int):
        left = len(work) - sum(counts.values())
        click.secho(f"{why}: {counts['done']} done, {counts['skipped']} skipped, "
                    f"{counts['failed']} failed, {left} not finished (catalog: {app.catalog_path}); "
                    f"{then}the same command again does the rest", fg="yellow", err=True)
        app.close()
        sys.exit(status)

    with Progress(len(work), desc) as bar:
        def on_outcome(outcome) -> None:
            counts[outcome.status] += 1
            show(outcome, bar)
            bar.advance()

        try:
            process_all(session, work, on_outcome)
        except KeyboardInterrupt:
            bar.close()
            stopped("interrupted", "", 130)
        except DiskFull:
            bar.close()
            stopped("stopped, the output's disk is full", "free some space: ", 1)
    click.echo(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed "
               f"(catalog: {app.catalog_path})")
    return counts
