"""Outputs keep the subfolders photos were dropped in: a shoot dropped as a folder comes out as
one, under the watch folder's output (or `run --out`), and two cards' IMG_0001.JPG keep their
names. `mirror_folders = false` (`run --flat`) puts every output straight in the output folder."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from fakes import SMALL_RUNNER_PLUGIN, FakeRunner

from photobatch.daemon.cli import main
from photobatch.daemon.config import parse_config
from photobatch.daemon.paths import mirrored_output
from photobatch.daemon.samples import write_sample_photo

SHOOT = ("IMG_0001.JPG", "shootA/IMG_0001.JPG", "shootA/day2/IMG_0002.JPG", "shootB/IMG_0001.JPG")


def _drop(inbox: Path) -> None:
    for i, name in enumerate(SHOOT):
        (inbox / name).parent.mkdir(parents=True, exist_ok=True)
        write_sample_photo(inbox / name, size=(96, 64), seed=i)


def _outputs(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))


def _watch_once(tmp_path: Path, **folder) -> Path:
    from photobatch.daemon.service import WatchService
    from photobatch.plugins.manager import build_plugin_manager

    inbox, recipes = tmp_path / "inbox", tmp_path / "recipes"
    _drop(inbox)
    recipes.mkdir()
    (recipes / "f.toml").write_text('name = "f"\nrunner = "fake"\nstrength = 0.5\nsteps = 10\n'
                                    'full_resolution = "resize"\n')
    config = parse_config({"recipe_dirs": [str(recipes)], "defaults": {"model": "test/model"},
                           "watch": [{"path": str(inbox), "recipes": ["f"], "quiet_seconds": 0,
                                      "output": str(tmp_path / "out"), **folder}]}, source="test")
    runner = FakeRunner(device=None, seconds=0)
    service = WatchService(None, tmp_path / "c.db", once=True, config=config,
                           plugin_manager_factory=lambda c: build_plugin_manager(
                               entrypoints=False, extra=[runner.plugin()]))
    assert service.run() == 0
    return tmp_path / "out"


def test_the_daemon_keeps_the_subfolders_photos_were_dropped_in(tmp_path):
    out = _watch_once(tmp_path)
    assert _outputs(out) == ["IMG_0001_f.jpg", "shootA/IMG_0001_f.jpg",
                             "shootA/day2/IMG_0002_f.jpg", "shootB/IMG_0001_f.jpg"]


def test_a_folder_that_does_not_mirror_puts_every_output_in_its_output(tmp_path):
    out = _watch_once(tmp_path, mirror_folders=False)
    # The three IMG_0001.JPG share one name there: the collision policy numbers them.
    assert _outputs(out) == ["IMG_0001_f-1.jpg", "IMG_0001_f-2.jpg", "IMG_0001_f.jpg",
                             "IMG_0002_f.jpg"]



def test_run_keeps_the_subfolders_of_a_folder_given_and_flat_does_not(tmp_path):
    shoot = tmp_path / "shoot"
    _drop(shoot)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "small_runner.py").write_text(SMALL_RUNNER_PLUGIN)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "f.toml").write_text('name = "f"\nrunner = "small"\nstrength = 0.3\n'
                                                 'steps = 10\n')

    def run(*args, out: str):
        result = CliRunner().invoke(main, [str(a) for a in (
            "--catalog", tmp_path / f"{out}.db", "--plugins-dir", tmp_path / "plugins",
            "--recipes", tmp_path / "recipes", "run", *args, "--recipe", "f", "--model", "test/m",
            "--out", tmp_path / out)])
        assert result.exit_code == 0, result.output
        return _outputs(tmp_path / out)

    assert run(shoot / "shootA", out="kept") == ["IMG_0001_f.jpg", "day2/IMG_0002_f.jpg"]
    assert run(shoot, "--flat", out="flat") == ["IMG_0001_f-1.jpg", "IMG_0001_f-2.jpg",
                                                "IMG_0001_f.jpg", "IMG_0002_f.jpg"]
    # A photo named on the command line goes straight into --out.
    assert run(shoot / "shootA" / "day2" / "IMG_0002.JPG", out="named") == ["IMG_0002_f.jpg"]


def test_mirrored_output_is_the_output_for_a_photo_outside_the_root(tmp_path):
    assert mirrored_output(tmp_path / "out", tmp_path / "in", tmp_path / "in" / "a" / "x.jpg") \
        == tmp_path / "out" / "a"
    assert mirrored_output(tmp_path / "out", tmp_path / "in", tmp_path / "in" / "x.jpg") \
        == tmp_path / "out"
    assert mirrored_output(tmp_path / "out", tmp_path / "in", tmp_path / "else" / "x.jpg") \
        == tmp_path / "out"


def test_catalog_ls_tells_files_and_outputs_named_alike_apart_by_their_folders(tmp_path):
    _watch_once(tmp_path)
    listing = CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "catalog", "ls"])
    assert listing.exit_code == 0, listing.output
    rows = [line.split() for line in listing.output.splitlines()[2:]]
    assert sorted((row[0], row[-1]) for row in rows) == [
        ("IMG_0002.JPG", "IMG_0002_f.jpg"),  # the only one so named: its name alone
        ("inbox/IMG_0001.JPG", "out/IMG_0001_f.jpg"),
        ("shootA/IMG_0001.JPG", "shootA/IMG_0001_f.jpg"),
        ("shootB/IMG_0001.JPG", "shootB/IMG_0001_f.jpg")]


def test_distinct_names_take_as_many_folders_as_it_takes():
    from photobatch.daemon.tables import distinct_names

    assert distinct_names(["/a/x/IMG.JPG", "/a/y/IMG.JPG", "/b/x/IMG.JPG", "/c/z.jpg"]) == {
        "/a/x/IMG.JPG": "a/x/IMG.JPG", "/b/x/IMG.JPG": "b/x/IMG.JPG", "/a/y/IMG.JPG": "y/IMG.JPG",
        "/c/z.jpg": "z.jpg"}
    assert distinct_names(["IMG.JPG", "IMG.JPG"]) == {"IMG.JPG": "IMG.JPG"}
