"""Watching folders: watchdog observers whose handlers only enqueue, and readiness tracking.

A file is ready once its writer closed it (inotify) or its size and mtime have stayed the same
for the folder's quiet period (polling, network shares), and it can be opened for reading.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from photobatch.daemon.config import WatchFolder
from photobatch.daemon.paths import is_candidate

log = logging.getLogger(__name__)

CLOSE_SETTLE = 0.5  # seconds a closed file must stay unchanged


@dataclass
class _Entry:
    size: int
    mtime_ns: int
    changed_at: float
    quiet: float
    closed: bool


class ReadinessTracker:
    """Remembers files being written and says which have settled; safe across threads."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._entries: dict[Path, _Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def touch(self, path: Path, quiet: float, closed: bool = False) -> None:
        """Note activity on ``path`` (``closed``: its writer closed it)."""
        try:
            st = path.stat()
        except OSError:
            self.forget(path)
            return
        with self._lock:
            self._entries[path] = _Entry(st.st_size, st.st_mtime_ns, self._clock(), quiet, closed)

    def forget(self, path: Path) -> None:
        """Stop tracking ``path`` (deleted or moved away)."""
        with self._lock:
            self._entries.pop(path, None)

    def take_ready(self) -> list[Path]:
        """Return (and stop tracking) the files that are complete and readable now."""
        now = self._clock()
        ready = []
        with self._lock:
            items = list(self._entries.items())
        for path, entry in items:
            try:
                st = path.stat()
            except OSError:
                self.forget(path)
                continue
            if (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns):
                # Still being written: the quiet period starts again.
                self.touch(path, entry.quiet)
                continue
            quiet_for = now - entry.changed_at
            # A closed file is ready after a short settle if it looks complete; a writer that
            # closes between chunks, or an empty placeholder, waits for the quiet period.
            closed = (entry.closed and st.st_size > 0 and quiet_for >= min(CLOSE_SETTLE, entry.quiet)
                      and looks_complete(path))
            if (closed or quiet_for >= entry.quiet) and _readable(path):
                with self._lock:
                    if self._entries.get(path) is entry:
                        del self._entries[path]
                        ready.append(path)
        return ready


def looks_complete(path: Path) -> bool:
    """Cheap completeness sniff: a JPEG must end with its EOI marker (cameras may pad after it)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(3) != b"\xff\xd8\xff":
                return True
            fh.seek(max(0, path.stat().st_size - 4096))
            return b"\xff\xd9" in fh.read()
    except OSError:
        return False


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        return True
    except OSError:
        return False


def is_ignored(path: Path, folder: WatchFolder, outputs: list[Path]) -> bool:
    """True for names the folder ignores, non-photos, and anything under an output folder."""
    name = path.name
    if any(fnmatch.fnmatch(name, pattern) for pattern in folder.ignore):
        return True
    if not is_candidate(path):  # not a photo's name (a mask, a temp name, another extension)
        return True
    try:
        rel = path.relative_to(folder.path)
    except ValueError:
        return True
    if not folder.recursive and len(rel.parts) > 1:
        return True
    if any(part.startswith(".") for part in rel.parts[:-1]):
        return True
    return any(path.is_relative_to(out) for out in outputs)


def scan_folder(folder: WatchFolder, outputs: list[Path]) -> list[Path]:
    """Every photo currently in ``folder`` (a catch-up scan), sorted."""
    if not folder.path.is_dir():
        return []
    found = []
    walker = os.walk(folder.path) if folder.recursive else [(str(folder.path), [], os.listdir(folder.path))]
    for root, dirs, files in walker:
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not any((Path(root) / d).is_relative_to(o) for o in outputs))
        for name in sorted(files):
            path = Path(root) / name
            if path.is_file() and not is_ignored(path, folder, outputs):
                found.append(path)
    return found


class EnqueueingHandler(FileSystemEventHandler):
    """Turns watchdog events into ``(kind, path)`` items; never raises (that would stop delivery)."""

    def __init__(self, events: "queue.Queue[tuple[str, Path]]"):
        super().__init__()
        self.events = events

    def on_any_event(self, event) -> None:
        try:
            kind = event.event_type
            if event.is_directory:
                if kind in ("created", "moved"):
                    self.events.put(("scan", Path(os.fsdecode(getattr(event, "dest_path", "") or event.src_path))))
                return
            if kind == "moved":
                self.events.put(("gone", Path(os.fsdecode(event.src_path))))
                self.events.put(("touch", Path(os.fsdecode(event.dest_path))))
            elif kind in ("created", "modified"):
                self.events.put(("touch", Path(os.fsdecode(event.src_path))))
            elif kind == "closed":
                self.events.put(("closed", Path(os.fsdecode(event.src_path))))
            elif kind == "deleted":
                self.events.put(("gone", Path(os.fsdecode(event.src_path))))
        except Exception:  # pragma: no cover - defensive: delivery must go on
            log.exception("could not handle a file event")


def folder_ready(folder: WatchFolder) -> bool:
    """True when ``folder`` is there to watch: it exists, or is made now in a parent that
    exists (a fresh ~/Pictures/Inbox). Under a missing parent (a card or a share not mounted)
    it is not made: a folder made there would hide under the mount once it comes."""
    try:
        folder.path.mkdir(exist_ok=True)
    except OSError:
        return False
    return folder.path.is_dir()


def start_observer(folder: WatchFolder, handler: EnqueueingHandler):
    """Start a native observer (or a polling one when asked, or when the native one fails) on
    a folder that is there (see folder_ready)."""
    if folder.polling != "on":
        observer = Observer()
        try:
            observer.schedule(handler, str(folder.path), recursive=folder.recursive)
            observer.start()
            return observer, "native"
        except OSError as exc:
            if folder.polling == "off":
                raise
            log.warning("native file events unavailable for %s (%s); polling instead",
                        folder.path, exc.strerror or exc)
    observer = PollingObserver(timeout=1)
    observer.schedule(handler, str(folder.path), recursive=folder.recursive)
    observer.start()
    return observer, "polling"
