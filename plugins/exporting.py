"""What an exporter (``photobatch_exporters``) is given: the items, and the options of the export.

An exporter is an object with ``name``, ``export(items, destination, options)`` and, optionally,
``help`` (one line for ``photobatch export --help``) and ``options`` (extra click options of its
``photobatch export NAME`` command; their values arrive in ``options.values``). It raises
ExportError for problems the user can fix; the command shows them as a one-line error.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence


@dataclass(frozen=True)
class ExportItem:
    """One output with its original and what the catalog recorded about both."""

    source: Path  # the original photo (may be RAW or HEIC: decode it with ``decode_photo``)
    output: Path  # the full-resolution output
    recipe: str
    params: Mapping[str, Any]  # the recipe's parameters as recorded for this run
    seed: int | None
    model: str | None  # the model's identity (a folder path or a hub id)
    run_id: int
    source_sha256: str
    output_sha256: str | None
    processed_at: str | None  # when the run finished (ISO 8601, UTC)
    metadata: Mapping[str, Any] = field(default_factory=dict)  # the original's metadata summary


def _no_progress(items: Iterable, total: int | None = None, desc: str = "") -> Iterable:
    return items


@dataclass(frozen=True)
class ExportOptions:
    """The exporter's own option values, and what the application lends it."""

    values: Mapping[str, Any] = field(default_factory=dict)  # by click parameter name
    readers: Sequence[Any] = ()  # the application's image readers
    writers: Any = None  # the application's writers (a Registry: .get(name), `name in`)
    # progress(iterable, total, desc) yields the items, drawing a bar on a terminal.
    progress: Callable[..., Iterable] = _no_progress
    echo: Callable[[str], None] = print

    def get(self, name: str, default: Any = None) -> Any:
        """The value of the exporter option ``name`` (``default`` when not given)."""
        value = self.values.get(name)
        return default if value is None else value


class ExportError(Exception):
    """A problem the user can fix (destination not usable...): shown as a one-line error."""


class NoReader(Exception):
    """No reader accepts the file, or it cannot be decoded."""


def decode_photo(path: Path, readers: Sequence[Any], *, preview: bool = True,
                 checkerboard: bool = False):
    """Decode a photo upright through the app's readers (RAW, HEIC, 16-bit TIFF included).

    ``preview`` lets a reader decode at reduced size when it can (half-size RAW, JPEG draft):
    enough for a screen, several times faster. A transparent picture (a cut-out PNG) comes
    flattened onto white, or with ``checkerboard`` over the checkerboard editors show
    transparency on. Returns (RGB PIL image, its ICC profile or None).
    """
    decoded = read_photo(path, readers, preview=preview)
    image = decoded.image.convert("RGB")
    alpha = getattr(decoded, "alpha", None)
    if checkerboard and alpha is not None:
        from photobatch.plugins.transparency import on_checkerboard

        image = on_checkerboard(image, alpha)
    return image, getattr(decoded, "icc_profile", None)


def read_photo(path: Path, readers: Sequence[Any], *, preview: bool = False):
    """The reader's whole DecodedImage of a photo (``photobatch.plugins.images``): its upright
    8-bit picture (flattened onto white), and where the file has them its 16-bit pixels
    (``pixels16``), transparency (``alpha``) and ICC profile. Raises NoReader with the reason."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise NoReader(f"cannot read {path.name}: {exc.strerror or exc}") from None
    reader = next((r for r in readers if r.accept(head, path)), None)
    if reader is None:
        raise NoReader(f"{path.name}: no reader for this format")
    kwargs = {"half_size": True} if preview and _takes(reader.read, "half_size") else {}
    try:
        return reader.read(path, **kwargs)
    except Exception as exc:  # a reader's own error type: reported, the export goes on
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NoReader(f"{path.name}: {reason}") from None


def _takes(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
