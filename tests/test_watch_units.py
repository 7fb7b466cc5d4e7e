"""Daemon building blocks: config validation, readiness, the catalog queue."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import tomllib

import pytest
from fakes import FakeRunner, reloadable_service, watch_once

from photobatch.catalog.queue import RunQueue
from photobatch.catalog.store import Catalog
from photobatch.daemon.config import EXAMPLE_CONFIG, ConfigError, load_config, parse_config
from photobatch.daemon.watcher import ReadinessTracker, is_ignored, looks_complete, scan_folder


def _cfg(text: str):
    return parse_config(tomllib.loads(text), source="test.toml")


def test_the_example_config_parses_with_the_issue_shape():
    config = _cfg(EXAMPLE_CONFIG)
    assert config.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    folder = config.watch[0]
    assert folder.recipes == ("color-correct",) and folder.recursive and folder.polling == "auto"
    assert str(folder.path).endswith("Pictures/Inbox") and "~" not in str(folder.path)
    minimal = _cfg('[defaults]\nmodel = "/models/sdxl"\n[[watch]]\npath = "~/Pictures/Inbox"\n'
                   'recipes = ["color-correct", "time-of-day"]\noutput = "~/Pictures/Enhanced"\n')
    assert minimal.watch[0].recipes == ("color-correct", "time-of-day")


def test_every_option_of_the_example_config_parses_when_uncommented():
    # Each commented-out key of the file `photobatch init` writes must work where it stands:
    # a top-level key shown under a table would land inside that table.
    import re

    lines = [re.sub(r"^# ((\[|[a-z_]+ = ).*)$", r"\1", line) for line in EXAMPLE_CONFIG.splitlines()]
    assert sum(a != b for a, b in zip(lines, EXAMPLE_CONFIG.splitlines())) >= 20
    config = _cfg("\n".join(lines))
    assert config.rescan_minutes == 10 and config.recipe_dirs and config.plugins_dir
    assert config.pairs == "raw" and config.watch[0].pairs == "both"
    assert config.watch[0].min_rating == 3 and config.max_attempts == 3
    assert config.rights.creator == "Jane Doe" and "{year}" in config.rights.notice
    assert config.notify.url.startswith("https://ntfy.sh/") and config.notify.command[0] == "notify-send"
    assert [(e.exporter, dict(e.options)) for e in config.watch[0].exports] == [
        ("files", {"long_edge": 2048, "sharpen": "screen"}), ("gallery", {"watermark": "© Jane Doe"})]


def test_every_key_of_the_example_config_has_its_home_named_for_misplaced_keys():
    # The "it belongs in [table]" hints are a hand-kept list: the example config, which
    # shows every key where it goes, keeps it honest.
    from photobatch.daemon.config import _HOMES

    lines = [re.sub(r"^# ((\[|[a-z_]+ = ).*)$", r"\1", line) for line in EXAMPLE_CONFIG.splitlines()]
    data = tomllib.loads("\n".join(lines))
    homes = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for k in value:  # a key of two tables (url) names both
                homes[k] = f"{homes[k]} or [{key}]" if k in homes else f"in [{key}]"
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            homes.update({k: "in a [[watch]] table" for k in value[0] if k not in homes})
        else:
            homes[key] = "at the top of the file, before any [table]"
    assert {k: _HOMES.get(k) for k in homes} == homes


@pytest.mark.parametrize("text, message", [
    ('[[watch]]\npath="/a"\nrecipes=["x"]\noutput="/b"\nquiet_secs=3', "unknown key watch[0].quiet_secs"),
    ('[[watch]]\npath="/a"\nrecipes=[]\noutput="/b"', "watch[0].recipes must name at least one recipe"),
    ('[[watch]]\npath="/a"\nrecipes=["x"]', "watch[0].output is missing"),
    ('[[watch]]\npath="/a"\nrecipes=["x"]\noutput="/b"\npolling="sometimes"',
     "watch[0].polling must be one of auto, on, off; got 'sometimes'"),
    ('[[watch]]\npath="/a"\nrecipes=["x"]\noutput="/a"', "watch[0].output must not be the watched folder"),
    ("[workers]\ndecode = 0", "workers.decode must be at least 1, got 0"),
    ('[defaults]\nmodel = 3', "defaults.model must be a str, got 3"),
    ('[defaults]\ndevice = "gpu"', "defaults.device must be \"auto\", \"cpu\", \"cuda\", \"cuda:N\" or \"mps\", got 'gpu'"),
    ("bogus = 1", "unknown key bogus"),
    ("rescan_minute = 3", "unknown key rescan_minute; did you mean 'rescan_minutes'?"),
    ('[defaults]\nmodle = "x"', "unknown key defaults.modle; did you mean 'model'?"),
    ('model = "x"', "unknown key model; it belongs in [defaults]"),
    ('[retries]\nrescan_minutes = 2',
     "unknown key retries.rescan_minutes; it belongs at the top of the file, before any [table]"),
    ('[[watch]]\npath="/a"\nrecipes=["x"]\noutput="/b"\nmirror_folders="yes"',
     "watch[0].mirror_folders must be a bool, got 'yes'"),
])
def test_invalid_config_names_the_key(text, message):
    with pytest.raises(ConfigError) as err:
        _cfg(text)
    assert message in str(err.value) and "test.toml" in str(err.value)


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(ConfigError, match="run `photobatch init`"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[watch]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_init_writes_the_config_that_is_named_and_missing(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from photobatch.daemon.cli import main

    named = tmp_path / "named.toml"
    result = CliRunner().invoke(main, ["--config", str(named), "init"])
    assert result.exit_code == 0, result.output
    assert named.read_text() == EXAMPLE_CONFIG
    # The environment variable names it too: init must not stop on the file it is to write.
    from_env = tmp_path / "env" / "config.toml"
    monkeypatch.setenv("PHOTOBATCH_CONFIG", str(from_env))
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    assert from_env.read_text() == EXAMPLE_CONFIG
    # Other commands still refuse a config that is not there, the unknown ones included.
    from_env.unlink()
    for args in (["catalog", "ls"], ["nosuch"]):
        result = CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), *args])
        assert result.exit_code == 1 and "no config at" in result.output, (args, result.output)


def test_init_force_replaces_a_broken_config(tmp_path):
    from click.testing import CliRunner

    from photobatch.daemon.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[[watch]\n")
    result = CliRunner().invoke(main, ["--config", str(bad), "init"])
    assert result.exit_code == 1 and "exists" in result.output and "--force" in result.output
    assert CliRunner().invoke(main, ["--config", str(bad), "init", "--force"]).exit_code == 0
    assert load_config(bad).watch  # the example has a [[watch]] folder


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_file_is_ready_only_after_its_quiet_period(tmp_path):
    clock = FakeClock()
    tracker = ReadinessTracker(clock)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"\xff\xd8\xff" + b"x" * 100)
    tracker.touch(photo, quiet=5)
    clock.now += 3
    assert tracker.take_ready() == []
    with open(photo, "ab") as fh:  # still being copied: the quiet period restarts
        fh.write(b"more")
    clock.now += 3
    assert tracker.take_ready() == []
    clock.now += 5.1
    assert tracker.take_ready() == [photo]
    assert len(tracker) == 0


def test_a_closed_file_is_ready_early_only_if_it_looks_complete(tmp_path):
    clock = FakeClock()
    tracker = ReadinessTracker(clock)
    complete, partial = tmp_path / "c.jpg", tmp_path / "p.jpg"
    complete.write_bytes(b"\xff\xd8\xff" + b"x" * 100 + b"\xff\xd9")
    partial.write_bytes(b"\xff\xd8\xff" + b"x" * 100)
    assert looks_complete(complete) and not looks_complete(partial)
    tracker.touch(complete, quiet=30, closed=True)
    tracker.touch(partial, quiet=30, closed=True)
    clock.now += 0.6
    assert tracker.take_ready() == [complete]
    clock.now += 30
    assert tracker.take_ready() == [partial]  # after the quiet period it is tried anyway


def test_ignored_names_and_catch_up_scan(tmp_path):
    folder = _cfg(f'[[watch]]\npath="{tmp_path}"\nrecipes=["x"]\noutput="{tmp_path}/out"\n'
                  'ignore=["*_proof.jpg"]').watch[0]
    for name in ("a.jpg", "b.JPG", "sub/c.nef", ".hidden.jpg", "d.jpg.part", "e.tmp", "f.jpg~",
                 "g.crdownload", "h_proof.jpg", "notes.txt", "out/a_color.jpg", ".cache/z.jpg",
                 "a.mask.png", "sub/c.MASK.PNG"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    outputs = [folder.output]
    found = [p.relative_to(tmp_path).as_posix() for p in scan_folder(folder, outputs)]
    assert found == ["a.jpg", "b.JPG", "sub/c.nef"]
    assert is_ignored(tmp_path / "out" / "a_color.jpg", folder, outputs)


def _catalog_with_file(tmp_path, n=1):
    cat = Catalog(tmp_path / "c.db")
    ids = [cat.register_file(sha256=f"{i:064x}", path=tmp_path / f"{i}.jpg", size=1, mtime=1.0)
           for i in range(n)]
    return cat, ids


def test_enqueue_is_one_job_per_file_recipe_and_model(tmp_path):
    cat, (fid,) = _catalog_with_file(tmp_path)
    q = RunQueue(cat)
    first = q.enqueue(file_id=fid, recipe="r", fingerprint="f1", model_id="m", output_dir="/o")
    assert first is not None
    assert q.enqueue(file_id=fid, recipe="r", fingerprint="f1", model_id="m", output_dir="/o") is None
    assert q.enqueue(file_id=fid, recipe="r", fingerprint="f2", model_id="m", output_dir="/o")
    # The same photo for another folder's output (dropped in a second watch folder) is queued.
    assert q.enqueue(file_id=fid, recipe="r", fingerprint="f1", model_id="m", output_dir="/o2")
    assert q.counts() == {"queued": 3}


def test_a_run_that_failed_since_a_time_blocks_a_new_one(tmp_path):
    from photobatch.catalog.queue import now_text

    cat, (fid,) = _catalog_with_file(tmp_path)
    q = RunQueue(cat)
    args = dict(file_id=fid, recipe="r", fingerprint="f", model_id="m", output_dir="/o")
    run_id = q.enqueue(**args)
    q.claim("1@host")
    cat.fail_run(run_id, error="error while reading a.jpg: no", timings={})
    failed_at = cat.db["runs"].get(run_id)["finished_at"]
    assert q.enqueue(**args, failed_since=failed_at) is None  # failed at that moment: blocks
    assert q.enqueue(**args, failed_since=failed_at, failed_by="1@host") is None
    assert q.enqueue(**args, failed_since=now_text(3600)) is not None  # failed before: retried
    assert q.counts() == {"failed": 1, "queued": 1}


def test_a_run_another_daemon_failed_in_the_same_second_is_retried(tmp_path):
    cat, (fid,) = _catalog_with_file(tmp_path)
    q = RunQueue(cat)
    args = dict(file_id=fid, recipe="r", fingerprint="f", model_id="m", output_dir="/o")
    run_id = q.enqueue(**args)
    q.claim("1@host")  # `watch --once`, then another straight after it, within the second
    cat.fail_run(run_id, error="error while reading a.jpg: no", timings={})
    failed_at = cat.db["runs"].get(run_id)["finished_at"]
    assert q.enqueue(**args, failed_since=failed_at, failed_by="2@host") is not None
    assert q.counts() == {"failed": 1, "queued": 1}


def test_concurrent_claims_never_hand_out_a_run_twice(tmp_path):
    cat, ids = _catalog_with_file(tmp_path, n=40)
    q = RunQueue(cat)
    for fid in ids:
        q.enqueue(file_id=fid, recipe="r", fingerprint="f", model_id="m", output_dir="/o")
    claimed, lock = [], threading.Lock()

    def worker(name):
        mine = RunQueue(Catalog(tmp_path / "c.db"))  # one connection per thread, as the daemon does
        while (run := mine.claim(f"{name}@host")) is not None:
            with lock:
                claimed.append(run["id"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 40
    assert q.counts() == {"running": 40}


def test_orphans_of_a_dead_process_are_requeued_and_retries_wait(tmp_path):
    cat, (fid,) = _catalog_with_file(tmp_path)
    q = RunQueue(cat)
    run_id = q.enqueue(file_id=fid, recipe="r", fingerprint="f", model_id="m", output_dir="/o")
    claimed = q.claim("999999999@" + __import__("socket").gethostname())  # no such pid
    assert claimed["attempts"] == 1
    assert q.requeue_orphans() == 1 and q.counts() == {"queued": 1}
    claimed = q.claim()
    assert claimed["id"] == run_id and claimed["attempts"] == 2
    assert q.requeue_orphans() == 0  # our own process is alive
    q.schedule_retry(run_id, delay_seconds=3600)
    assert q.claim() is None and q.pending() == 1 and q.pending(include_delayed=False) == 0
    q.schedule_retry(run_id, delay_seconds=0)
    assert q.claim()["attempts"] == 3
    q.release(run_id)
    assert q.claim()["attempts"] == 3  # a release does not count as an attempt


def test_native_observer_failure_falls_back_to_polling(tmp_path, monkeypatch):
    import errno
    import queue

    from watchdog.observers.polling import PollingObserver

    from photobatch.daemon import watcher

    class Exhausted(watcher.Observer):
        def schedule(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watcher, "Observer", Exhausted)
    folder = _cfg(f'[[watch]]\npath="{tmp_path}/in"\nrecipes=["x"]\noutput="{tmp_path}/out"').watch[0]
    events = queue.Queue()
    assert watcher.folder_ready(folder)  # made: its parent is there
    observer, mode = watcher.start_observer(folder, watcher.EnqueueingHandler(events))
    try:
        assert mode == "polling" and isinstance(observer, PollingObserver)
        (folder.path / "a.jpg").write_bytes(b"x")
        kinds = set()
        deadline = __import__("time").monotonic() + 10
        while "touch" not in kinds and __import__("time").monotonic() < deadline:
            try:
                kinds.add(events.get(timeout=0.5)[0])
            except queue.Empty:
                pass
        assert "touch" in kinds
    finally:
        observer.stop()
        observer.join()
    strict = _cfg(f'[[watch]]\npath="{tmp_path}/in"\nrecipes=["x"]\noutput="{tmp_path}/out"\n'
                  'polling="off"').watch[0]
    with pytest.raises(OSError):
        watcher.start_observer(strict, watcher.EnqueueingHandler(events))


def test_temp_outputs_of_dead_processes_are_cleaned_at_start(tmp_path):
    import os

    from photobatch.daemon.service import WatchService

    config = _cfg(f'[[watch]]\npath="{tmp_path}/in"\nrecipes=["x"]\noutput="{tmp_path}/out"')
    out = config.watch[0].output
    out.mkdir(parents=True)
    dead = out / ".IMG_1_x.999999999.partial.jpg"
    dead_meta = out / "..IMG_1_x.999999999.partial.jpg.ab12cd34.tmp"
    mine = out / f".IMG_2_x.{os.getpid()}.partial.jpg"
    kept = out / "IMG_3_x.jpg"
    for path in (dead, dead_meta, mine, kept):
        path.write_bytes(b"x")
    WatchService(None, tmp_path / "c.db", config=config)._clean_stale_temps()
    assert sorted(p.name for p in out.iterdir()) == sorted([mine.name, kept.name])


def test_the_gpu_stage_batches_prepared_photos_of_one_recipe(tmp_path):
    runner = FakeRunner(device=None, seconds=0.3)  # while it works, the next photos are prepared
    out = watch_once(tmp_path, runner, 'batch = 4\nstrength = 0.5\nsteps = 10\n', photos=8)
    assert sum(runner.calls) == 8 and max(runner.calls) > 1  # some photos shared a call
    assert len(list(out.iterdir())) == 8


def test_the_configured_device_reaches_the_runners(tmp_path):
    from photobatch.daemon.app import App

    assert _cfg('[defaults]\ndevice = "cuda:1"').device == "cuda:1"
    app = App(catalog_path=tmp_path / "c.db", device="cpu")
    assert app.runners.get("img2img").device == "cpu"
    assert app.runners.get("inpaint").device == "cpu"
    # One cache: both runners load their models on the device asked for.
    app.runners.get("img2img").use_device("cuda:1")
    assert app.runners.get("inpaint").device == "cuda:1"


def _stage_threads(tmp_path, device: str) -> dict:
    """Run 3 photos through the daemon with a runner on ``device``; the thread of each stage."""
    import threading
    import unittest.mock as mock

    from photobatch.daemon.session import Session

    seen: dict[str, set] = {"prepare": set(), "finish": set()}

    def spy(stage, original):
        def wrapper(self, *args, **kwargs):
            seen[stage].add(threading.current_thread().name)
            return original(self, *args, **kwargs)
        return wrapper

    runner = FakeRunner(device, seconds=0)
    with mock.patch.object(Session, "prepare", spy("prepare", Session.prepare)), \
            mock.patch.object(Session, "finish", spy("finish", Session.finish)):
        out = watch_once(tmp_path, runner, 'strength = 0.5\nsteps = 10\nfull_resolution = "resize"\n',
                         photos=3)
    assert len(list(out.iterdir())) == 3
    seen["run"] = runner.threads
    return seen


def test_on_a_cpu_model_every_stage_runs_in_the_models_thread(tmp_path, monkeypatch):
    import torch

    # The model fills every core (torch's default, pinned here whatever OMP_NUM_THREADS the
    # tests run with): stages beside it would only slow it down.
    monkeypatch.setattr(torch, "get_num_threads", lambda: os.cpu_count() or 1)
    seen = _stage_threads(tmp_path, "cpu")
    assert seen["run"] == {"pb-gpu"}
    assert seen["prepare"] == {"pb-gpu"} and seen["finish"] == {"pb-gpu"}


def test_on_a_gpu_the_cpu_stages_overlap_the_model(tmp_path):
    seen = _stage_threads(tmp_path, "cuda")
    assert seen["run"] == {"pb-gpu"}
    assert all(name.startswith("pb-prepare") for name in seen["prepare"])
    assert all(name.startswith("pb-finish") for name in seen["finish"])


def test_a_cpu_model_with_cores_to_spare_overlaps_too(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    seen = _stage_threads(tmp_path, "cpu")
    assert all(name.startswith("pb-finish") for name in seen["finish"])


def test_a_reload_moves_the_runners_to_the_new_device(tmp_path, monkeypatch):
    import torch

    service, reload_with = reloadable_service(tmp_path, 'device = "cpu"')
    assert service.app.runners.get("img2img").device == "cpu"
    # A device that is not here is refused: the running configuration stays.
    reload_with('device = "cuda:1"')
    assert service.app.runners.get("img2img").device == "cpu"
    # On a machine with two GPUs (as torch would report one) it is taken.
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    reload_with('device = "cuda:1"')
    assert service.app.runners.get("img2img").device == "cuda:1"


def test_the_loop_hears_when_a_run_leaves_the_pipeline(tmp_path, monkeypatch):
    # --once ends as soon as the last run is out, not at the loop's next tick: the pipeline
    # tells the loop after the run left (so the loop then sees it idle).
    from photobatch.daemon import pipeline as pipeline_module

    idle_when_told = []
    original = pipeline_module.Pipeline.__init__

    def init(self, *args, on_settled=None, **kwargs):
        def settled():
            idle_when_told.append(self.idle())
            on_settled()
        original(self, *args, on_settled=settled, **kwargs)

    monkeypatch.setattr(pipeline_module.Pipeline, "__init__", init)
    _stage_threads(tmp_path, "cpu")
    assert len(idle_when_told) == 3 and idle_when_told[-1] is True


def test_status_paces_a_young_daemon_by_its_own_work_and_says_what_is_left(tmp_path):
    from photobatch.catalog.queue import DaemonState, now_text
    from photobatch.daemon.service import CatalogLock
    from photobatch.daemon.status import collect_status, format_status

    cat, ids = _catalog_with_file(tmp_path, 12)
    q = RunQueue(cat)
    runs = [q.enqueue(file_id=fid, recipe="r", fingerprint="f", model_id="m", output_dir="/o")
            for fid in ids]
    (tmp_path / "inbox").mkdir()
    DaemonState(cat).started([str(tmp_path / "inbox"), str(tmp_path / "card" / "DCIM")])
    cat.db.execute("UPDATE daemon_state SET started_at = ?", [now_text(-120)])
    # Two runs an earlier daemon did half an hour ago, six done by this one, four to go.
    for run_id, ago in zip(runs, [1800, 1700, 100, 90, 80, 60, 40, 20]):
        cat.db.execute("UPDATE runs SET status = 'done', finished_at = ? WHERE id = ?",
                       [now_text(-ago), run_id])
    cat.db.conn.commit()
    cat.close()
    down = collect_status(tmp_path / "c.db")
    assert down["daemon"] == "down" and down["eta_seconds"] is None  # nobody works the queue
    assert ("left     4 queued run(s) wait for `photobatch watch` (or `photobatch rerun ... "
            "--now`)") in format_status(down)
    assert down["per_minute"]["60 min"] == round(8 / 60, 2)
    lock = CatalogLock(tmp_path / "c.db")
    lock.acquire()
    try:
        report = collect_status(tmp_path / "c.db")
    finally:
        lock.release()
    assert report["daemon"] == "up" and 119 <= report["up_seconds"] <= 125
    assert report["per_minute_since_start"] == pytest.approx(3.0, abs=0.1)
    assert report["per_minute"]["60 min"] == report["per_minute_since_start"]  # not diluted
    assert report["eta_seconds"] == pytest.approx(80, abs=3)
    text = format_status(report)
    assert re.search(r"^speed    (2\.9|3\.0|3\.1)\d*/min since it started 2 min ago$", text, re.M)
    assert "over 5 min" not in text  # a window longer than the daemon has been up
    assert f"folders  {tmp_path / 'inbox'}, {tmp_path / 'card' / 'DCIM'} (not there: a card or " \
        "share not mounted?)" in text
    assert re.search(r"^left     4 run\(s\), about (7[7-9]|8[0-3]) s at this pace$", text, re.M)


def test_status_tells_failed_runs_waiting_for_a_retry_from_the_queue(tmp_path):
    from photobatch.daemon.status import collect_status, format_status

    cat, ids = _catalog_with_file(tmp_path, 3)
    q = RunQueue(cat)
    runs = [q.enqueue(file_id=fid, recipe="r", fingerprint="f", model_id="m", output_dir="/o")
            for fid in ids]
    for run_id, delay in zip(runs[:2], (40, 300)):
        q.claim()
        cat.fail_run(run_id, error="out of memory", timings={})
        q.schedule_retry(run_id, delay)
    cat.close()
    report = collect_status(tmp_path / "c.db")
    # Three queued, one of them for the first time: not a retry.
    assert report["queue"]["queued"] == 3 and report["retries"]["waiting"] == 2
    assert re.search(r"^retries  2 failed run\(s\) to be tried again, the next in (39|40) s$",
                     format_status(report), re.M)


def test_a_tally_hands_over_a_stretch_of_work_once_idle_long_enough():
    from photobatch.daemon.tally import Stretch, Tally

    now = [100.0]
    tally = Tally(clock=lambda: now[0])
    assert not tally and tally.settle(idle=True, wait=0) is None  # nothing done: nothing to say
    tally.count("done", 5.0)  # a photo that took 5 s: the stretch began at 95
    now[0] = 110.0
    assert tally.settle(idle=True, wait=30) is None  # idle since 110...
    now[0] = 130.0
    assert tally.settle(idle=False, wait=30) is None  # ...but the next photo of the card came
    tally.count("failed", 1.0)
    tally.count("done", 1.0)
    now[0] = 200.0
    assert tally.settle(idle=True, wait=30) is None  # idle since 200
    now[0] = 229.0
    assert tally.settle(idle=True, wait=30) is None
    now[0] = 231.0
    assert tally.settle(idle=True, wait=30) == Stretch(done=2, skipped=0, failed=1, seconds=105.0)
    assert not tally and tally.settle(idle=True, wait=0) is None  # the next starts empty
    assert Stretch(120, 3, 2, 840.0).text() == \
        "caught up: 120 done, 3 skipped, 2 failed in 14 min (8.6/min)"
    assert Stretch(0, 0, 1, 2.0).text() == "caught up: 0 done, 1 failed in 2 s"


def test_the_daemon_says_once_when_it_has_caught_up_with_a_shoot(tmp_path, caplog):
    from photobatch.daemon.config import parse_config
    from photobatch.daemon.samples import write_sample_photo
    from photobatch.daemon.service import WatchService
    from photobatch.plugins import hookimpl
    from photobatch.plugins.manager import build_plugin_manager

    heard = []

    class Listener:
        @hookimpl
        def photobatch_caught_up(self, done, skipped, failed, seconds):
            heard.append((done, skipped, failed, seconds))

    inbox, recipes = tmp_path / "in", tmp_path / "recipes"
    inbox.mkdir()
    recipes.mkdir()
    (recipes / "f.toml").write_text('name = "f"\nrunner = "fake"\n', encoding="utf-8")
    for i in range(3):
        write_sample_photo(inbox / f"P{i}.JPG", size=(96, 64), seed=i)
    (inbox / "BROKEN.JPG").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    config = parse_config({"recipe_dirs": [str(recipes)], "defaults": {"model": "test/model"},
                           "watch": [{"path": str(inbox), "recipes": ["f"],
                                      "output": str(tmp_path / "out"), "quiet_seconds": 0}]},
                          source="test")
    runner = FakeRunner("cpu", seconds=0.05)
    service = WatchService(None, tmp_path / "c.db", once=True, config=config,
                           plugin_manager_factory=lambda c: build_plugin_manager(
                               entrypoints=False, extra=[runner.plugin(), Listener()]))
    with caplog.at_level("INFO", logger="photobatch"):
        assert service.run() == 1  # the broken file failed
    [(done, skipped, failed, seconds)] = heard
    assert (done, skipped, failed) == (3, 0, 1) and 0 < seconds < 60
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("caught up")]
    assert len(lines) == 1 and lines[0].startswith("caught up: 3 done, 1 failed in ")


def test_a_run_started_by_photobatch_run_is_left_alone_by_a_daemon_while_its_process_lives(tmp_path):
    cat, (fid,) = _catalog_with_file(tmp_path)
    run_id = cat.start_run(file_id=fid, recipe="r", fingerprint="f", params={}, seed=1,
                           model_id="m", runner="img2img")
    q = RunQueue(cat)
    assert q.requeue_orphans() == 0  # this process, alive: its photo is in the model's hands
    cat.db.execute("UPDATE runs SET worker = ? WHERE id = ?",
                   [f"999999999@{socket.gethostname()}", run_id])
    assert q.requeue_orphans() == 1 and cat.db["runs"].get(run_id)["status"] == "queued"


def test_a_retried_attempt_starts_the_stretch_but_is_not_counted():
    from photobatch.daemon.tally import Tally

    now = [100.0]
    tally = Tally(clock=lambda: now[0])
    tally.count("failed", 2.0, final=False)  # began at 98, to be tried again
    now[0] = 160.0
    tally.count("done", 1.0)
    stretch = tally.settle(idle=True, wait=0)
    assert (stretch.done, stretch.failed, stretch.seconds) == (1, 0, 62.0)


def test_a_reload_takes_the_new_copyright_notifications_and_exports(tmp_path):
    service, reload_with = reloadable_service(tmp_path, "")
    assert service.app.rights is None and service.app.auto_exports == ()
    reload_with('[copyright]\ncreator = "Jane Doe Studio"\n[notify]\ncommand = ["true"]')
    assert service.app.rights.creator == "Jane Doe Studio"
    assert service.app.notifications.command == ("true",)
    web = tmp_path / "web"
    service.config_path.write_text(service.config_path.read_text() + (
        f'[[watch.export]]\nexporter = "files"\nout = "{web}"\nlong_edge = 2048\n'))
    service._reload()
    assert [spec.out for _, spec in service.app.auto_exports] == [web]
    reload_with("")
    assert service.app.rights is None and service.app.notifications is None


def test_a_claim_can_leave_a_full_disks_runs_waiting(tmp_path):
    cat, (fid,) = _catalog_with_file(tmp_path)
    q = RunQueue(cat)
    full_disk = q.enqueue(file_id=fid, recipe="a", fingerprint="f", model_id="m", output_dir="/full/out")
    other = q.enqueue(file_id=fid, recipe="b", fingerprint="f", model_id="m", output_dir="/room/out")
    assert q.claim("1@h", accept=lambda folder: folder != "/full/out")["id"] == other
    assert q.claim("1@h", accept=lambda folder: folder != "/full/out") is None  # only the full disk's left
    assert q.claim("1@h")["id"] == full_disk


def test_full_disks_are_waited_for_one_by_one(tmp_path, monkeypatch):
    from photobatch.daemon import full_disks

    monkeypatch.setattr(full_disks, "disk_of", lambda folder: str(folder).split("/")[1])
    disks = full_disks.FullDisks(retry_delay=0.2)
    assert not disks and disks.may_take("/a/out")
    disks.found_full("/a/out")
    assert disks and not disks.may_take("/a/x") and disks.may_take("/b/out")
    time.sleep(0.25)
    assert disks.may_take("/a/out")  # the wait is over: one run may try
    disks.taken(7, "/a/out")
    assert not disks.may_take("/a/other")  # while it tries, no other
    disks.ended(7)
    assert disks.may_take("/a/other")
    disks.wrote("/a/out")
    assert not disks
