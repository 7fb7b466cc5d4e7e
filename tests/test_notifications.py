"""``[notify]``: the daemon tells the photographer when a shoot is done and when it needs them."""

from __future__ import annotations

import http.server
import logging
import sys
import threading
import time

import pytest

from photobatch.daemon.config import ConfigError, parse_config
from photobatch.plugins.builtin.notifications import NotifySettings, send
from tests.test_watch_daemon import Workspace, _photo, full_output_disk, run_in_process_while, wait_for


class Inbox:
    """A local HTTP server that keeps what is POSTed to it (an ntfy server, for the test)."""

    def __init__(self):
        self.messages: list[tuple[str, str, str]] = []  # (path, Title header, body)
        self.headers: list[dict] = []  # each request's headers
        inbox = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8")
                inbox.messages.append((self.path, self.headers["Title"], body))
                inbox.headers.append(dict(self.headers))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/my-shoots"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def ws(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    yield workspace
    workspace.stop_all()


@pytest.fixture()
def inbox():
    server = Inbox()
    yield server
    server.close()


def test_the_config_table_is_checked():
    config = parse_config({"notify": {"url": "https://ntfy.sh/shoots", "command": ["notify-send", "{text}"]}})
    assert config.notify == NotifySettings(url="https://ntfy.sh/shoots", command=("notify-send", "{text}"))
    assert parse_config({}).notify is None
    with pytest.raises(ConfigError, match=r"notify.url must be an http:// or https:// address, got 'ntfy.sh/x'"):
        parse_config({"notify": {"url": "ntfy.sh/x"}})
    with pytest.raises(ConfigError, match=r"notify.command must be a list"):
        parse_config({"notify": {"command": "notify-send hello"}})
    token = parse_config({"notify": {"url": "https://ntfy.example/s", "headers": {"Authorization": "Bearer tk_1"}}})
    assert token.notify.headers == (("Authorization", "Bearer tk_1"),)
    with pytest.raises(ConfigError, match=r"notify.headers must map header names to one-line texts"):
        parse_config({"notify": {"headers": {"Bad Name": "x"}}})


def test_a_message_is_posted_with_its_title_and_a_command_gets_both(inbox, tmp_path):
    said = tmp_path / "said.txt"
    command = (sys.executable, "-c", "import sys; open(sys.argv[1], 'w', encoding='utf-8')"
               ".write(sys.argv[2] + '|' + sys.argv[3])", str(said), "{title}", "{text}")
    send(NotifySettings(url=inbox.url, command=command, headers=(("Authorization", "Bearer tk_1"),)),
         "photobatch: shoot done", "412 done, 3 failed — in 1 h").join(30)
    assert inbox.headers[0]["Authorization"] == "Bearer tk_1"  # a self-hosted ntfy's token
    assert inbox.messages == [("/my-shoots", "photobatch: shoot done", "412 done, 3 failed — in 1 h")]
    assert said.read_text(encoding="utf-8") == "photobatch: shoot done|412 done, 3 failed — in 1 h"


def test_an_unreachable_server_or_a_failing_command_is_logged_and_nothing_more(caplog, inbox):
    url = inbox.url
    inbox.close()  # nothing listens there now
    caplog.set_level(logging.WARNING, logger="photobatch.notify")
    started = time.monotonic()
    thread = send(NotifySettings(url=url, command=(sys.executable, "-c", "raise SystemExit('no display')")),
                  "t", "x")
    assert time.monotonic() - started < 1  # the caller is not held up
    thread.join(30)
    assert f"could not send the notification to {url}" in caplog.text
    assert "exited 1: no display" in caplog.text


def test_the_daemon_says_when_a_shoot_is_done_and_when_a_full_disk_stops_it(ws, inbox, monkeypatch):
    from photobatch.daemon import service

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    monkeypatch.setattr(service, "CAUGHT_UP_SECONDS", 0.5)
    ws.config.write_text(ws.config.read_text() + f'[notify]\nurl = "{inbox.url}"\n')
    full = full_output_disk(monkeypatch)
    for i in range(2):
        _photo(ws.inbox / f"IMG_{i}.JPG", seed=i)
    daemon = service.WatchService(ws.config, ws.catalog)

    def shoot():
        assert wait_for(lambda: inbox.messages, 30)
        full.set()  # the next shoot finds the output disk full
        _photo(ws.inbox / "IMG_9.JPG", seed=9)
        assert wait_for(lambda: len(inbox.messages) >= 2, 30)
        full.clear()
        assert wait_for(lambda: ws.done_count() == 3, 30)

    run_in_process_while(daemon, shoot)
    (_, done_title, done_text), (_, attention_title, attention_text) = inbox.messages[:2]
    assert done_title.endswith(": shoot done") and done_text.startswith("2 done in ")
    assert attention_title.endswith(": needs you")
    assert attention_text.startswith("an output disk is full: photobatch waits")


def test_tests_reach_this_machine_and_nothing_beyond_it():
    import socket

    from tests.conftest import NetworkBlocked

    with pytest.raises(NetworkBlocked):
        socket.create_connection(("93.184.215.14", 80), timeout=1)  # an address on the internet
    sock = socket.socket()
    try:
        with pytest.raises(NetworkBlocked):
            sock.connect(("10.0.0.1", 80))
    finally:
        sock.close()


def test_watch_check_can_send_a_test_message_and_says_whether_it_went(ws, inbox):
    from click.testing import CliRunner

    from photobatch.daemon.cli import main

    def check(*more):
        return CliRunner().invoke(main, ["--config", str(ws.config), "--catalog", str(ws.catalog),
                                         "watch", "--check", *more])

    none = check("--notify")
    assert none.exit_code == 1 and "the config has no [notify] table" in none.output
    ws.config.write_text(ws.config.read_text() + f'[notify]\nurl = "{inbox.url}"\n')
    went = check("--notify")
    assert went.exit_code == 0, went.output
    assert "a test message went (look for it)" in went.output
    assert len(inbox.messages) == 1 and inbox.messages[0][1].endswith(": test")
    url = inbox.url
    inbox.close()
    lost = check("--notify")
    assert lost.exit_code == 1 and f"problem: could not send the notification to {url}" in lost.output
    assert len(inbox.messages) == 1 and check().exit_code == 0  # no message without --notify
