"""The recipes and models in force now, for commands that judge catalog runs against them.

The daemon's config counts: its recipe folders hold recipes its runs were made with, and its
default and per-folder models are what those recipes run on now.
"""

from __future__ import annotations

import logging

import click

from photobatch.daemon.commands.common import Context

log = logging.getLogger(__name__)


def daemon_config(obj: Context):
    """The config this invocation read (--config, else the default file; None when none)."""
    config = getattr(obj, "config", None)
    if config is not None:
        return config
    from photobatch.daemon.config import ConfigError, default_config_path, load_config

    path = obj.config_path or default_config_path()
    if not path.exists():
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def current_app(obj: Context, model: str | None = None):
    """(App, ModelChooser) for this invocation, with the daemon config's recipes and models."""
    from photobatch.daemon.app import App
    from photobatch.daemon.reruns import ModelChooser
    from photobatch.plugins.manager import PluginError
    from photobatch.recipes.schema import RecipeError

    config = daemon_config(obj)
    recipe_dirs = (tuple(config.recipe_dirs) if config else ()) + tuple(obj.recipe_dirs)
    try:
        # The plugin host was built from --plugins-dir or the config's plugin folder (cli.py).
        # The device, precision and copyright the config sets, as for `run`: `rerun --now`
        # makes outputs too.
        app = App(catalog_path=obj.catalog, recipe_dirs=recipe_dirs, model=model,
                  plugin_manager=obj.plugin_manager, **(config.app_settings() if config else {}))
    except (RecipeError, PluginError) as exc:
        raise click.ClickException(str(exc)) from None
    return app, ModelChooser(app, explicit=model, config=config)
