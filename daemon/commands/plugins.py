"""``photobatch plugins``: what is loaded, from where, at which version, and what went wrong."""

from __future__ import annotations

import json

import click

from photobatch.daemon.commands.common import Context


@click.command()
@click.option("--verbose", "show_contributions", is_flag=True,
              help="Also list what each plugin contributes (readers, steps, commands, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--errors", "show_errors", is_flag=True,
              help="Show the plugin failures recorded in the catalog, newest first.")
@click.pass_obj
def plugins(obj: Context, show_contributions, as_json, show_errors):
    """List loaded plugins with version, source (built-in, package, drop-in) and hooks."""
    from photobatch.plugins.inventory import describe_plugins, load_problems

    if show_errors:
        _echo_recorded_errors(obj, as_json)
        return
    host = obj.plugin_manager
    if host is None:
        from photobatch.plugins.manager import build_plugin_manager

        host = build_plugin_manager(plugins_dir=obj.plugins_dir)
    infos = describe_plugins(host, contributions=show_contributions or as_json)
    problems = load_problems(host)
    disabled = sorted(host.disabled.values(), key=lambda o: o.name)
    if as_json:
        click.echo(json.dumps({
            "plugins": [info.to_dict() for info in infos],
            "disabled": [{"name": o.name, "source": o.source, "location": o.location} for o in disabled],
            "problems": problems,
        }, indent=2))
        return
    _echo_table(infos, show_contributions)
    for origin in disabled:
        click.echo(f"disabled: {origin.name} ({origin.source}, {origin.location})")
    # On stdout: they are part of the report asked for (the log has already said it on stderr).
    for line in problems:
        click.secho(line, fg="red")


def _echo_table(infos, show_contributions: bool) -> None:
    from photobatch.daemon.tables import render_table
    from photobatch.plugins.inventory import short_hook

    if not show_contributions:
        click.echo(render_table(
            ["plugin", "version", "source", "hooks"],
            [[i.name, i.version or "-", i.source, ", ".join(map(short_hook, i.hooks)) or "-"]
             for i in infos], max_width=60))
        return
    for info in infos:
        click.echo(f"{info.name} {info.version or '-'} ({info.source}: {info.location})")
        for kind, names in info.contributions.items():
            click.echo(f"  {kind}: {', '.join(names) or '-'}")


def _echo_recorded_errors(obj: Context, as_json: bool) -> None:
    from photobatch.catalog.plugin_errors import recent_plugin_failures
    from photobatch.daemon.paths import default_catalog_path

    path = obj.catalog or default_catalog_path()
    rows = []
    if path.exists():
        from photobatch.catalog.store import Catalog

        catalog = Catalog(path)
        rows = recent_plugin_failures(catalog.db)
        catalog.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"no plugin failures recorded in {path}")
    for row in [] if as_json else rows:
        run = f" (run {row['run_id']})" if row["run_id"] is not None else ""
        click.echo(f"{row['at']}  {row['plugin']} in {row['hook']}{run}: {row['error']}")
