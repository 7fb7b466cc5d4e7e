"""The ``photobatch`` command line (click). Heavy libraries load only inside the commands.

Commands come from plugins through ``photobatch_commands``, the built-in ones included.
"""

from __future__ import annotations

from pathlib import Path

import click

from photobatch.daemon.commands.common import Context
from photobatch.daemon.logs import setup_logging
from photobatch.plugins.manager import PluginError, build_plugin_manager, collect

# Per invocation, in the root context's meta: the group object is shared by every invocation.
# A caller may preset PLUGIN_MANAGER_KEY (the docs test lists the built-in commands that way).
PLUGIN_MANAGER_KEY = "photobatch.plugin_manager"
_COMMANDS = "photobatch.commands"
_CONFIG = "photobatch.config"
# Commands that must run when the config file is missing or broken: `init` writes it.
_CONFIG_OPTIONAL = frozenset({"init"})


def _read_config(ctx: click.Context):
    """The config of this invocation, or the ConfigError that reading it raised; read once."""
    from photobatch.daemon.config import ConfigError, load_optional_config

    root = ctx.find_root()
    if _CONFIG not in root.meta:
        try:
            root.meta[_CONFIG] = load_optional_config(_global_option(ctx, "config_path"))
        except ConfigError as exc:
            root.meta[_CONFIG] = exc
    return root.meta[_CONFIG]


def config_for(ctx: click.Context):
    """The config of this invocation (--config, else the default file if any), read once."""
    config = _read_config(ctx)
    if isinstance(config, Exception):
        raise click.ClickException(str(config))
    return config


def _config_or_defaults(ctx: click.Context):
    """The config, or the defaults where it cannot be read (the command then says why)."""
    from photobatch.daemon.config import Config

    config = _read_config(ctx)
    return Config() if isinstance(config, Exception) else config


def plugin_settings(ctx: click.Context) -> dict:
    """build_plugin_manager's arguments: --plugins-dir, else the config's; disabled plugins."""
    # Plugins are needed to find the command (`init` among them) before it is known whether
    # that command needs the config: a config error waits for main() or get_command.
    config = _config_or_defaults(ctx)
    return {"plugins_dir": _global_option(ctx, "plugins_dir") or config.plugins_dir,
            "disabled_plugins": config.disabled_plugins}


def plugin_manager_for(ctx: click.Context):
    """The plugin host of this invocation, built once from the global options."""
    root = ctx.find_root()
    if PLUGIN_MANAGER_KEY not in root.meta:
        # Plugins load before main() runs (click resolves the command first): log setup first,
        # so a broken plugin reads as one line, not a bare traceback.
        setup_logging(_global_option(ctx, "verbose") or 0)
        root.meta[PLUGIN_MANAGER_KEY] = build_plugin_manager(**plugin_settings(root))
    return root.meta[PLUGIN_MANAGER_KEY]


def _global_option(ctx: click.Context, name: str):
    root = ctx.find_root()
    if name in root.params:
        return root.params[name]
    # --help is eager and may list commands before the other options are processed: the
    # environment variable is then all there is.
    param = next(p for p in root.command.params if p.name == name)
    value = param.resolve_envvar_value(root) if isinstance(param, click.Option) else None
    return param.type_cast_value(root, value) if value is not None else None


class PluginGroup(click.Group):
    """A click group whose commands are contributed by plugins, loaded when first needed."""

    def _plugin_commands(self, ctx: click.Context) -> dict:
        root = ctx.find_root()
        if _COMMANDS not in root.meta:
            try:
                registry = collect(plugin_manager_for(ctx), "photobatch_commands", "command")
            except PluginError as exc:
                raise click.ClickException(str(exc)) from None
            root.meta[_COMMANDS] = dict(registry.items)
        return root.meta[_COMMANDS]

    def invoke(self, ctx):
        from photobatch.catalog.store import CatalogError

        try:
            return super().invoke(ctx)
        except CatalogError as exc:  # any command that opens it: one line, no traceback
            raise click.ClickException(str(exc)) from None

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self._plugin_commands(ctx)})

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name) or self._plugin_commands(ctx).get(cmd_name)
        if command is None:
            # The command may come from a plugin folder named in the config that did not load.
            config_for(ctx)
        return command


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--catalog", type=click.Path(dir_okay=False, path_type=Path), envvar="PHOTOBATCH_CATALOG",
              help="Catalog database file (default: catalog.db in the user data dir; env PHOTOBATCH_CATALOG).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="PHOTOBATCH_CONFIG",
              help="Config file (default: config.toml in the user config dir; env PHOTOBATCH_CONFIG).")
@click.option("--recipes", "recipe_dirs", multiple=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A folder of extra recipe *.toml files (repeatable).")
@click.option("--plugins-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              envvar="PHOTOBATCH_PLUGINS_DIR", is_eager=True,
              help="A folder of drop-in plugin *.py files (env PHOTOBATCH_PLUGINS_DIR).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="photobatch")
@click.pass_context
def main(ctx, catalog, config_path, recipe_dirs, plugins_dir, verbose):
    """photobatch: diffusion recipes for photo shoots, with a catalog and metadata kept."""
    setup_logging(verbose)
    config = (_config_or_defaults(ctx) if ctx.invoked_subcommand in _CONFIG_OPTIONAL
              else config_for(ctx))
    ctx.obj = Context(catalog, recipe_dirs, config_path=config_path, verbosity=verbose,
                      plugins_dir=plugins_dir, plugin_manager=plugin_manager_for(ctx),
                      config=config)


if __name__ == "__main__":  # pragma: no cover
    main()
