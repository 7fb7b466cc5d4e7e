"""Built-in plugin: photobatch's own CLI commands, contributed like any plugin's."""

from photobatch.plugins import hookimpl


@hookimpl
def photobatch_commands():
    """run, catalog and demo."""
    from photobatch.daemon.commands.catalog import catalog
    from photobatch.daemon.commands.demo import demo
    from photobatch.daemon.commands.run import run

    return [run, catalog, demo]
