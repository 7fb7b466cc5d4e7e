"""Built-in plugin: photobatch's own CLI commands, contributed like any plugin's."""

from photobatch.plugins import hookimpl


@hookimpl
def photobatch_commands():
    """run, rerun, compare, catalog, export, demo, watch, status, init, plugins, inspect and recipes."""
    from photobatch.daemon.commands.catalog import catalog
    from photobatch.daemon.commands.compare import compare
    from photobatch.daemon.commands.demo import demo
    from photobatch.daemon.commands.export import export
    from photobatch.daemon.commands.inspect import inspect
    from photobatch.daemon.commands.plugins import plugins
    from photobatch.daemon.commands.recipes import recipes
    from photobatch.daemon.commands.rerun import rerun
    from photobatch.daemon.commands.run import run
    from photobatch.daemon.commands.watch import init, status, watch

    return [run, rerun, compare, catalog, export, demo, watch, status, init, plugins, inspect, recipes]
