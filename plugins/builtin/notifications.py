"""Built-in plugin: tell the photographer when a shoot is done, or when the daemon needs them.

A wedding of 2000 RAW files takes hours on a GPU box in another room. With the config's
``[notify]`` table the daemon says so when it has caught up ("412 done, 3 failed in 1 h 12 min")
and when it cannot go on without them (an output disk is full): an HTTP POST of the message to
``url`` (ntfy.sh and self-hosted ntfy take it as it is, with the ``Title`` header; so do most
webhook relays), and/or ``command`` run with ``{title}`` and ``{text}`` filled in
(``["notify-send", "{title}", "{text}"]`` on a desktop). Messages are sent from a thread of
their own: a slow or unreachable server never holds the daemon up; a failure is logged.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import urllib.request
from dataclasses import dataclass

from photobatch.plugins import hookimpl

log = logging.getLogger("photobatch.notify")

# A server that does not answer in this long is given up on (the message is logged).
TIMEOUT_SECONDS = 15


@dataclass(frozen=True)
class NotifySettings:
    """The config's ``[notify]`` table: where messages go."""

    url: str = ""
    command: tuple[str, ...] = ()
    # More HTTP headers for ``url``: a self-hosted ntfy's access token
    # ({"Authorization": "Bearer tk_..."}), ntfy's Priority or Tags, Gotify's X-Gotify-Key.
    headers: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.url or self.command)


def send(settings: NotifySettings, title: str, text: str) -> threading.Thread:
    """Send ``title`` and ``text`` where ``settings`` say, from a thread of its own (returned)."""
    thread = threading.Thread(target=_deliver, args=(settings, title, text),
                              name="photobatch-notify", daemon=True)
    thread.start()
    return thread


def _deliver(settings: NotifySettings, title: str, text: str) -> list[str]:
    """Send the message now; log and return what went wrong (empty: it went)."""
    problems = []
    if settings.url:
        request = urllib.request.Request(
            settings.url, data=text.encode("utf-8"), method="POST",
            # ntfy reads the title from this header; it must be Latin-1, as HTTP headers are.
            headers={"Title": title.encode("latin-1", "replace").decode("latin-1"),
                     "Content-Type": "text/plain; charset=utf-8", **dict(settings.headers)})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                response.read()
        except Exception as exc:  # the daemon goes on; the user reads why in the log
            problems.append(f"could not send the notification to {settings.url}: "
                            f"{getattr(exc, 'reason', None) or exc}")
    if settings.command:
        argv = [part.replace("{title}", title).replace("{text}", text) for part in settings.command]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"the notification command {settings.command[0]} failed: {exc}")
        else:
            if done.returncode:
                reason = (done.stderr or done.stdout).strip().splitlines()
                problems.append(f"the notification command {settings.command[0]} exited "
                                f"{done.returncode}" + (f": {reason[-1]}" if reason else ""))
    for problem in problems:
        log.warning("%s", problem)
    return problems


def send_now(settings: NotifySettings, title: str, text: str) -> list[str]:
    """Send the message and wait for it (``watch --check --notify``); what went wrong."""
    return _deliver(settings, title, text)


def _title(what: str) -> str:
    return f"photobatch on {socket.gethostname()}: {what}"


@hookimpl
def photobatch_caught_up(app, done, skipped, failed, seconds):
    """A shoot is done: say how it went."""
    from photobatch.daemon.tally import Stretch

    settings = getattr(app, "notifications", None)
    if not settings:
        return
    text = Stretch(done, skipped, failed, seconds).text().removeprefix("caught up: ")
    if failed:
        text += " (`photobatch status` shows why)"
    send(settings, _title("shoot done" if not failed else "shoot done, with failures"), text)


@hookimpl
def photobatch_needs_attention(app, text):
    """The daemon cannot go on without the photographer: say why."""
    settings = getattr(app, "notifications", None)
    if settings:
        send(settings, _title("needs you"), text)
