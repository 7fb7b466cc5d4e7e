"""Output disks found full, each on its own: photos for a full disk wait (one tried now and
then, to see whether there is room again) while photos for the other disks go on."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def disk_of(folder: str | Path | None):
    """Which disk ``folder`` is on (its, or its nearest existing parent's, device number);
    None when that cannot be told."""
    if folder is None:
        return None
    path = Path(folder)
    while True:
        try:
            return os.stat(path).st_dev
        except OSError:
            if path.parent == path:
                return None
            path = path.parent


class FullDisks:
    """The disks found full, each with when to try it again and the run trying it."""

    def __init__(self, retry_delay: float):
        self.retry_delay = retry_delay
        self._state: dict[object, list] = {}  # disk -> [try again after (monotonic), probing run]
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._state)

    def found_full(self, folder) -> None:
        """A write into ``folder`` found its disk full: its photos wait ``retry_delay``."""
        with self._lock:
            self._state[disk_of(folder)] = [time.monotonic() + self.retry_delay, None]

    def wrote(self, folder) -> None:
        """An output was written into ``folder``: its disk has room (again)."""
        with self._lock:
            self._state.pop(disk_of(folder), None)

    def may_take(self, folder) -> bool:
        """Whether a run writing into ``folder`` may be taken now: its disk is not full, or it
        is and its wait is over with no other run trying it."""
        with self._lock:
            state = self._state.get(disk_of(folder))
        return state is None or (time.monotonic() >= state[0] and state[1] is None)

    def taken(self, run_id: int, folder) -> None:
        """Run ``run_id`` writing into ``folder`` was taken: on a full disk it is the one trying."""
        with self._lock:
            state = self._state.get(disk_of(folder))
            if state is not None:
                state[1] = run_id

    def ended(self, run_id: int) -> None:
        """Run ``run_id`` left the pipeline: a disk it was trying may be tried by another."""
        with self._lock:
            for state in self._state.values():
                if state[1] == run_id:
                    state[1] = None
