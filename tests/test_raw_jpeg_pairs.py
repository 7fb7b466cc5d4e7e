"""RAW+JPEG pairs: one photo per exposure, the RAW by default, in `run`, `watch` and `rerun`."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from PIL import Image
from fakes import SMALL_RUNNER_PLUGIN, FakeRunner

from photobatch.daemon.cli import main
from photobatch.daemon.config import ConfigError, parse_config
from photobatch.daemon.pairs import drop_left_out, left_out_for, pair_partner
from photobatch.daemon.sample_formats import write_sample_dng
from photobatch.daemon.samples import write_sample_photo


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


def test_partners_are_found_by_stem_whatever_the_case_of_the_extension(tmp_path):
    _touch(tmp_path, "IMG_0001.NEF", "IMG_0001.JPG", "IMG_0002.cr3", "IMG_0002.heic",
           "IMG_0003.JPG", "IMG_0004.ARW", ".IMG_0005.JPG", "IMG_0005.RAF", "IMG_0006.jpg",
           "IMG_0006.JPG.xmp", "IMG_0006.mask.png", "IMG_00010.JPG")
    d = tmp_path
    assert pair_partner(d / "IMG_0001.JPG") == d / "IMG_0001.NEF"
    assert pair_partner(d / "IMG_0001.NEF") == d / "IMG_0001.JPG"
    assert pair_partner(d / "IMG_0002.heic") == d / "IMG_0002.cr3"  # RAW+HEIF (Canon, Sony)
    assert pair_partner(d / "IMG_0003.JPG") is None and pair_partner(d / "IMG_0004.ARW") is None
    assert pair_partner(d / "IMG_0005.RAF") is None  # a dotfile is no partner
    assert pair_partner(d / "IMG_0006.jpg") is None  # a sidecar or a mask is no RAW
    assert pair_partner(d / "IMG_0001.mask.png") is None
    assert left_out_for(d / "IMG_0001.JPG", "raw") == d / "IMG_0001.NEF"
    assert left_out_for(d / "IMG_0001.NEF", "raw") is None
    assert left_out_for(d / "IMG_0001.NEF", "jpeg") == d / "IMG_0001.JPG"
    assert left_out_for(d / "IMG_0001.JPG", "jpeg") is None
    assert left_out_for(d / "IMG_0001.JPG", "both") is None

    every = sorted(p for p in d.iterdir() if not p.name.startswith("."))
    kept, dropped = drop_left_out(every, "raw")
    assert dropped == [(d / "IMG_0001.JPG", d / "IMG_0001.NEF"),
                       (d / "IMG_0002.heic", d / "IMG_0002.cr3")]
    assert kept == [p for p in every if p not in (d / "IMG_0001.JPG", d / "IMG_0002.heic")]
    assert drop_left_out(every, "both") == (every, [])


def test_the_config_takes_pairs_in_defaults_and_per_folder():
    config = parse_config(tomllib.loads(
        '[defaults]\npairs = "jpeg"\n'
        '[[watch]]\npath = "/a"\nrecipes = ["x"]\noutput = "/o"\n'
        '[[watch]]\npath = "/b"\nrecipes = ["x"]\noutput = "/o"\npairs = "both"\n'))
    assert config.pairs == "jpeg" and [f.pairs for f in config.watch] == ["jpeg", "both"]
    assert parse_config({}).pairs == "raw"
    with pytest.raises(ConfigError, match=r"watch\[0\]\.pairs must be one of 'raw', 'jpeg', "
                                          r"'both'; got 'RAW\+JPEG'"):
        parse_config({"watch": [{"path": "/a", "recipes": ["x"], "output": "/o",
                                 "pairs": "RAW+JPEG"}]})



@pytest.fixture()
def pair_shoot(tmp_path):
    """A shoot of one RAW+JPEG pair and one lone JPEG, a drop-in runner and its recipe."""
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    write_sample_dng(shoot / "IMG_0001.DNG", size=(96, 64))
    write_sample_photo(shoot / "IMG_0001.JPG", size=(96, 64), seed=1)
    write_sample_photo(shoot / "IMG_0002.JPG", size=(96, 64), seed=2)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "small_runner.py").write_text(SMALL_RUNNER_PLUGIN)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "small.toml").write_text('name = "small"\nrunner = "small"\n'
                                                     'strength = 0.3\nsteps = 10\n')
    return shoot


def _run(tmp_path, *args, out: str, config: Path | None = None):
    """``photobatch run ARGS`` into ``out``, on a catalog of its own."""
    base = ["--catalog", tmp_path / f"{out}.db", "--plugins-dir", tmp_path / "plugins",
            "--recipes", tmp_path / "recipes"]
    if config is not None:
        base += ["--config", config]
    return CliRunner().invoke(main, [str(a) for a in (*base, "run", *args, "--recipe", "small",
                                                      "--model", "test/m", "--out",
                                                      tmp_path / out)])


def _ran(result) -> list[str]:
    return sorted(line.split()[1] for line in result.output.splitlines() if line.startswith("done"))


def test_run_takes_the_raw_of_a_pair_and_says_what_it_left_out(pair_shoot, tmp_path):
    result = _run(tmp_path, pair_shoot, out="out")
    assert result.exit_code == 0, result.output
    assert _ran(result) == ["IMG_0001.DNG", "IMG_0002.JPG"]
    assert ("left out IMG_0001.JPG: the JPEG of a RAW+JPEG pair; IMG_0001.DNG is the photo "
            "(--pairs both takes both)") in result.output
    jpeg = _run(tmp_path, pair_shoot, "--pairs", "jpeg", out="out2")
    assert _ran(jpeg) == ["IMG_0001.JPG", "IMG_0002.JPG"]
    assert "left out IMG_0001.DNG: the RAW of a RAW+JPEG pair" in jpeg.output
    both = _run(tmp_path, pair_shoot, "--pairs", "both", out="out3")
    assert _ran(both) == ["IMG_0001.DNG", "IMG_0001.JPG", "IMG_0002.JPG"]
    assert "left out" not in both.output
    # A file named on the command line is run: the user asked for it.
    named = _run(tmp_path, pair_shoot / "IMG_0001.JPG", out="out4")
    assert _ran(named) == ["IMG_0001.JPG"] and "left out" not in named.output
    # The config's [defaults] pairs is run's default.
    config = tmp_path / "config.toml"
    config.write_text('[defaults]\npairs = "jpeg"\n')
    from_config = _run(tmp_path, pair_shoot, out="out5", config=config)
    assert _ran(from_config) == ["IMG_0001.JPG", "IMG_0002.JPG"]


def test_photos_named_alike_written_at_once_each_get_an_output(pair_shoot, tmp_path):
    # Two cards both start at IMG_0001: the outputs are written in threads (this runner is no
    # torch model, so the stages overlap), and each must claim its own name.
    for card in ("card1", "card2", "card3"):
        write_sample_photo(pair_shoot / card / "IMG_0001.JPG", size=(96, 64),
                           seed=len(card) + int(card[-1]))
    # --flat: into one folder (by default each card's would go to a subfolder of its own).
    result = _run(tmp_path, pair_shoot, "--pairs", "both", "--flat", out="out")
    assert result.exit_code == 0, result.output
    assert "6 done, 0 skipped, 0 failed" in result.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["IMG_0001_small-1.jpg", "IMG_0001_small-2.jpg", "IMG_0001_small-3.jpg",
                     "IMG_0001_small-4.jpg", "IMG_0001_small.jpg", "IMG_0002_small.jpg"]


def _service(tmp_path, inbox: Path, pairs: str = "raw", quiet: float = 0):
    from photobatch.daemon.service import WatchService
    from photobatch.plugins.manager import build_plugin_manager

    recipes = tmp_path / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / "f.toml").write_text('name = "f"\nrunner = "fake"\nstrength = 0.5\nsteps = 10\n')
    config = parse_config({"recipe_dirs": [str(recipes)], "defaults": {"model": "test/model"},
                           "watch": [{"path": str(inbox), "recipes": ["f"], "pairs": pairs,
                                      "output": str(tmp_path / "out"), "quiet_seconds": quiet}]},
                          source="test")
    runner = FakeRunner(device=None, seconds=0)
    service = WatchService(None, tmp_path / "c.db", once=True, config=config,
                           plugin_manager_factory=lambda c: build_plugin_manager(
                               entrypoints=False, extra=[runner.plugin()]))
    return service


def _runs(tmp_path) -> dict[str, list[tuple[str, str | None]]]:
    """Each catalogued file's runs (status, error), by file name."""
    con = sqlite3.connect(tmp_path / "c.db")
    try:
        rows = con.execute("SELECT f.path, r.status, r.error FROM files f "
                           "LEFT JOIN runs r ON r.file_id = f.id ORDER BY r.id").fetchall()
    finally:
        con.close()
    found: dict[str, list] = {}
    for path, status, error in rows:
        found.setdefault(Path(path).name, []).extend([(status, error)] if status else [])
    return found


def test_watch_runs_the_raw_and_catalogues_the_jpeg(pair_shoot, tmp_path):
    service = _service(tmp_path, pair_shoot)
    assert service.run() == 0
    runs = _runs(tmp_path)
    assert runs == {"IMG_0001.DNG": [("done", None)], "IMG_0001.JPG": [],
                    "IMG_0002.JPG": [("done", None)]}
    # Catalogued with its metadata, only not run; rerun --recipe leaves it out too.
    rerun = CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "--recipes",
                                      str(tmp_path / "recipes"), "--plugins-dir",
                                      str(tmp_path / "plugins"), "rerun", "--recipe", "small",
                                      "--all", "--dry-run", "--model", "test/m",
                                      "--out", str(tmp_path / "o")])
    assert rerun.exit_code == 0, rerun.output
    assert "IMG_0001.DNG" in rerun.output and "IMG_0002.JPG" in rerun.output
    assert "IMG_0001.JPG" not in rerun.output
    # catalog ls says why it was not run.
    listing = CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "catalog", "ls"])
    line = next(x for x in listing.output.splitlines() if x.startswith("IMG_0001.JPG"))
    assert line.split()[-5:] == ["run", "RAW+JPEG", "pair:", "IMG_0001.DNG", "runs"]
    rows = json.loads(CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "catalog",
                                                "ls", "--json"]).output)
    assert {Path(r["path"]).name: r.get("note") for r in rows} == {
        "IMG_0001.DNG": None, "IMG_0001.JPG": "RAW+JPEG pair: IMG_0001.DNG runs",
        "IMG_0002.JPG": None}


def test_a_jpeg_queued_before_its_raw_came_is_skipped_when_the_raw_comes(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    service = _service(tmp_path, inbox)
    service.started_at = "2026-01-01T00:00:00+00:00"
    service.app = service.build_app(service.config)
    service.pipeline = SimpleNamespace(wake=lambda: None)
    jpeg = write_sample_photo(inbox / "IMG_0001.JPG", size=(96, 64), seed=1)
    service.intake(jpeg)
    assert _runs(tmp_path) == {"IMG_0001.JPG": [("queued", None)]}
    raw = write_sample_dng(inbox / "IMG_0001.DNG", size=(96, 64))
    service.intake(raw)
    assert _runs(tmp_path) == {
        "IMG_0001.JPG": [("skipped", "the JPEG of a RAW+JPEG pair; IMG_0001.DNG is the photo")],
        "IMG_0001.DNG": [("queued", None)]}
    service.catch_up()  # the scans leave the JPEG alone too
    assert len(_runs(tmp_path)["IMG_0001.JPG"]) == 1
    # A painted mask (IMG_0001.mask.png, the pair's one) has the RAW done again, not the JPEG.
    (tmp_path / "recipes" / "m.toml").write_text('name = "m"\nrunner = "fake"\nstrength = 0.5\n'
                                                 'steps = 10\nmask = "sidecar"\n')
    service.app = service.build_app(service.config)
    folder = dataclasses.replace(service.config.watch[0], recipes=("m",))
    mask = inbox / "IMG_0001.mask.png"
    Image.new("L", (96, 64), 255).save(mask)
    service._mask_changed(mask, folder)
    runs = _runs(tmp_path)
    assert runs["IMG_0001.DNG"] == [("queued", None)] * 2 and len(runs["IMG_0001.JPG"]) == 1
    service.app.close()


@pytest.mark.parametrize("pairs, early", [("raw", False), ("both", True)])
def test_a_closed_jpeg_waits_for_its_raw_only_when_it_may_be_left_out(tmp_path, pairs, early):
    inbox = tmp_path / "in"
    inbox.mkdir()
    from photobatch.daemon.watcher import ReadinessTracker

    service = _service(tmp_path, inbox, pairs=pairs, quiet=30)
    clock = SimpleNamespace(now=100.0)
    service.tracker = ReadinessTracker(lambda: clock.now)
    jpeg = write_sample_photo(inbox / "IMG_0001.JPG", size=(96, 64), seed=1)
    service._handle_event("closed", jpeg)
    # A closed, complete JPEG is ready after a short settle, unless the RAW of its pair could
    # still come (it sorts after it: IMG_0001.JPG is copied before IMG_0001.NEF).
    clock.now += 1
    assert service.tracker.take_ready() == ([jpeg] if early else [])
    clock.now += 30
    assert service.tracker.take_ready() == ([] if early else [jpeg])
