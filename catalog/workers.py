"""Which process a run belongs to (``pid@host``), and whether that process is still alive."""

from __future__ import annotations

import os
import socket


def worker_id() -> str:
    """This process as the queue knows it: ``pid@host``."""
    return f"{os.getpid()}@{socket.gethostname()}"


def pid_alive(worker: str | None) -> bool:
    """True when ``worker`` names a live process on this host (others are assumed alive)."""
    if not worker or "@" not in worker:
        return False
    pid, host = worker.split("@", 1)
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True
