"""The selection options shared by ``rerun``, ``catalog ls/stats/export`` and ``export``."""

from __future__ import annotations

import re
from pathlib import Path

import click

from photobatch.catalog.queries import Selection, parse_when
from photobatch.catalog.store import RUN_STATUSES

_SELECTION_PARAMS = ("paths", "recipe", "stale", "failed", "statuses", "since", "until",
                     "camera", "folders", "rating", "labels", "keywords")


def _when(end: bool):
    def convert(ctx, param, value):
        if value is None:
            return None
        try:
            return parse_when(value, end=end)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return convert


def selection_options(fn=None, *, paths: bool = True):
    """Add the selection options (and, with ``paths``, a PATHS... argument) to a command."""
    def decorate(f):
        options = [
            click.option("--recipe", metavar="NAME", help="Runs of this recipe."),
            click.option("--stale", is_flag=True,
                         help="Outputs whose recipe, model, adapter files (LoRA, VAE, ...) "
                              "or painted mask changed since they were made."),
            click.option("--failed", is_flag=True, help="Runs that failed."),
            click.option("--status", "statuses", multiple=True,
                         type=click.Choice(RUN_STATUSES, case_sensitive=False),
                         help="Latest run in this status (repeatable; with --stale/--failed: any of them)."),
            click.option("--since", callback=_when(False), metavar="WHEN",
                         help="Taken (else imported) on or after: 2026-03-01, '2026-03-01 18:00', 7d."),
            click.option("--until", callback=_when(True), metavar="WHEN",
                         help="Taken (else imported) on or before (a date includes that whole day)."),
            click.option("--camera", help="Camera make or model contains this (case-insensitive)."),
            click.option("--rating", type=click.IntRange(0, 5), metavar="STARS",
                         help="Rated at least this many stars (0-5) in Lightroom, Capture One, "
                              "Bridge or darktable (XMP sidecar or the photo's own XMP)."),
            click.option("--label", "labels", multiple=True, metavar="NAME",
                         help="With this colour label (red, yellow, green, blue, purple, or "
                              "Lightroom's label text; repeatable: any of them)."),
            click.option("--keyword", "keywords", multiple=True, metavar="WORD",
                         help="Tagged with this keyword (case-insensitive; repeatable: any of "
                              "them), from the sidecar or the photo's own IPTC/XMP."),
            click.option("--folder", "folders", multiple=True,
                         type=click.Path(file_okay=False, path_type=Path),
                         help="Photos under this folder (repeatable)."),
        ]
        if paths:
            options.append(click.argument("paths", nargs=-1, type=click.Path(path_type=Path)))
        for option in reversed(options):
            f = option(f)
        return f

    return decorate(fn) if fn is not None else decorate


def pop_selection(kwargs: dict, bare_names: bool = True) -> Selection:
    """Take the selection options out of a command's keyword arguments; ``bare_names``: a
    file name not on disk here (IMG_0001.JPG) selects that photo in any folder."""
    values = {name: kwargs.pop(name, None) for name in _SELECTION_PARAMS}
    places = [_place(p, bare_names) for p in (values["paths"] or ())]
    places += [str(Path(f).expanduser().resolve()) for f in values["folders"] or ()]
    return Selection(
        recipe=values["recipe"], stale=bool(values["stale"]), failed=bool(values["failed"]),
        statuses=tuple(s.lower() for s in values["statuses"] or ()), since=values["since"],
        until=values["until"], camera=values["camera"], places=tuple(places),
        rating=values["rating"], labels=tuple(values["labels"] or ()),
        keywords=tuple(values["keywords"] or ()))


def _place(path: Path, bare_names: bool = True) -> str:
    # Something on disk is matched by its resolved path (the catalog records those); a name that
    # is not on disk may be a sha256 prefix, or a file deleted since it was catalogued.
    expanded = Path(path).expanduser()
    if expanded.exists():
        return str(expanded.resolve())
    text = str(path)
    if re.fullmatch(r"[0-9a-fA-F]{8,64}", text):
        return text
    if bare_names and Path(text).name == text and text not in (".", ".."):
        return text  # a bare file name (a client's list of favourites): any folder's photo of it
    return str(expanded.absolute())
