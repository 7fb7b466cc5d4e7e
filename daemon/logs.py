"""Logging: one line per problem on the terminal, full tracebacks in the log file."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path

import platformdirs


class _OneLine(logging.Formatter):
    """Terminal format: the message only; tracebacks belong in the log file."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"photobatch: {record.getMessage()}"
        if record.exc_info:
            text += f" ({record.exc_info[1].__class__.__name__}; details in {log_file()})"
        return text


def log_file() -> Path:
    """PHOTOBATCH_LOG, else photobatch.log in the user log dir."""
    env = os.environ.get("PHOTOBATCH_LOG")
    return Path(env) if env else Path(platformdirs.user_log_dir("photobatch")) / "photobatch.log"


class _JsonLines(logging.Formatter):
    """One JSON object per line, for log shippers (``watch --log-json``)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class _DaemonLines(logging.Formatter):
    """Readable daemon lines; journald adds its own timestamps, so none here."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower():<7} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Terminal(logging.StreamHandler):
    """A StreamHandler writing to whatever ``sys.stderr`` is when a record comes, not the one
    it was made with (a program embedding the CLI, click's test runner, swaps it per call)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(verbosity: int = 0, *, json_lines: bool = False, daemon: bool = False) -> None:
    """Terminal at WARNING (INFO with -v, DEBUG with -vv); the log file keeps tracebacks.

    ``daemon``: the service's readable lines (tracebacks included, for journald);
    ``json_lines``: one JSON object per line instead.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_photobatch", False):
            root.removeHandler(handler)
    terminal = _Terminal()
    if json_lines:
        terminal.setFormatter(_JsonLines())
    elif daemon:
        terminal.setFormatter(_DaemonLines())
    else:
        terminal.setFormatter(_OneLine() if verbosity == 0 else logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    terminal.setLevel([logging.WARNING, logging.INFO, logging.DEBUG][min(verbosity, 2)])
    terminal._photobatch = True
    root.addHandler(terminal)
    try:
        path = log_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(path, encoding="utf-8")
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        to_file.setLevel(logging.INFO)
        to_file._photobatch = True
        root.addHandler(to_file)
    except OSError:
        pass  # a read-only home must not stop the tool; the terminal still shows problems
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    # Library chatter (progress bars, torchvision hints) is not for photographers.
    for noisy in ("diffusers", "transformers", "huggingface_hub", "PIL", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
