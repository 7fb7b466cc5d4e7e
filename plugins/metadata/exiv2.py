"""exiv2 access through pyexiv2: parse bytes leniently, read tag groups, one shared lock.

Files are always handed to exiv2 as bytes (``pyexiv2.ImageData``): ``pyexiv2.Image(str)``
passes the path to ``fopen``, which fails for undecodable bytes and on Windows; a source
handed over as bytes can never be opened for writing. pyexiv2 turns every exiv2 *error* log
line into a RuntimeError, even where exiv2 itself would carry on (a corrupt IFD, say), so
reading retries with exiv2's log muted and keeps what exiv2 could recover. exiv2's warnings
are muted: pyexiv2 prints them to standard output from C++, where they would break the CLI's
output (its JSON included) and name no file; none of them is something a user can act on.
"""

from __future__ import annotations

import threading
from typing import Any

import pyexiv2

NAMESPACE_URI = "https://photobatch.dev/ns/1.0/"
NAMESPACE_PREFIX = "photobatch"


# pyexiv2 keeps exiv2's log level and error buffer in process globals; one lock keeps a muted
# retry in one thread from hiding another thread's errors. exiv2 calls hold the GIL anyway,
# so this costs no parallelism.
LOCK = threading.RLock()
_NS_REGISTERED = False
_ERRORS_ONLY = 3  # pyexiv2's levels: 0 debug, 1 info, 2 warn, 3 error, 4 mute
pyexiv2.set_log_level(_ERRORS_ONLY)


class MetadataError(Exception):
    """A metadata problem to show to the user (unreadable source, unwritable output)."""


def register_namespace() -> None:
    """Register the photobatch XMP namespace with exiv2 (once per process)."""
    global _NS_REGISTERED
    if not _NS_REGISTERED:
        pyexiv2.registerNs(NAMESPACE_URI, NAMESPACE_PREFIX)
        _NS_REGISTERED = True


def open_image(data: bytes, notes: list[str] | None = None) -> pyexiv2.ImageData:
    """Parse ``data``; with ``notes``, retry leniently on exiv2 errors and note why."""
    with LOCK:
        try:
            return pyexiv2.ImageData(data)
        except RuntimeError as exc:
            if notes is None or "unknown image type" in str(exc):
                raise
            notes.append(f"exiv2: {one_line(exc).rstrip('.')}; kept what it could recover")
            pyexiv2.set_log_level(4)
            try:
                return pyexiv2.ImageData(data)
            finally:
                pyexiv2.set_log_level(_ERRORS_ONLY)


def open_file(path) -> pyexiv2.ImageData:
    """Read and parse the file at ``path`` (the photobatch namespace registered), or raise a
    MetadataError naming the file and the reason."""
    from pathlib import Path

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MetadataError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    register_namespace()
    try:
        return open_image(data)
    except RuntimeError as exc:
        raise MetadataError(f"cannot read metadata of {path.name}: {one_line(exc)}") from exc


def one_line(exc: BaseException) -> str:
    """The exception as one line of text (exiv2 messages span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def fix_text(value: Any) -> Any:
    """Re-decode values read as Latin-1 as UTF-8 where that works (strings, lists, dicts)."""
    # Values are read as Latin-1 (which never fails) and then re-decoded as UTF-8 where that
    # works: exiv2 hands back raw bytes and old cameras write Latin-1 into ASCII tags, which
    # makes pyexiv2's strict UTF-8 decoding raise for the whole read.
    if isinstance(value, str):
        try:
            value = value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        return value
    if isinstance(value, list):
        return [fix_text(v) for v in value]
    if isinstance(value, dict):
        return {fix_text(k): fix_text(v) for k, v in value.items()}
    return value


def read_group(img: pyexiv2.ImageData, what: str, notes: list[str] | None = None) -> dict:
    """Read one group ("exif", "iptc" or "xmp"); with ``notes``, a failure is noted, not raised."""
    reader = getattr(img, f"read_{what}")
    with LOCK:
        try:
            return {k: fix_text(v) for k, v in reader(encoding="latin-1").items()}
        except Exception as exc:  # exiv2 may choke on one odd tag: keep the other groups
            if notes is None:
                raise
            notes.append(f"exiv2 could not read the {what.upper()} block: {one_line(exc)}")
            return {}

