"""Built-in plugin: photobatch's own CLI commands, contributed like any plugin's."""

from photobatch.plugins import hookimpl


@hookimpl
def photobatch_commands():
    """run, catalog, demo, watch, status, init and plugins."""
    from photobatch.daemon.commands.catalog import catalog
    from photobatch.daemon.commands.demo import demo
    from photobatch.daemon.commands.plugins import plugins
    from photobatch.daemon.commands.run import run
    from photobatch.daemon.commands.watch import init, status, watch

    return [run, catalog, demo, watch, status, init, plugins]
