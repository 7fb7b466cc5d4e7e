"""Built-in plugin: a watch folder's exports, made again whenever the daemon has caught up.

A ``[[watch.export]]`` table names an exporter (``gallery``, ``files``, or a plugin's), its
``out`` folder and its options as the command takes them::

    [[watch.export]]
    exporter = "gallery"                 # a proofing gallery on the studio's screen
    out = "~/Sites/proofs"
    watermark = "© Jane Doe"

    [[watch.export]]
    exporter = "files"                   # the client's web-size copies
    out = "~/Delivery/web"
    long_edge = 2048
    sharpen = "screen"

Each time the daemon has caught up (a shoot, or a burst of a live event, is done), each export
runs over the folder's outputs (those in its output folder, wherever the originals have been
archived since), from a thread of its own: the daemon goes on with new photos meanwhile. The
exporters' own records make it cheap: the gallery reuses its pictures, the files exporter skips
what is unchanged. A failed export is logged and tried again at the next catch-up.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from photobatch.plugins import hookimpl

log = logging.getLogger("photobatch.export")

_RUNNING: dict[tuple, threading.Thread] = {}  # one export of a spec at a time
_AGAIN: set[tuple] = set()  # specs asked for again while they ran
_LOCK = threading.Lock()


class ExportSpecError(Exception):
    """A ``[[watch.export]]`` table its exporter cannot run: a one-line reason."""


def exporter_values(exporter, spec) -> dict:
    """``spec``'s options as ``exporter``'s command would pass them (by parameter name, types
    converted, choices checked); ExportSpecError names an unknown option or a bad value."""
    import click

    params = {}
    for option in getattr(exporter, "options", None) or []:
        for flag in option.opts:
            params[flag.lstrip("-").replace("-", "_")] = option
        params[option.name] = option
    context = click.Context(click.Command(exporter.name))
    values = {}
    for key, raw in spec.options:
        option = params.get(key)
        if option is None:
            known = sorted({o.opts[0].lstrip("-").replace("-", "_") for o in params.values()})
            raise ExportSpecError(f"{spec.exporter} has no option {key} (it has: "
                                  f"{', '.join(known) or 'none'})")
        try:
            values[option.name] = option.type_cast_value(context, raw)
        except click.BadParameter as exc:
            raise ExportSpecError(f"{spec.exporter}'s {key}: {exc.message}") from None
    return values


def check_exports(app) -> list[str]:
    """What is wrong with ``app``'s ``[[watch.export]]`` tables (an exporter that is not there,
    an option it lacks, a value it refuses), one line each."""
    from photobatch.plugins.manager import PluginError, collect

    if not app.auto_exports:
        return []
    try:
        exporters = collect(app.pm, "photobatch_exporters")
    except PluginError as exc:
        return [str(exc)]
    problems = []
    for _, spec in app.auto_exports:
        if spec.exporter not in exporters:
            problems.append(f"[[watch.export]] exporter {spec.exporter!r} is not there (known: "
                            f"{', '.join(sorted(exporters.items))})")
            continue
        try:
            exporter_values(exporters.get(spec.exporter), spec)
        except ExportSpecError as exc:
            problems.append(f"[[watch.export]] {exc}")
    return problems


def run_exports(app, wait: bool = False) -> list[threading.Thread]:
    """Start each of ``app``'s exports over its folder's outputs, each in a thread of its own
    (one asked for again while it runs is made once more when it is through); return the
    threads started. ``wait``: join them (``watch --once``)."""
    from photobatch.plugins.manager import collect

    exporters = collect(app.pm, "photobatch_exporters")
    started = []
    for output_folder, spec in app.auto_exports:
        key = (str(output_folder), spec)
        with _LOCK:
            if key in _RUNNING:
                _AGAIN.add(key)
                continue
            exporter = exporters.get(spec.exporter)
            thread = threading.Thread(
                target=_exports, args=(app, exporter, spec, output_folder, key),
                name=f"photobatch-export-{spec.exporter}", daemon=True)
            _RUNNING[key] = thread
        thread.start()
        started.append(thread)
    if wait:
        for thread in started:
            thread.join()
    return started


def _exports(app, exporter, spec, output_folder, key: tuple) -> None:
    """Export until no one asked for it again meanwhile."""
    try:
        while True:
            _export(app, exporter, spec, output_folder)
            with _LOCK:
                if key not in _AGAIN:
                    _RUNNING.pop(key, None)
                    return
                _AGAIN.discard(key)
    except BaseException:
        with _LOCK:
            _RUNNING.pop(key, None)
            _AGAIN.discard(key)
        raise
    finally:
        # A thread per catch-up: its connection goes with it (a daemon runs for months).
        app.close_thread_catalog()


def _export(app, exporter, spec, output_folder) -> None:
    """One export of ``spec`` over the outputs in ``output_folder`` (chosen on this thread's
    own catalog connection); a failure is logged, and tried again at the next catch-up."""
    from photobatch.catalog.queries import Selection
    from photobatch.daemon.export_selection import export_items
    from photobatch.daemon.reruns import ModelChooser
    from photobatch.plugins.exporting import ExportOptions

    try:
        values = exporter_values(exporter, spec)
        items, _ = export_items(app, Selection(), ModelChooser(app),
                                output_under=Path(output_folder).expanduser().resolve())
        if not items:
            return
        result = exporter.export(items, spec.out, ExportOptions(
            values=values, readers=list(app.readers), writers=app.writers,
            echo=lambda text: log.warning("%s: %s", spec.describe(), text)))
        text = str(result).replace("\n", "; ")
        log.info("%s: %s", spec.describe(), text)
        _record(app, spec, result=text)
    except Exception as exc:  # the daemon goes on; the next catch-up tries again
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("%s failed: %s", spec.describe(), reason)
        log.debug("export failed", exc_info=True)
        _record(app, spec, error=reason)


def _record(app, spec, result: str | None = None, error: str | None = None) -> None:
    """Keep how the export went in the catalog (`photobatch status` shows it)."""
    from photobatch.catalog.queue import now_text

    try:
        with app.catalog.transaction():
            app.catalog.db["exports"].upsert({"name": spec.name, "finished_at": now_text(),
                                              "result": result, "error": error}, pk="name")
    except Exception:  # a busy or read-only catalog: the log has it all the same
        log.debug("could not record the export", exc_info=True)


@hookimpl
def photobatch_caught_up(app, done, skipped, failed, seconds):
    """A shoot is done: make the folders' exports again, with its photos."""
    if getattr(app, "auto_exports", ()) and done:
        run_exports(app)


# On SIGTERM an export still going gets this long; one left unfinished leaves its earlier
# files as they were (the exporters write each file whole, then rename it into place).
STOP_WAIT_SECONDS = 30.0


@hookimpl
def photobatch_daemon_stopping(app, reason):
    """Let running exports finish: all of them after `watch --once` (reason "idle"), for a
    while on a signal."""
    with _LOCK:
        running = list(_RUNNING.values())
    deadline = None if reason == "idle" else STOP_WAIT_SECONDS
    for thread in running:
        thread.join(deadline)
