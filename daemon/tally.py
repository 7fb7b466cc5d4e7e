"""What the daemon did since it last ran out of work: counted per outcome, said once caught up."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from photobatch.daemon.tables import duration_text


@dataclass(frozen=True)
class Stretch:
    """One stretch of work, from its first run to the queue running dry."""

    done: int
    skipped: int
    failed: int
    seconds: float

    def text(self) -> str:
        """'caught up: 120 done, 2 failed in 14 min (8.6/min)'."""
        parts = [f"{self.done} done"] + [f"{n} {word}" for n, word in
                                         ((self.skipped, "skipped"), (self.failed, "failed")) if n]
        pace = f" ({self.done / self.seconds * 60:.1f}/min)" if self.done and self.seconds else ""
        return f"caught up: {', '.join(parts)} in {duration_text(self.seconds)}{pace}"


class Tally:
    """Counts outcomes from the pipeline's threads; ``settle()`` hands a stretch over once the
    daemon has had nothing to do for a while."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._counts = {"done": 0, "skipped": 0, "failed": 0}
        self._since: float | None = None
        self._idle_since: float | None = None

    def count(self, status: str, seconds: float, final: bool = True) -> None:
        """Add an outcome (``seconds`` it took: the stretch began no later than its start).
        One that is not ``final`` (a failure tried again later) is the stretch's time, not a
        photo of it."""
        with self._lock:
            if self._since is None:
                self._since = self._clock() - seconds
            if final:
                self._counts[status] = self._counts.get(status, 0) + 1

    def __bool__(self) -> bool:
        with self._lock:
            return self._since is not None

    def settle(self, idle: bool, wait: float) -> Stretch | None:
        """The stretch counted so far once the daemon has been ``idle`` for ``wait`` seconds on
        end (a card still being copied, slower than the model, is not a finished shoot), and a
        new stretch begun; None until then."""
        with self._lock:
            if self._since is None or not idle:
                self._idle_since = None
                return None
            now = self._clock()
            if self._idle_since is None:
                self._idle_since = now
            if now - self._idle_since < wait:
                return None
            stretch = Stretch(self._counts["done"], self._counts["skipped"],
                              self._counts["failed"], self._idle_since - self._since)
            self._counts = {"done": 0, "skipped": 0, "failed": 0}
            self._since = self._idle_since = None
            return stretch
