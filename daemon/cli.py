"""The ``photobatch`` command line (click). Heavy libraries load only inside the commands.

Commands come from plugins through ``photobatch_commands``, the built-in ones included.
"""

from __future__ import annotations

from pathlib import Path

import click

from photobatch.daemon.commands.common import Context
from photobatch.daemon.logs import setup_logging
from photobatch.plugins.manager import build_plugin_manager, collect


class PluginGroup(click.Group):
    """A click group whose commands are contributed by plugins, loaded when first needed."""

    _loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for command in collect(build_plugin_manager(), "photobatch_commands", "command"):
                self.add_command(command)

    def list_commands(self, ctx):
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx, cmd_name):
        self._load()
        return super().get_command(ctx, cmd_name)


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
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



if __name__ == "__main__":  # pragma: no cover
    main()
