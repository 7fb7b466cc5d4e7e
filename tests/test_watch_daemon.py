"""``photobatch watch`` as a real process on real folders: readiness, crashes, signals, reloads.

The runner here is a drop-in plugin with a fixed cost (it sleeps, then returns a smaller copy of
its input), loaded through the plugin folder named in the config; everything else is the real
daemon: watchdog, the SQLite catalog, the queue, the pipeline, metadata.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from photobatch.daemon.samples import write_sample_photo

SCRIPT = str(Path(sys.executable).with_name("photobatch"))

RUNNER_PLUGIN = '''
"""Test runner with a fixed cost per image."""
import os
import time
from types import SimpleNamespace

from photobatch.plugins import hookimpl


class FixedCost:
    name = "fixed-cost"

    def run(self, image, recipe, seed, model, mask=None):
        time.sleep(float(os.environ.get("PB_TEST_RUNNER_SECONDS", "0.05")))
        once = os.environ.get("PB_TEST_FAIL_ONCE", "")
        if once and os.path.exists(once):  # a failure of the moment (a GPU reset), then fine
            os.remove(once)
            raise RuntimeError("the device fell over")
        small = image.resize((max(8, image.width // 4), max(8, image.height // 4)))
        return SimpleNamespace(image=small, model_id=model, model_hash=None, device="cpu",
                               working_size=small.size)


@hookimpl
def photobatch_runners():
    return [FixedCost()]
'''

RECIPE = '''
name = "{name}"
runner = "fixed-cost"
strength = 0.3
steps = 10
prompt = "test"
[output]
name = "{{stem}}_{{recipe}}"
'''


class Workspace:
    """A watch folder, its outputs, recipes, the drop-in runner, a config and a catalog."""

    def __init__(self, root: Path, polling: str = "auto", recipes=("quick",), stop_timeout=10.0):
        self.root = root
        self.inbox, self.out = root / "inbox", root / "out"
        self.recipes_dir, self.plugins_dir = root / "recipes", root / "plugins"
        for d in (self.inbox, self.out, self.recipes_dir, self.plugins_dir):
            d.mkdir(parents=True, exist_ok=True)
        (self.plugins_dir / "fixed_cost_runner.py").write_text(RUNNER_PLUGIN)
        self.add_recipe("quick")
        self.config, self.catalog = root / "config.toml", root / "catalog.db"
        self.polling, self.stop_timeout = polling, stop_timeout
        self.write_config(recipes)
        self.procs: list[subprocess.Popen] = []

    def add_recipe(self, name: str) -> None:
        (self.recipes_dir / f"{name}.toml").write_text(RECIPE.format(name=name))

    def write_config(self, recipes) -> None:
        names = ", ".join(f'"{r}"' for r in recipes)
        self.config.write_text(
            f'recipe_dirs = ["{self.recipes_dir}"]\nstop_timeout_seconds = {self.stop_timeout}\n'
            f'[defaults]\nmodel = "test/fixed-cost-model"\n'
            f'[plugins]\ndir = "{self.plugins_dir}"\n'
            f'[retries]\ndelay_seconds = 0.5\n'
            f'[[watch]]\npath = "{self.inbox}"\nrecipes = [{names}]\noutput = "{self.out}"\n'
            f'quiet_seconds = 1.0\npolling = "{self.polling}"\n')

    def env(self, runner_seconds: float) -> dict:
        return {**os.environ, "PB_TEST_RUNNER_SECONDS": str(runner_seconds),
                "PHOTOBATCH_LOG": str(self.root / "photobatch.log")}

    def start(self, runner_seconds: float = 0.05) -> subprocess.Popen:
        log = open(self.root / f"daemon{len(self.procs)}.log", "w")
        proc = subprocess.Popen([SCRIPT, "--config", str(self.config), "--catalog", str(self.catalog),
                                 "watch"], stdout=log, stderr=subprocess.STDOUT,
                                env=self.env(runner_seconds))
        proc.log_path = Path(log.name)
        self.procs.append(proc)
        wait_for(lambda: "watching" in proc.log_path.read_text() or proc.poll() is not None, 30)
        assert proc.poll() is None, proc.log_path.read_text()
        return proc

    def once(self, runner_seconds: float = 0.02) -> subprocess.CompletedProcess:
        return subprocess.run([SCRIPT, "--config", str(self.config), "--catalog", str(self.catalog),
                               "watch", "--once"], capture_output=True, text=True, timeout=300,
                              env=self.env(runner_seconds))

    def query(self, sql: str, args=()) -> list:
        con = sqlite3.connect(self.catalog, timeout=30)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def done_count(self) -> int:
        if not self.catalog.exists():
            return 0
        try:
            return self.query("SELECT count(*) FROM runs WHERE status = 'done'")[0][0]
        except sqlite3.OperationalError:
            return 0

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def wait_for(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def run_in_process_while(daemon, user) -> None:
    """Run ``daemon`` (a WatchService) in this thread, where its signal handlers must be, while
    ``user`` acts in another; stop it, as SIGTERM would, once ``user`` is through."""
    import threading

    def act():
        try:
            user()
        finally:
            daemon.stop_signals = 1  # what the signal handler records

    helper = threading.Thread(target=act)
    helper.start()
    try:
        assert daemon.run() == 0
    finally:
        helper.join(60)


def full_output_disk(monkeypatch):
    """An Event that, while set, makes every output write fail as a full disk does."""
    import errno
    import threading

    from photobatch.daemon.output_writer import OutputWriter

    full = threading.Event()
    written = OutputWriter.write

    def write(self, source, *args, **kwargs):
        if full.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        return written(self, source, *args, **kwargs)

    monkeypatch.setattr(OutputWriter, "write", write)
    return full


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def ws(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    yield workspace
    workspace.stop_all()


def _photo(path: Path, seed: int = 0, size=(160, 120)) -> Path:
    return write_sample_photo(path, size=size, seed=seed, orientation=1)


def test_a_slowly_copied_file_is_processed_once_after_it_is_complete(ws, tmp_path):
    source = _photo(tmp_path / "source.jpg", size=(640, 480))
    data = source.read_bytes()
    ws.start()
    target = ws.inbox / "DSCF1000.JPG"
    with open(target, "wb") as fh:  # one open file, written in chunks like a slow card reader
        step = len(data) // 6 + 1
        for i in range(0, len(data), step):
            fh.write(data[i:i + step])
            fh.flush()
            time.sleep(0.3)
    assert wait_for(lambda: ws.done_count() == 1, 30), ws.procs[0].log_path.read_text()
    time.sleep(1.5)  # any late, duplicate pickup would show up here
    files = ws.query("SELECT sha256 FROM files")
    assert files == [(sha(source),)]  # the complete content, registered once
    assert ws.query("SELECT count(*), min(attempts) FROM runs") == [(1, 1)]
    assert sorted(p.name for p in ws.out.iterdir()) == ["DSCF1000_quick.jpg"]


def test_files_dropped_while_the_daemon_was_down_are_processed_at_start(ws):
    for i in range(3):
        _photo(ws.inbox / f"IMG_{i}.JPG", seed=i)
    (ws.inbox / "nested").mkdir()
    _photo(ws.inbox / "nested" / "IMG_9.JPG", seed=9)
    first = ws.once()
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(p.relative_to(ws.out).as_posix() for p in ws.out.rglob("*.jpg")) == [
        "IMG_0_quick.jpg", "IMG_1_quick.jpg", "IMG_2_quick.jpg", "nested/IMG_9_quick.jpg"]
    again = ws.once()
    assert again.returncode == 0
    assert ws.query("SELECT count(*) FROM runs") == [(4,)]  # nothing twice


def test_kill_9_mid_batch_then_restart_leaves_every_file_done_exactly_once(ws):
    originals = {}
    for i in range(50):
        path = _photo(ws.inbox / f"B_{i:02d}.JPG", seed=i, size=(96, 64))
        originals[path.name] = sha(path)
    proc = ws.start(runner_seconds=0.1)
    assert wait_for(lambda: ws.done_count() >= 10, 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert ws.done_count() < 50  # it really died mid-batch
    rerun = ws.once()
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    per_file = ws.query("SELECT f.path, count(*) FROM runs r JOIN files f ON f.id = r.file_id "
                        "WHERE r.status = 'done' GROUP BY f.id")
    assert len(per_file) == 50 and all(n == 1 for _, n in per_file)
    assert ws.query("SELECT count(*) FROM runs WHERE status != 'done'") == [(0,)]
    outputs = sorted(p.name for p in ws.out.iterdir())
    assert outputs == sorted(f"B_{i:02d}_quick.jpg" for i in range(50))  # no temp, no -1 copies
    assert {p.name: sha(p) for p in ws.inbox.iterdir()} == originals


def test_a_second_daemon_on_the_same_catalog_is_refused(ws):
    proc = ws.start()
    second = ws.once()
    assert second.returncode == 1
    assert f"another photobatch watch (pid {proc.pid}) is already using the catalog" in second.stderr
    status = subprocess.run([SCRIPT, "--catalog", str(ws.catalog), "status"], capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0 and f"daemon   up (pid {proc.pid}" in status.stdout


def test_sighup_reloads_config_and_recipes(ws):
    proc = ws.start()
    _photo(ws.inbox / "H_1.JPG")
    assert wait_for(lambda: (ws.out / "H_1_quick.jpg").exists(), 30)
    ws.add_recipe("second")
    ws.write_config(("quick", "second"))
    proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: (ws.out / "H_1_second.jpg").exists(), 30), proc.log_path.read_text()
    assert "reloaded" in proc.log_path.read_text()
    assert proc.poll() is None


def test_polling_mode_processes_files(tmp_path):
    ws = Workspace(tmp_path / "poll", polling="on")
    try:
        proc = ws.start()
        assert "polling events" in proc.log_path.read_text()
        _photo(ws.inbox / "P_1.JPG")
        assert wait_for(lambda: (ws.out / "P_1_quick.jpg").exists(), 30), proc.log_path.read_text()
    finally:
        ws.stop_all()


def test_a_renamed_duplicate_is_not_processed_again(ws):
    ws.start()
    original = _photo(ws.inbox / "D_1.JPG")
    assert wait_for(lambda: ws.done_count() == 1, 30)
    shutil.copy(original, ws.inbox / "D_1 copy.JPG")
    time.sleep(3)
    assert ws.query("SELECT count(*) FROM runs") == [(1,)]
    assert ws.query("SELECT count(*) FROM files") == [(1,)]
    assert sorted(p.name for p in ws.out.iterdir()) == ["D_1_quick.jpg"]


def test_sigterm_stops_within_the_bound_and_leaves_nothing_running(tmp_path):
    ws = Workspace(tmp_path / "term", stop_timeout=2.0)
    try:
        proc = ws.start(runner_seconds=1.0)
        for i in range(6):
            _photo(ws.inbox / f"T_{i}.JPG", seed=i)
        assert wait_for(lambda: ws.query("SELECT count(*) FROM runs WHERE status = 'running'")[0][0] > 0
                        if ws.catalog.exists() else False, 30)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - started < 2.0 + 3.0
        statuses = dict(ws.query("SELECT status, count(*) FROM runs GROUP BY status"))
        assert "running" not in statuses and statuses.get("queued", 0) > 0
        assert not [p for p in ws.out.iterdir() if p.name.startswith(".")]
        rest = ws.once(runner_seconds=0.01)  # the queued work is picked up at the next start
        assert rest.returncode == 0
        assert ws.done_count() == 6
    finally:
        ws.stop_all()


def test_once_in_process_leaves_no_threads_and_logs_json(ws, capfd):
    import threading

    from photobatch.daemon.logs import setup_logging
    from photobatch.daemon.service import WatchService

    for i in range(3):
        _photo(ws.inbox / f"J_{i}.JPG", seed=i)
    before = {t.name for t in threading.enumerate()}
    setup_logging(1, json_lines=True, daemon=True)
    try:
        status = WatchService(ws.config, ws.catalog, once=True).run()
    finally:
        setup_logging(0)
    assert status == 0 and ws.done_count() == 3
    assert wait_for(lambda: {t.name for t in threading.enumerate()} <= before, 10), \
        sorted({t.name for t in threading.enumerate()} - before)
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    done = [line for line in lines if line["message"].startswith("done ")]
    assert len(done) == 3 and all("[quick]" in line["message"] for line in done)
    assert {"time", "level", "logger", "message"} <= set(done[0])


def test_status_reports_counts_and_last_errors(ws):
    _photo(ws.inbox / "OK.JPG")
    (ws.inbox / "BROKEN.JPG").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    result = ws.once()
    assert result.returncode == 1  # a failure makes --once exit 1
    assert "failed" in result.stderr and "BROKEN.JPG [quick]" in result.stderr
    status = subprocess.run([SCRIPT, "--catalog", str(ws.catalog), "status", "--json"],
                            capture_output=True, text=True, timeout=60)
    report = json.loads(status.stdout)
    assert report["daemon"] == "down" and report["queue"] == {"done": 1, "failed": 1}
    assert [Path(e["file"]).name for e in report["last_errors"]] == ["BROKEN.JPG"]
    assert ws.once().returncode == 1  # the next start tries it once more, and it fails again
    report = json.loads(subprocess.run([SCRIPT, "--catalog", str(ws.catalog), "status", "--json"],
                                       capture_output=True, text=True, timeout=60).stdout)
    assert report["queue"] == {"done": 1, "failed": 2}
    assert [Path(e["file"]).name for e in report["last_errors"]] == ["BROKEN.JPG"]  # once
    text = subprocess.run([SCRIPT, "--catalog", str(ws.catalog), "status"], capture_output=True,
                          text=True, timeout=60).stdout
    assert "daemon   down" in text and "1 done" in text and "BROKEN.JPG [quick]: error while" in text


def test_a_broken_file_fails_once_per_daemon_not_at_every_rescan(ws):
    ws.config.write_text("rescan_minutes = 0.02\n" + ws.config.read_text())  # a scan every 1.2 s
    (ws.inbox / "BROKEN.JPG").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")

    def broken_runs():
        return ws.query("SELECT r.status, r.attempts FROM runs r JOIN files f ON f.id = r.file_id "
                        "WHERE f.path LIKE '%BROKEN.JPG' ORDER BY r.id")

    proc = ws.start()
    # Not a JPEG: those bytes would fail the same way again, so one attempt, failed for good.
    assert wait_for(lambda: broken_runs() == [("failed", 1)], 60), broken_runs()
    time.sleep(5)  # four catch-up scans
    assert broken_runs() == [("failed", 1)], proc.log_path.read_text()
    assert "retrying" not in proc.log_path.read_text()
    # Fixed in place (new content: a new file to the catalog), it is taken while the daemon runs.
    _photo(ws.root / "fixed.jpg").replace(ws.inbox / "BROKEN.JPG")
    assert wait_for(lambda: broken_runs()[-1:] == [("done", 1)], 60), broken_runs()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    # Broken again while the daemon is down: the next start tries it once more.
    (ws.inbox / "BROKEN.JPG").write_bytes(b"\xff\xd8\xff\xe0 still not a JPEG")
    assert ws.once().returncode == 1
    assert ws.once().returncode == 1
    assert broken_runs() == [("failed", 1), ("done", 1), ("failed", 1), ("failed", 1)]


def test_a_failure_of_the_moment_is_tried_again_and_the_tally_counts_photos(ws, monkeypatch, caplog):
    import logging

    from photobatch.daemon import service

    marker = ws.root / "fail-once"
    marker.touch()
    monkeypatch.setenv("PB_TEST_FAIL_ONCE", str(marker))
    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    monkeypatch.setattr(service, "CAUGHT_UP_SECONDS", 0.5)
    _photo(ws.inbox / "FLAKY.JPG")
    daemon = service.WatchService(ws.config, ws.catalog)

    class StopWhenCaughtUp(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("caught up"):
                daemon.stop_signals = 1  # what SIGTERM's handler records

    caplog.set_level(logging.INFO, logger=service.log.name)
    service.log.addHandler(handler := StopWhenCaughtUp())
    try:
        assert daemon.run() == 0
    finally:
        service.log.removeHandler(handler)
    # The run failed, waited its delay, and was done on its second attempt.
    assert ws.query("SELECT status, attempts FROM runs") == [("done", 2)] and not marker.exists()
    assert "the device fell over (attempt 1 of 3; retrying)" in caplog.text
    # The shoot's tally counts the photo once, as done: the attempt that was retried is not a
    # failure of the shoot.
    caught_up = [r.getMessage() for r in caplog.records if r.getMessage().startswith("caught up")]
    assert len(caught_up) == 1 and re.fullmatch(r"caught up: 1 done in \d+ s \(.*/min\)", caught_up[0])


def test_a_second_signal_exits_at_once_and_the_work_stays_queued(tmp_path):
    ws = Workspace(tmp_path / "twice", stop_timeout=60.0)
    try:
        proc = ws.start(runner_seconds=3.0)
        for i in range(3):
            _photo(ws.inbox / f"S_{i}.JPG", seed=i)
        assert wait_for(lambda: ws.catalog.exists() and
                        ws.query("SELECT count(*) FROM runs WHERE status = 'running'")[0][0] > 0, 30)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 128 + signal.SIGINT
        assert time.monotonic() - started < 3.0  # did not wait for the 3 s runner
        rest = ws.once(runner_seconds=0.01)  # claimed runs of the dead process are requeued
        assert rest.returncode == 0, rest.stderr
        assert ws.done_count() == 3
        assert "requeued" in rest.stderr
    finally:
        ws.stop_all()


def test_a_mask_that_arrives_after_its_photo_has_the_photo_done(ws):
    (ws.recipes_dir / "masked.toml").write_text(
        RECIPE.format(name="masked").replace("[output]", 'mask = "sidecar"\n[output]'))
    ws.write_config(("masked",))
    proc = ws.start()
    photo = _photo(ws.inbox / "IMG_0001.JPG")
    assert wait_for(lambda: ws.query("SELECT status FROM runs") == [("skipped",)], 30), \
        proc.log_path.read_text()
    assert ws.query("SELECT error FROM runs") == [("no mask IMG_0001.mask.png beside it",)]
    from PIL import Image

    mask = Image.new("L", (160, 120), 0)
    mask.paste(255, (10, 10, 60, 60))
    mask.save(ws.inbox / "IMG_0001.mask.png")
    assert wait_for(lambda: ws.done_count() == 1, 30), proc.log_path.read_text()
    assert (ws.out / "IMG_0001_masked.jpg").exists()
    # The mask itself never became a photo of the catalog.
    assert ws.query("SELECT count(*) FROM files") == [(1,)]
    assert photo.exists()


def test_a_folder_with_min_rating_takes_the_picks_and_a_photo_rated_up_later(ws):
    ws.write_config(("quick",))
    ws.config.write_text(ws.config.read_text() + "min_rating = 3\n")
    proc = ws.start()
    write_sample_photo(ws.inbox / "IMG_0001.JPG", size=(160, 120), seed=1, rating=4)  # in camera
    write_sample_photo(ws.inbox / "IMG_0002.JPG", size=(160, 120), seed=2, rating=1)
    write_sample_photo(ws.inbox / "IMG_0003.JPG", size=(160, 120), seed=3, rating=None)
    assert wait_for(lambda: ws.done_count() == 1
                    and ws.query("SELECT count(*) FROM files") == [(3,)], 30), \
        proc.log_path.read_text()
    assert (ws.out / "IMG_0001_quick.jpg").exists() and not (ws.out / "IMG_0002_quick.jpg").exists()
    log = proc.log_path.read_text()
    assert "IMG_0002.JPG: rated 1" in log and "IMG_0003.JPG: not rated" in log

    # Rated up later in Lightroom (its sidecar): taken then.
    (ws.inbox / "IMG_0003.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        ' xmp:Rating="5"/></rdf:RDF></x:xmpmeta>')
    assert wait_for(lambda: ws.done_count() == 2, 30), proc.log_path.read_text()
    assert (ws.out / "IMG_0003_quick.jpg").exists()
    time.sleep(1.5)
    assert ws.done_count() == 2 and ws.query("SELECT count(*) FROM files") == [(3,)]

    # A restart's catch-up scan asks again: still not the 1-star one; rated up meanwhile, yes.
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    assert ws.once().returncode == 0 and ws.done_count() == 2
    (ws.inbox / "IMG_0002.JPG.xmp").write_text(  # darktable's name for it
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        ' xmp:Rating="3"/></rdf:RDF></x:xmpmeta>')
    assert ws.once().returncode == 0 and ws.done_count() == 3
    assert (ws.out / "IMG_0002_quick.jpg").exists()


def test_a_photo_exported_again_over_itself_replaces_its_output(ws):
    photo = ws.inbox / "IMG_0001.JPG"
    proc = ws.start()
    _photo(ws.root / "v1.jpg", seed=1).replace(photo)
    assert wait_for(lambda: ws.done_count() == 1, 60), proc.log_path.read_text()
    output = ws.out / "IMG_0001_quick.jpg"
    first = sha(output)
    # Edited and exported again over itself (same capture time and camera): the same photo,
    # whose output is redone in place, as a Lightroom publish service re-publishes.
    _photo(ws.root / "v2.jpg", seed=2).replace(photo)
    assert wait_for(lambda: ws.done_count() == 2, 60), proc.log_path.read_text()
    assert sorted(p.name for p in ws.out.iterdir()) == ["IMG_0001_quick.jpg"]
    assert sha(output) != first
    # A new card's IMG_0001.JPG (taken another day) is another photo: its output stands beside.
    write_sample_photo(ws.root / "v3.jpg", size=(160, 120), seed=3,
                       date_taken="2026:09:02 08:00:00").replace(photo)
    assert wait_for(lambda: ws.done_count() == 3, 60), proc.log_path.read_text()
    assert sorted(p.name for p in ws.out.iterdir()) == ["IMG_0001_quick-1.jpg", "IMG_0001_quick.jpg"]

    def catalog(*args):
        return subprocess.run([SCRIPT, "--catalog", str(ws.catalog), "catalog", *args],
                              capture_output=True, text=True, timeout=60)

    rows = json.loads(catalog("ls", "--json").stdout)
    assert sorted((r["date_taken"][:10], Path(r["output_path"]).name) for r in rows) == [
        ("2026-06-21", "IMG_0001_quick.jpg"), ("2026-09-02", "IMG_0001_quick-1.jpg")]
    verified = catalog("verify")
    assert verified.returncode == 1 and verified.stdout.splitlines()[0] == (
        f"original missing  {photo}: another photo has its name now (catalogued as a photo of its own)")
    shown = catalog("show", "--json", rows[0]["sha256"] if rows[0]["date_taken"] < "2026-07"
                    else rows[1]["sha256"])
    assert len(json.loads(shown.stdout)["earlier_versions"]) == 1


def test_a_folder_on_a_card_not_yet_mounted_is_watched_when_it_comes_and_again_after_it_went(
        ws, monkeypatch, caplog):
    import logging

    from photobatch.daemon import service

    card = ws.root / "card"
    dcim = card / "DCIM"
    ws.config.write_text(ws.config.read_text().replace(f'path = "{ws.inbox}"', f'path = "{dcim}"'))
    monkeypatch.setattr(service, "FOLDER_CHECK_SECONDS", 0.2)
    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    caplog.set_level(logging.INFO, logger=service.log.name)
    daemon = service.WatchService(ws.config, ws.catalog)
    steps = []

    def insert_and_pull_the_card():
        assert wait_for(lambda: "is not there" in caplog.text, 30)
        time.sleep(0.5)
        # Nothing made where the card's folder will be mounted.
        steps.append(("made while away", card.exists()))
        dcim.mkdir(parents=True)
        _photo(dcim / "A.JPG", seed=1)
        steps.append(("first card", wait_for(lambda: ws.done_count() == 1, 30)))
        shutil.rmtree(card)
        steps.append(("let go", wait_for(lambda: "is gone" in caplog.text, 30)))
        dcim.mkdir(parents=True)
        _photo(dcim / "B.JPG", seed=2)
        steps.append(("second card", wait_for(lambda: ws.done_count() == 2, 30)))

    run_in_process_while(daemon, insert_and_pull_the_card)
    assert steps == [("made while away", False), ("first card", True), ("let go", True),
                     ("second card", True)], caplog.text
    assert sorted(p.name for p in ws.out.iterdir()) == ["A_quick.jpg", "B_quick.jpg"]


def test_a_full_output_disk_makes_the_daemon_wait_for_space_and_lose_nothing(ws, monkeypatch, caplog):
    import logging

    from photobatch.daemon import service
    from photobatch.daemon.status import collect_status, format_status

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    caplog.set_level(logging.INFO, logger=service.log.name)
    full = full_output_disk(monkeypatch)
    full.set()
    for i in range(3):
        _photo(ws.inbox / f"IMG_{i}.JPG", seed=i)
    daemon = service.WatchService(ws.config, ws.catalog)  # [retries] delay_seconds = 0.5
    seen = {}

    def free_space_later():
        assert wait_for(lambda: "for space, then goes on" in caplog.text, 30)
        time.sleep(0.2)
        first = caplog.text.count("the disk is full")  # the photos already in flight
        time.sleep(3)  # six delays: one photo tried after each, the others waiting
        seen["tries while full"] = (first, caplog.text.count("the disk is full") - first)
        seen["status"] = format_status(collect_status(ws.catalog))
        full.clear()
        seen["done"] = wait_for(lambda: ws.done_count() == 3, 30)

    run_in_process_while(daemon, free_space_later)
    assert seen["done"], caplog.text
    # One photo tried once per delay while the disk was full, not every photo failing at each
    # (18 or so); every photo done in the end, none counted as a failed attempt.
    first, then = seen["tries while full"]
    assert 1 <= first <= 3 and 3 <= then <= 8, caplog.text
    assert "waiting  an output disk is full" in seen["status"], seen["status"]
    assert ws.query("SELECT status, attempts FROM runs ORDER BY id") == [("done", 1)] * 3


def test_watch_check_says_what_the_daemon_would_start_with_and_starts_nothing(ws, monkeypatch):
    from click.testing import CliRunner

    from photobatch.daemon import watch_check
    from photobatch.daemon.cli import main

    def check():
        return CliRunner().invoke(main, ["--config", str(ws.config), "--catalog", str(ws.catalog),
                                         "watch", "--check"])

    card = ws.root / "card" / "DCIM"
    ws.config.write_text(ws.config.read_text() + f'[[watch]]\npath = "{card}"\nrecipes = ["quick"]\n'
                                                 f'output = "{ws.out}"\n')
    _photo(ws.inbox / "IMG_0001.JPG")
    result = check()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"config   {ws.config}" and lines[1] == f"catalog  {ws.catalog} (0 file(s))"
    assert f"folder   {ws.inbox}" in lines
    assert f"folder   {card} (not there: watched once it appears; a card or share not mounted?)" in lines
    assert re.search(rf"^  output {re.escape(str(ws.out))}, \d+ [GM]B free$", result.output, re.M)
    assert "  recipe quick on test/fixed-cost-model" in lines
    assert lines[-1] == "ready: `photobatch watch` would start with this"
    assert not card.parent.exists() and ws.done_count() == 0  # nothing made, nothing run
    assert not any(line.startswith("rights") for line in lines)
    assert (f"backups  every 7 day(s), the last 4 kept, in {ws.catalog.parent / 'backups'}; "
            "none yet") in lines
    text = ws.config.read_text()
    ws.config.write_text('[copyright]\ncreator = "Ana Lima"\n' + text)
    misplaced = check()  # TOML puts the top-level keys that follow into [copyright]
    assert misplaced.exit_code == 1
    assert ("unknown key copyright.recipe_dirs, copyright.stop_timeout_seconds; they belong at "
            "the top of the file, before any [table]") in misplaced.output
    ws.config.write_text(text + '[copyright]\ncreator = "Ana Lima"\n[notify]\nurl = "https://ntfy.sh/x"\n')
    said = check().output.splitlines()
    assert "rights   Ana Lima (where the camera left it empty)" in said
    assert "notify   https://ntfy.sh/x (when a shoot is done, or an output disk is full)" in said
    # A nearly full output disk is worth knowing before the shoot comes in.
    monkeypatch.setattr(watch_check, "LOW_SPACE_BYTES", 1 << 62)
    full = check()
    assert full.exit_code == 1 and f"problem: {ws.out}: only " in full.output
    # What would stop the daemon stops the check, in the same words.
    ws.config.write_text(ws.config.read_text().replace('recipes = ["quick"]', 'recipes = ["quik"]', 1))
    bad = check()
    assert bad.exit_code == 1 and "names 'quik', which is not a recipe" in bad.output


def test_the_daemon_backs_the_catalog_up_on_schedule_and_a_restore_waits_until_it_stops(ws):
    from photobatch.catalog.backup import list_backups

    _photo(ws.inbox / "IMG_0001.JPG")
    proc = ws.start()
    assert wait_for(lambda: ws.done_count() == 1, 30), proc.log_path.read_text()
    assert wait_for(lambda: list_backups(ws.catalog), 10), proc.log_path.read_text()
    [weekly] = list_backups(ws.catalog)
    assert weekly.kind == "auto" and f"backed up the catalog to {weekly.path}" in proc.log_path.read_text()
    _photo(ws.inbox / "IMG_0002.JPG", seed=2)
    assert wait_for(lambda: ws.done_count() == 2, 30), proc.log_path.read_text()
    refused = subprocess.run([SCRIPT, "--catalog", str(ws.catalog), "catalog", "restore",
                              str(weekly.path)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert f"another photobatch watch (pid {proc.pid}) is already using the catalog" in refused.stderr
    assert ws.done_count() == 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    restored = subprocess.run([SCRIPT, "--catalog", str(ws.catalog), "catalog", "restore",
                               str(weekly.path)], capture_output=True, text=True, timeout=60)
    assert restored.returncode == 0, restored.stderr
    conn = sqlite3.connect(str(weekly.path))
    held = conn.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
    conn.close()
    assert ws.done_count() == held < 2  # as it was when the daemon started and backed it up


def test_the_same_photo_in_two_watch_folders_gets_an_output_in_each(ws, monkeypatch, caplog):
    from photobatch.daemon import service

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    caplog.set_level(logging.INFO)
    studio, client = ws.root / "studio", ws.root / "client-out"
    ws.config.write_text(ws.config.read_text() + (
        f'[[watch]]\npath = "{studio}"\nrecipes = ["quick"]\noutput = "{client}"\n'
        'quiet_seconds = 1.0\n'))
    studio.mkdir()
    photo = write_sample_photo(ws.inbox / "IMG_0001.JPG", size=(64, 48))
    (studio / "IMG_0001.JPG").write_bytes(photo.read_bytes())  # the card copied to both
    daemon = service.WatchService(ws.config, ws.catalog)
    run_in_process_while(daemon, lambda: wait_for(
        lambda: ws.done_count() == 2, 30))
    assert (ws.out / "IMG_0001_quick.jpg").is_file() and (client / "IMG_0001_quick.jpg").is_file()
    assert sorted(ws.query("SELECT output_dir FROM runs")) == [(str(client),), (str(ws.out),)]


def test_a_full_output_disk_holds_up_only_its_own_photos(ws, monkeypatch, caplog):
    import errno

    from photobatch.daemon import full_disks, service
    from photobatch.daemon.output_writer import OutputWriter

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    caplog.set_level(logging.INFO)
    card, nas = ws.root / "card", ws.root / "nas"  # the second folder's outputs: another disk
    # A wait for space long enough that the card's photos could not get through while it runs.
    ws.config.write_text(ws.config.read_text().replace("delay_seconds = 0.5", "delay_seconds = 6") + (
        f'[[watch]]\npath = "{card}"\nrecipes = ["quick"]\noutput = "{nas}"\nquiet_seconds = 1.0\n'))
    card.mkdir()
    # One file system here: the disks are told apart by which output folder a path is under.
    monkeypatch.setattr(full_disks, "disk_of", lambda folder: "nas" if folder and str(folder).startswith(str(nas)) else "local")
    full = {"local"}
    written = OutputWriter.write

    def write(self, source, *args, **kwargs):
        if any(str(a).startswith(str(ws.out)) for a in (*args, *kwargs.values())) and "local" in full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return written(self, source, *args, **kwargs)

    monkeypatch.setattr(OutputWriter, "write", write)
    for i in range(3):
        _photo(ws.inbox / f"IMG_{i}.JPG", seed=i)
        _photo(card / f"CARD_{i}.JPG", seed=10 + i)
    daemon = service.WatchService(ws.config, ws.catalog)
    seen = {}

    def free_space_later():
        assert wait_for(lambda: "the disk is full" in caplog.text, 30), caplog.text
        seen["nas done while local full"] = wait_for(
            lambda: len(list(nas.glob("*.jpg"))) == 3, 5)
        seen["local while full"] = len(list(ws.out.glob("*.jpg")))
        full.clear()
        seen["all done"] = wait_for(lambda: ws.done_count() == 6, 30)

    run_in_process_while(daemon, free_space_later)
    assert seen == {"nas done while local full": True, "local while full": 0, "all done": True}, caplog.text
    assert ws.query("SELECT count(*) FROM runs WHERE status = 'done' AND attempts = 1") == [(6,)]
