"""Hook specifications: only specs, one line of documentation each."""

from photobatch.plugins import hookspec

# Contributions: each returns a list of objects with a unique ``name``.


@hookspec
def photobatch_readers():
    """Return image readers (objects with ``name``, ``accept(head, path)`` and ``read(path)``)."""


@hookspec
def photobatch_writers():
    """Return output writers (objects with ``name``, ``extension`` and ``write(image, path, ...)``)."""


@hookspec
def photobatch_runners():
    """Return runners (objects with ``name`` and ``run(image, recipe, seed, model)``)."""


@hookspec
def photobatch_commands():
    """Return click commands (or groups) to add to the ``photobatch`` command line."""


@hookspec
def photobatch_recipe_dirs():
    """Return folders of ``*.toml`` recipes to load."""


# Events: called with keyword arguments; return values are ignored.


@hookspec
def photobatch_file_discovered(path, sha256):
    """Called when a file is registered in the catalog."""


@hookspec
def photobatch_run_started(path, recipe):
    """Called before a recipe runs on a file."""


@hookspec
def photobatch_output_written(source, output, recipe, run_id):
    """Called after an output file has been written and recorded."""


@hookspec
def photobatch_run_failed(path, recipe, error):
    """Called when a run fails; ``error`` is the one-line reason."""
