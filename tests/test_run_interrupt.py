"""``photobatch run`` as a photographer watches it: a progress bar with an ETA on a terminal,
and a batch stopped part way (Ctrl-C, or an output disk that fills up) in which what was done
stays done, what was cut short says so, and the same command again does the rest."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from photobatch.catalog.store import INTERRUPTED
from photobatch.daemon.samples import write_sample_photo

SCRIPT = str(Path(sys.executable).with_name("photobatch"))

SLOW_RUNNER = '''
import time
from types import SimpleNamespace

from photobatch.plugins import hookimpl


class Slow:
    name = "slow"

    def run(self, image, recipe, seed, model, mask=None):
        time.sleep(0.4)
        return SimpleNamespace(image=image.copy(), model_id=model, model_hash=None, device="cpu",
                               working_size=image.size)


@hookimpl
def photobatch_runners():
    return [Slow()]
'''


def _slow_shoot(tmp_path: Path, photos: int) -> tuple[list[str], Path, Path]:
    """A folder of ``photos`` photos, the slow runner as a drop-in and its recipe "slow": the
    start of a command that can run them, the folder, and the catalog it writes."""
    inbox, plugins, recipes = tmp_path / "inbox", tmp_path / "plugins", tmp_path / "recipes"
    for folder in (inbox, plugins, recipes):
        folder.mkdir()
    for i in range(photos):
        write_sample_photo(inbox / f"IMG_{i:04d}.JPG", size=(96, 64), seed=i)
    (plugins / "slow_runner.py").write_text(SLOW_RUNNER)
    (recipes / "slow.toml").write_text('name = "slow"\nrunner = "slow"\nstrength = 0.3\n')
    db = tmp_path / "catalog.db"
    return [SCRIPT, "--catalog", str(db), "--plugins-dir", str(plugins), "--recipes",
            str(recipes)], inbox, db


def _run_command(tmp_path: Path, photos: int) -> tuple[list[str], Path]:
    prefix, inbox, db = _slow_shoot(tmp_path, photos)
    # --out relative to where the photographer stands, as typed.
    return prefix + ["run", "--recipe", "slow", "--model", "test/slow-model", "--out", "enhanced",
                     str(inbox)], db


def _interrupt_after(command: list[str], cwd: Path, marker: str, times: int) -> str:
    """Start ``command``, press Ctrl-C once its output has ``marker`` ``times`` times; return
    what it printed (it must exit 130)."""
    log = cwd / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while log.read_text().count(marker) < times:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130, log.read_text()
    return log.read_text()


def test_on_a_terminal_run_draws_a_progress_bar_with_an_eta(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    command, _ = _run_command(tmp_path, 3)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(command, cwd=tmp_path, stdin=follower, stdout=follower,
                            stderr=follower, close_fds=True)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the command is through
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(60) == 0
    os.close(leader)
    text = seen.decode(errors="replace")
    assert re.search(r"running .*[0-3]/3 photos \[\d\d:\d\d elapsed, ETA", text), text
    assert "3 done, 0 skipped, 0 failed" in text


def _runs(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT status, error, output_path FROM runs ORDER BY id").fetchall()
    finally:
        con.close()


def test_ctrl_c_keeps_what_was_done_and_the_same_command_does_the_rest(tmp_path):
    command, db = _run_command(tmp_path, 8)
    text = _interrupt_after(command, tmp_path, "done     IMG_", 2)
    assert "Traceback" not in text and "Aborted" not in text
    printed = text.count("done     IMG_")
    assert f"interrupted: {printed} done, 0 skipped, 0 failed, {8 - printed} not finished" in text
    runs = _runs(db)
    # Every output written was reported; the photo in the model's hands says it was cut short;
    # nothing is left "running" for ever, and no half-written file is left behind.
    assert [r[0] for r in runs].count("done") == printed and "running" not in [r[0] for r in runs]
    assert all(error == INTERRUPTED for status, error, _ in runs if status == "failed")
    enhanced = tmp_path / "enhanced"
    assert sorted(p.name for p in enhanced.iterdir()) == sorted(
        Path(path).name for status, _, path in runs if status == "done")
    assert all(Path(path).is_absolute() for status, _, path in runs if status == "done")

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"{8 - printed} done, {printed} skipped, 0 failed" in again.stdout
    assert len(list(enhanced.iterdir())) == 8
    # Checked from anywhere else, the catalog still finds every output.
    verified = subprocess.run([SCRIPT, "--catalog", str(db), "catalog", "verify"], cwd="/",
                              capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stdout


def test_ctrl_c_in_a_model_that_fills_the_cpu_marks_its_photo_interrupted(tmp_path, identity_session,
                                                                          monkeypatch):
    from photobatch.daemon.run_stages import Work, process_all
    from photobatch.recipes.schema import recipe_from_dict

    app = identity_session.app
    monkeypatch.setattr(app, "model_fills_the_cpu", lambda name: True)  # one photo at a time
    runner = app.runners.get("identity")
    calls = []
    original = runner.run

    def run(image, recipe, seed, model):
        calls.append(seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(image, recipe, seed, model)

    monkeypatch.setattr(runner, "run", run)
    recipe = recipe_from_dict({"name": "same", "runner": "identity"})
    photos = [write_sample_photo(tmp_path / f"P{i}.JPG", size=(64, 48), seed=i) for i in range(3)]
    seen = []
    with pytest.raises(KeyboardInterrupt):
        process_all(identity_session, [Work(p, recipe) for p in photos], seen.append)
    assert [o.status for o in seen] == ["done"]
    runs = app.catalog.db.execute("SELECT status, error FROM runs ORDER BY id").fetchall()
    assert [tuple(r) for r in runs] == [("done", None), ("failed", INTERRUPTED)]


def test_a_full_output_disk_stops_the_batch_instead_of_failing_every_photo(tmp_path, identity_session,
                                                                           monkeypatch):
    import errno

    from photobatch.daemon.run_stages import DiskFull, Work, process_all
    from photobatch.recipes.schema import recipe_from_dict

    writes = []
    original = identity_session.writer.write

    def write(source, *args, **kwargs):
        writes.append(source.name)
        if len(writes) >= 2:  # the second output finds the disk full, and so would the rest
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / ".x.partial"))
        return original(source, *args, **kwargs)

    monkeypatch.setattr(identity_session.writer, "write", write)
    runner = identity_session.app.runners.get("identity")
    model_time = runner.run

    def run(*args):  # the model is the slow part, as on a GPU: writes keep up with it
        time.sleep(0.1)
        return model_time(*args)

    monkeypatch.setattr(runner, "run", run)
    recipe = recipe_from_dict({"name": "same", "runner": "identity"})
    photos = [write_sample_photo(tmp_path / f"P{i:02d}.JPG", size=(64, 48), seed=i) for i in range(16)]
    seen = []
    with pytest.raises(DiskFull, match="the disk is full"):
        process_all(identity_session, [Work(p, recipe) for p in photos], seen.append)
    assert [o.status for o in seen[:2]] == ["done", "failed"]
    assert seen[1].error == ("error while writing the output of P01.JPG: the disk is full "
                             "(no space left on the device)")
    # Not every photo tried: the batch stopped, and those already decoded say why they were not done.
    assert len(writes) < 16
    runs = [tuple(r) for r in identity_session.app.catalog.db.execute(
        "SELECT status, error FROM runs ORDER BY id")]
    assert len(runs) < 16 and [status for status, _ in runs].count("done") == 1
    # Those being written met the full disk too; those decoded ahead were stopped.
    assert all(error == "stopped before it finished: the disk is full"
               or error.endswith("the disk is full (no space left on the device)")
               for status, error in runs if status != "done")
    assert "stopped before it finished: the disk is full" in {error for _, error in runs}


def test_ctrl_c_in_compare_leaves_no_variation_running(tmp_path):
    prefix, inbox, db = _slow_shoot(tmp_path, 1)
    command = prefix + ["compare", "--recipe", "slow", "--model", "test/slow-model", "--vary",
                        "strength=0.2,0.3,0.4,0.5,0.6,0.7", str(inbox / "IMG_0000.JPG")]
    text = _interrupt_after(command, tmp_path, "done     IMG_0000.JPG", 1)
    assert "interrupted: the sheets listed above are written" in text and "Traceback" not in text
    statuses = [status for status, _, _ in _runs(db)]
    assert "running" not in statuses and "done" in statuses
    assert [error for _, error, _ in _runs(db) if error] in ([], [INTERRUPTED])
