"""Hook specifications: only specs, one line of documentation each (details in docs/plugins.md)."""

from photobatch.plugins import hookspec

# Contributions: each returns a list of objects with a unique ``name`` (recipe folders: paths).
# The host gathers them into name-keyed registries; a name contributed twice is an error.


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
def photobatch_steps():
    """Return classical image steps (objects with ``name`` and ``apply(image, params, source)``)."""


@hookspec
def photobatch_exporters():
    """Return exporters (objects with ``name`` and ``export(items, destination, options)``)."""


@hookspec
def photobatch_face_detectors():
    """Return face detectors (objects with ``name`` and ``detect(image)`` giving pixel boxes)."""


@hookspec
def photobatch_commands():
    """Return click commands (or groups) to add to the ``photobatch`` command line."""


@hookspec
def photobatch_recipe_dirs():
    """Return folders of ``*.toml`` recipes to load."""


# Selection: which contributed steps apply to a recipe's output, until recipes name them.


@hookspec
def photobatch_post_steps(recipe):
    """Return step names (or ``(name, params)`` pairs) to apply to ``recipe``'s full-size result."""


# Events: called with keyword arguments; return values are ignored, exceptions are recorded.


@hookspec
def photobatch_file_discovered(path, sha256):
    """Called when a file is registered in the catalog."""


@hookspec
def photobatch_run_started(path, recipe, run_id):
    """Called before a recipe runs on a file."""


@hookspec
def photobatch_output_written(source, output, recipe, run_id):
    """Called after an output file has been written and recorded."""


@hookspec
def photobatch_run_failed(path, recipe, error, run_id):
    """Called when a run fails; ``error`` is the one-line reason."""


@hookspec
def photobatch_daemon_started(app):
    """Called once the watch service is running, before the first file is picked up."""


@hookspec
def photobatch_caught_up(app, done, skipped, failed, seconds):
    """Called when the watch service has had no work for a while, with what it did since then."""


@hookspec
def photobatch_needs_attention(app, text):
    """Called when the watch service cannot go on without the user; ``text`` says why."""


@hookspec
def photobatch_daemon_stopping(app, reason):
    """Called when the watch service begins to stop; ``reason`` says why (a signal name)."""
