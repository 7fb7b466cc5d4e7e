"""``photobatch export NAME``: one subcommand per exporter plugin (the gallery is built in)."""

from __future__ import annotations

from pathlib import Path

import click

from photobatch.daemon.commands.common import Context
from photobatch.daemon.commands.selection import pop_selection, selection_options
from photobatch.daemon.export_selection import export_items


class ExporterGroup(click.Group):
    """Subcommands made from the ``photobatch_exporters`` registry, each with the selection options."""

    def _exporters(self, ctx: click.Context):
        from photobatch.daemon.cli import plugin_manager_for
        from photobatch.plugins.manager import PluginError, collect

        root = ctx.find_root()
        key = "photobatch.exporters"
        if key not in root.meta:
            try:
                root.meta[key] = collect(plugin_manager_for(ctx), "photobatch_exporters")
            except PluginError as exc:
                raise click.ClickException(str(exc)) from None
        return root.meta[key]

    def list_commands(self, ctx):
        return sorted(self._exporters(ctx).items)

    def get_command(self, ctx, cmd_name):
        exporters = self._exporters(ctx)
        if cmd_name not in exporters:
            return None
        return _command_for(exporters.get(cmd_name))


@click.group(cls=ExporterGroup)
def export():
    """Export a selection of outputs: a gallery, or what exporter plugins offer."""


def _command_for(exporter) -> click.Command:
    """A click command running ``exporter`` on a catalog selection."""
    name = exporter.name

    @click.pass_obj
    def callback(obj: Context, out, **kwargs):
        _export(obj, exporter, out, kwargs)

    command = click.Command(
        name, callback=callback,
        help=(getattr(exporter, "help", None) or f"Export with the {name} exporter.")
        + "\n\nThe selection options pick which outputs (done runs) are exported.")
    command.params.extend(_selection_params())
    command.params.append(click.Option(["--out", "out"], required=True,
                                       type=click.Path(file_okay=False, path_type=Path),
                                       help="Destination folder."))
    command.params.extend(getattr(exporter, "options", None) or [])
    return command


def _selection_params() -> list[click.Parameter]:
    # click decorators record their parameters on the function, last decorator first.
    def carrier():
        """Holds the parameters."""

    selection_options(carrier)
    return list(reversed(carrier.__click_params__))


def _export(obj: Context, exporter, out: Path, kwargs: dict) -> None:
    from photobatch.daemon.commands.current import current_app
    from photobatch.daemon.progress import Progress
    from photobatch.plugins.exporting import ExportError, ExportOptions

    selection = pop_selection(kwargs)
    _refuse_watched_destination(obj, out)
    app, chooser = current_app(obj)
    try:
        items, missing = export_items(app, selection, chooser)
        for path in missing:
            click.secho(f"left out {path}: the output file is gone (`photobatch rerun` remakes it)",
                        err=True, fg="yellow")
        if not items:
            raise click.ClickException("no outputs match the selection (only done runs with their "
                                       "output on disk are exported)")

        def progress(iterable, total=None, desc=""):
            with Progress(total or 0, desc or exporter.name) as bar:
                for value in iterable:
                    yield value
                    bar.advance()

        try:
            result = exporter.export(items, out, ExportOptions(
                values=kwargs, readers=list(app.readers), writers=app.writers, progress=progress,
                echo=click.echo))
        except ExportError as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        app.close()
    if result is not None:
        click.echo(str(result))
        if getattr(result, "left_out", None):
            raise SystemExit(1)  # as `run` says a batch with failures: scripts can tell


def _refuse_watched_destination(obj: Context, out: Path) -> None:
    """An export into a watched folder would be taken in by the daemon as new photos, and run."""
    from photobatch.daemon.commands.current import daemon_config

    config = daemon_config(obj)
    target = Path(out).expanduser().resolve()
    for folder in (config.watch if config else ()):
        if target.is_relative_to(folder.path.expanduser().resolve()):
            raise click.ClickException(
                f"--out {out} is inside the watched folder {folder.path}: the daemon would take "
                "the exported files for new photos and run them; export somewhere else")
