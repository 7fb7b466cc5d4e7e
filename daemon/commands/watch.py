"""``photobatch watch``, ``photobatch status`` and ``photobatch init``: the daemon's commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from photobatch.daemon.commands.common import Context, fail_on_usage_error


@click.command()
@click.option("--once", is_flag=True, help="Process what is in the folders now, then exit.")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line (for log shippers).")
@click.option("--check", is_flag=True,
              help="Check the config, recipes, models, folders and output disks as the daemon "
                   "would start with them, say what it would watch, and exit (1 on a problem).")
@click.option("--notify", "test_notify", is_flag=True,
              help="With --check: send a test message where [notify] says, and say if it went.")
@click.pass_obj
@fail_on_usage_error
def watch(obj: Context, once, log_json, check, test_notify):
    """Watch the configured folders and run their recipes on every photo dropped in."""
    from photobatch.daemon.config import ConfigError
    from photobatch.daemon.logs import setup_logging
    from photobatch.daemon.service import WatchService

    setup_logging(max(obj.verbosity, 0 if check else 1), json_lines=log_json, daemon=not check)
    try:
        service = WatchService(obj.config_path, obj.catalog, once=once,
                               extra_recipe_dirs=obj.recipe_dirs, plugins_dir=obj.plugins_dir)
        if not service.config.watch:
            raise click.ClickException(f"config {service.config.source} has no [[watch]] folder")
        if test_notify and not check:
            raise click.UsageError("--notify goes with --check")
        if check:
            sys.exit(_check(service, test_notify))
        sys.exit(service.run())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _check(service, test_notify: bool = False) -> int:
    from photobatch.daemon.watch_check import check_watch

    lines, problems = check_watch(service)
    if test_notify:
        problems += _test_notification(service.config, lines)
    click.echo("\n".join(lines))
    for problem in problems:
        click.secho(f"problem: {problem}", fg="red", err=True)
    click.echo(f"{len(problems)} problem(s)" if problems else
               "ready: `photobatch watch` would start with this")
    return 1 if problems else 0


def _test_notification(config, lines: list[str]) -> list[str]:
    """Send a test message where the config's [notify] says; the problems (none: it went)."""
    import socket

    from photobatch.plugins.builtin.notifications import send_now

    if not config.notify:
        return ["--notify: the config has no [notify] table (url or command) to send to"]
    problems = send_now(config.notify, f"photobatch on {socket.gethostname()}: test",
                        "a test message from `photobatch watch --check --notify`: "
                        "shoots done and a full disk will be told here")
    if not problems:
        lines.append("         a test message went (look for it)")
    return problems


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def status(obj: Context, as_json):
    """Is the daemon up, what is queued, what is it doing, how fast, how long the queue will
    take at that pace, how its exports went, what failed lately, when the catalog was last
    backed up."""
    from photobatch.daemon.status import collect_status, format_status

    report = collect_status(obj.catalog)
    click.echo(json.dumps(report, indent=2, default=str) if as_json else format_status(report))


@click.command()
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@click.pass_obj
def init(obj: Context, force):
    """Write a commented example config (to --config, or the user config dir)."""
    from photobatch.daemon.config import EXAMPLE_CONFIG, default_config_path

    path = Path(obj.config_path) if obj.config_path else default_config_path()
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; edit it, or pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    click.echo(f"wrote {path}\nedit the [[watch]] folder and the model, then run: photobatch watch")
