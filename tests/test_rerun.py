"""``photobatch rerun``: stale, failed and forced re-runs, queued for the daemon or run now.

The runner is a drop-in plugin that tints the picture by the recipe's strength (so a changed
recipe changes the pixels) and fails on photos of one width when told to; everything else is
real: the CLI, the catalog and its queue, the daemon (in-process, ``--once``), the session.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from photobatch.catalog.queue import RunQueue
from photobatch.catalog.store import Catalog
from photobatch.daemon.cli import main
from photobatch.daemon.progress import Progress
from photobatch.daemon.samples import write_sample_photo

RUNNER = '''
import os
from types import SimpleNamespace

from PIL import Image

from photobatch.plugins import hookimpl


class Tint:
    name = "tint"

    def run(self, image, recipe, seed, model):
        if str(image.width) == os.environ.get("PB_TINT_FAIL_WIDTH"):
            raise ValueError("the model ran out of memory")
        small = image.resize((image.width // 2, image.height // 2))
        lift = int(120 * recipe.strength)
        r, g, b = small.split()
        # The seed shows too: another seed, another picture.
        out = Image.merge("RGB", (r.point(lambda v: min(255, v + lift)), g,
                                  b.point(lambda v: min(255, v + seed % 64))))
        return SimpleNamespace(image=out, model_id=model, model_hash=None, device="cpu",
                               working_size=out.size)


@hookimpl
def photobatch_runners():
    return [Tint()]
'''

RECIPE = '''
name = "{name}"
runner = "tint"
strength = {strength}
steps = 20
prompt = "warmer"
[output]
name = "{{stem}}_{{recipe}}"
'''


class Studio:
    """Photos, a recipe folder, the drop-in runner, a daemon config and a catalog."""

    def __init__(self, root):
        self.root = root
        self.shoot, self.out, self.inbox = root / "shoot", root / "out", root / "inbox"
        self.recipes, self.plugins = root / "recipes", root / "plugins"
        for folder in (self.shoot / "day2", self.out, self.inbox, self.recipes, self.plugins):
            folder.mkdir(parents=True)
        (self.plugins / "tint_runner.py").write_text(RUNNER)
        self.recipe("tint", 0.3)
        self.catalog = root / "catalog.db"
        self.config = root / "config.toml"
        # The daemon's config: its default model is what recipes run on now.
        self.config.write_text(
            '[defaults]\nmodel = "test/model-a"\n\n[[watch]]\n'
            f'path = "{self.inbox}"\nrecipes = ["tint"]\noutput = "{self.out}"\nquiet_seconds = 0.1\n')
        self.photos = [
            write_sample_photo(self.shoot / "DSCF0001.JPG", size=(320, 240), seed=1),
            write_sample_photo(self.shoot / "IMG_0002.JPG", size=(240, 320), seed=2, make="Canon",
                               model="Canon EOS R6m2", scene="portrait",
                               date_taken="2026:03:01 07:15:00"),
            write_sample_photo(self.shoot / "day2" / "DSCF0003.JPG", size=(300, 200), seed=3,
                               date_taken="2026:03:02 18:15:00"),
        ]

    def recipe(self, name: str, strength: float) -> None:
        (self.recipes / f"{name}.toml").write_text(RECIPE.format(name=name, strength=strength))

    def cli(self, *args, **env):
        base = ["--catalog", self.catalog, "--config", self.config, "--plugins-dir", self.plugins,
                "--recipes", self.recipes]
        return CliRunner().invoke(main, [str(a) for a in (*base, *args)], env=env or None,
                                  catch_exceptions=False)

    def run_all(self, **env):
        return self.cli("run", self.shoot, "--recipe", "tint", "--model", "test/model-a",
                        "--out", self.out, **env)

    def outputs(self) -> dict[str, Path]:
        """Every output file under out/, by its path there (day2's go to out/day2/)."""
        return {p.relative_to(self.out).as_posix(): p for p in sorted(self.out.rglob("*"))
                if p.is_file()}

    def daemon_once(self) -> int:
        from photobatch.daemon.service import WatchService

        return WatchService(self.config, self.catalog, once=True, extra_recipe_dirs=(self.recipes,),
                            plugins_dir=self.plugins).run()

    def runs(self):
        con = sqlite3.connect(self.catalog)
        con.row_factory = sqlite3.Row
        rows = [dict(r) for r in con.execute(
            "SELECT r.*, f.path FROM runs r JOIN files f ON f.id = r.file_id ORDER BY r.id")]
        con.close()
        return rows


@pytest.fixture()
def studio(tmp_path):
    return Studio(tmp_path)


def _pixels(path):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_rerun_needs_a_selection(studio):
    result = studio.cli("rerun")
    assert result.exit_code == 2
    assert "say what to re-run: --stale, --failed, --recipe NAME" in result.output
    unknown = studio.cli("rerun", "--recipe", "tnit")
    assert unknown.exit_code == 1
    assert "no recipe called 'tnit'; did you mean 'tint'? (known: " in unknown.output


def test_a_changed_recipe_makes_outputs_stale_and_the_daemon_reruns_them(studio):
    assert studio.run_all().exit_code == 0
    before = {name: _pixels(p) for name, p in studio.outputs().items()}
    assert len(before) == 3
    assert "stale" not in studio.cli("catalog", "ls").output

    studio.recipe("tint", 0.6)  # the recipe changed: its fingerprint with it
    listing = studio.cli("catalog", "ls").output
    assert listing.count("done (stale: recipe changed)") == 3

    dry = studio.cli("rerun", "--stale", "--dry-run")
    assert dry.exit_code == 0
    assert dry.output.count("stale: recipe changed") == 4  # 3 rows and the summary
    assert "would queue 3 run(s)" in dry.output and "nothing changed" in dry.output
    assert str(studio.out) in dry.output  # each goes where its output went
    # What changed, said once for the three outputs it makes stale.
    assert dry.output.count("tint changed since 3 of its output(s) were made: strength ") == 1
    assert len(studio.runs()) == 3  # a dry run changes nothing

    queued = studio.cli("rerun", "--stale")
    assert queued.exit_code == 0
    assert "queued 3 run(s) (3 stale: recipe changed)" in queued.output
    assert "the daemon is not running" in queued.output
    # Queued runs are neither stale any more nor queued twice.
    assert "nothing to re-run" in studio.cli("rerun", "--stale").output
    again = studio.cli("rerun", "--all", "--force")
    assert "3 already queued or running" in again.output and "queued 3" not in again.output
    assert [r["status"] for r in studio.runs()] == ["done"] * 3 + ["queued"] * 3

    assert studio.daemon_once() == 0
    runs = studio.runs()
    assert [r["status"] for r in runs] == ["done"] * 6  # history kept, the re-runs done
    assert len({r["recipe_fingerprint"] for r in runs[:3]} | {r["recipe_fingerprint"] for r in runs[3:]}) == 2
    for name, old in before.items():
        new = _pixels(studio.out / name)  # rewritten in place, not next to the old one
        assert new.shape == old.shape
        assert new[..., 0].mean() > old[..., 0].mean() + 10  # the stronger tint
    assert sorted(studio.outputs()) == sorted(before)
    assert "stale" not in studio.cli("catalog", "ls").output
    assert "nothing to re-run" in studio.cli("rerun", "--stale").output


def test_a_forced_rerun_is_redone_by_the_daemon_not_skipped(studio):
    assert studio.cli("run", studio.photos[0], "--recipe", "tint", "--model", "test/model-a",
                      "--out", studio.out).exit_code == 0
    output = studio.out / "DSCF0001_tint.jpg"
    first_mtime, first_pixels = output.stat().st_mtime_ns, _pixels(output)

    plain = studio.cli("rerun", "--recipe", "tint", studio.photos[0])
    assert "1 up to date, left alone (--force redoes them)" in plain.output
    assert "nothing to re-run" in plain.output and len(studio.runs()) == 1

    forced = studio.cli("rerun", "--recipe", "tint", "--force", studio.photos[0])
    assert "queued 1 run(s) (1 up to date)" in forced.output
    assert studio.daemon_once() == 0
    runs = studio.runs()
    # Without the forced flag the daemon would skip it as "already done by run 1".
    assert [r["status"] for r in runs] == ["done", "done"] and runs[1]["error"] is None
    assert output.stat().st_mtime_ns != first_mtime
    assert np.array_equal(_pixels(output), first_pixels)  # same seed, same pixels


def test_failed_runs_rerun_now_into_the_folder_their_output_was_meant_for(studio):
    first = studio.run_all(PB_TINT_FAIL_WIDTH="300")
    assert first.exit_code == 1 and "the model ran out of memory" in first.output
    failed = [r for r in studio.runs() if r["status"] == "failed"]
    assert [r["path"].rsplit("/", 1)[1] for r in failed] == ["DSCF0003.JPG"]

    # It has no output of its own; its run says where it was going: out/day2, as its shoot's
    # day2 folder. A run that says nothing (an older catalog) goes where the recipe's outputs
    # from its shoot went.
    dry = studio.cli("rerun", "--failed", "--dry-run")
    assert "DSCF0003.JPG" in dry.output and "failed" in dry.output
    assert str(studio.out / "day2") in dry.output
    with sqlite3.connect(studio.catalog) as con:
        con.execute("UPDATE runs SET output_dir = NULL WHERE status = 'failed'")
    con.close()
    older = studio.cli("rerun", "--failed", "--dry-run").output
    assert str(studio.out) in older and str(studio.out / "day2") not in older
    with sqlite3.connect(studio.catalog) as con:
        con.execute("UPDATE runs SET output_dir = ? WHERE status = 'failed'",
                    [str(studio.out / "day2")])
    con.close()
    now = studio.cli("rerun", "--failed", "--now")
    assert now.exit_code == 0, now.output
    assert "1 done, 0 skipped, 0 failed" in now.output
    assert "ETA" not in now.output and "\r" not in now.output  # no bar when not a terminal
    assert (studio.out / "day2" / "DSCF0003_tint.jpg").exists()  # where the shoot's day2 went
    assert studio.runs()[-1]["status"] == "done"
    assert "nothing to re-run" in studio.cli("rerun", "--failed").output


def test_a_run_with_no_known_output_folder_needs_out(studio):
    studio.run_all(PB_TINT_FAIL_WIDTH="320")  # DSCF0001 fails: it has no output anywhere
    studio.recipe("other", 0.2)
    # Its run says where its output was going ...
    assert str(studio.out) in studio.cli("rerun", "--recipe", "other", "--dry-run",
                                         studio.photos[0]).output
    # ... unless the catalog is older than that record.
    with sqlite3.connect(studio.catalog) as con:
        con.execute("UPDATE runs SET output_dir = NULL")
    con.close()
    result = studio.cli("rerun", "--recipe", "other", studio.photos[0])
    assert result.exit_code == 1
    assert "cannot re-run DSCF0001.JPG [other]: no output folder is known for it: pass --out DIR" \
        in result.output
    with_out = studio.cli("rerun", "--recipe", "other", "--now", "--out", studio.root / "o2",
                          studio.photos[0])
    assert with_out.exit_code == 0 and (studio.root / "o2" / "DSCF0001_other.jpg").exists()


def test_a_changed_model_is_stale_and_the_rerun_uses_the_new_model(studio):
    assert studio.run_all().exit_code == 0
    # The config's default is model-a, what the runs used: nothing is stale.
    assert "nothing to re-run" in studio.cli("rerun", "--stale").output
    dry = studio.cli("rerun", "--stale", "--dry-run", "--model", "test/model-b")
    assert dry.output.count("stale: model changed") == 4 and "test/model-b" in dry.output
    now = studio.cli("rerun", "--stale", "--now", "--model", "test/model-b", "--camera", "canon")
    assert now.exit_code == 0 and "1 done" in now.output
    latest = studio.runs()[-1]
    assert latest["model_id"] == "test/model-b" and latest["path"].endswith("IMG_0002.JPG")


def test_a_new_recipe_runs_over_a_selection_of_photos_never_run_with_it(studio):
    assert studio.run_all().exit_code == 0
    studio.recipe("tint-strong", 0.9)
    dry = studio.cli("rerun", "--recipe", "tint-strong", "--since", "2026-03-01",
                     "--until", "2026-03-01", "--dry-run")
    rows = [line for line in dry.output.splitlines() if ".JPG" in line]
    assert len(rows) == 1 and rows[0].startswith("IMG_0002.JPG")  # taken that day
    now = studio.cli("rerun", "--recipe", "tint-strong", "--folder", studio.shoot / "day2", "--now")
    assert now.exit_code == 0 and "1 done" in now.output
    assert (studio.out / "day2" / "DSCF0003_tint-strong.jpg").exists()


def test_a_deleted_recipe_cannot_be_rerun(studio):
    studio.recipe("gone", 0.2)
    assert studio.cli("run", studio.photos[0], "--recipe", "gone", "--model", "test/model-a",
                      "--out", studio.out).exit_code == 0
    (studio.recipes / "gone.toml").unlink()
    result = studio.cli("rerun", "--all", "--force")
    assert "cannot re-run DSCF0001.JPG [gone]: recipe 'gone' no longer exists" in result.output
    assert result.exit_code == 1


def test_forced_enqueue_keeps_the_queues_own_deduplication(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    queue = RunQueue(cat)
    fid = cat.register_file(sha256="ab" * 32, path=tmp_path / "a.jpg", size=1, mtime=0.0)
    args = dict(file_id=fid, recipe="r", fingerprint="f", model_id="m", output_dir="/o")
    first = queue.enqueue(**args)
    assert not queue.is_forced(first)
    assert queue.enqueue(**args, force=True) is None  # queued already: not twice
    cat.db.execute("UPDATE runs SET status = 'done' WHERE id = ?", [first])
    assert queue.enqueue(**args) is None  # done: the daemon's own enqueue still skips it
    forced = queue.enqueue(**args, force=True)
    assert forced and forced != first and queue.is_forced(forced)
    assert queue.claim()["id"] == forced


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_a_bar_with_eta_only_on_a_terminal(capsys):
    terminal = _Terminal()
    with Progress(4, "re-running", stream=terminal) as bar:
        bar.advance(current="IMG_0001.JPG")
        bar.echo("done     IMG_0001.JPG")
    drawn = terminal.getvalue()
    assert "re-running" in drawn and "1/4" in drawn and "ETA" in drawn
    assert "done     IMG_0001.JPG" in drawn

    plain = io.StringIO()
    with Progress(4, "re-running", stream=plain) as bar:
        bar.advance()
    assert plain.getvalue() == "" and bar.bar is None


def test_a_rerun_over_an_empty_catalog_has_nothing_to_do(studio):
    result = studio.cli("rerun", "--all", "--dry-run")
    assert result.exit_code == 0 and "nothing to re-run" in result.output
    assert json.loads(studio.cli("catalog", "ls", "--json").output) == []


def _take(studio, name="DSCF0001_tint.jpg"):
    from photobatch.plugins.metadata import read_record

    return int(read_record(studio.out / name)["Seed"]), _pixels(studio.out / name)


def test_rerun_with_another_seed_gives_another_take_that_later_runs_keep(studio):
    from photobatch.daemon.session import derive_seed

    photo = studio.photos[0]
    assert studio.cli("run", photo, "--recipe", "tint", "--model", "test/model-a",
                      "--out", studio.out).exit_code == 0
    first_seed, first = _take(studio)
    assert studio.runs()[0]["seed_source"] == "derived"
    chosen = (first_seed + 7) % 2**32

    dry = studio.cli("rerun", photo, "--recipe", "tint", "--seed", chosen, "--dry-run")
    assert "another seed" in dry.output and str(chosen) in dry.output and len(studio.runs()) == 1
    # An up-to-date output is redone: asking for a seed is asking for it to run.
    now = studio.cli("rerun", photo, "--recipe", "tint", "--seed", chosen, "--now")
    assert now.exit_code == 0, now.output
    seed, take = _take(studio)
    assert seed == chosen and studio.runs()[-1]["seed_source"] == "chosen"
    assert not np.array_equal(take, first)
    assert sorted(p.name for p in studio.out.iterdir()) == ["DSCF0001_tint.jpg"]  # replaced

    # The recipe changes: the stale output is redone with the seed chosen for this photo.
    studio.recipe("tint", 0.5)
    assert studio.cli("rerun", "--stale", "--now").exit_code == 0
    runs = [r for r in studio.runs() if r["path"].endswith("DSCF0001.JPG")]
    assert (runs[-1]["seed"], runs[-1]["seed_source"]) == (chosen, "chosen")
    assert _take(studio)[0] == chosen
    # So does a plain forced run of the photo.
    assert studio.cli("run", photo, "--recipe", "tint", "--model", "test/model-a", "--out",
                      studio.out, "--force").exit_code == 0
    assert studio.runs()[-1]["seed"] == chosen

    # Back to the recipe's own seed: the one derived from the photo and the recipe version.
    back = studio.cli("rerun", photo, "--recipe", "tint", "--seed", "recipe", "--now")
    assert back.exit_code == 0, back.output
    last = studio.runs()[-1]
    assert last["seed_source"] == "derived"
    assert last["seed"] == derive_seed(_sha(studio, photo), last["recipe_fingerprint"])
    assert studio.cli("run", photo, "--recipe", "tint", "--model", "test/model-a", "--out",
                      studio.out, "--force").exit_code == 0
    assert studio.runs()[-1]["seed"] == last["seed"]  # the choice ended


def _sha(studio, photo):
    from photobatch.catalog.hashing import file_sha256

    return file_sha256(photo)


def test_new_seeds_are_drawn_per_photo_queued_and_recorded(studio):
    assert studio.run_all().exit_code == 0
    before = {r["file_id"]: r["seed"] for r in studio.runs()}
    dry = studio.cli("rerun", "--all", "--seed", "new", "--dry-run")
    assert dry.output.count("new (random)") == 3 and len(studio.runs()) == 3
    queued = studio.cli("rerun", "--all", "--seed", "new")
    assert "queued 3 run(s) (3 another seed)" in queued.output
    waiting = [r for r in studio.runs() if r["status"] == "queued"]
    assert len(waiting) == 3 and all(r["seed_source"] == "chosen" for r in waiting)
    assert len({r["seed"] for r in waiting}) == 3  # drawn for each photo
    assert studio.daemon_once() == 0
    done = {r["file_id"]: r for r in studio.runs()[3:]}
    for run in waiting:
        assert (done[run["file_id"]]["seed"], done[run["file_id"]]["status"]) == (run["seed"], "done")
        assert run["seed"] != before[run["file_id"]]
    record_seeds = {_take(studio, name)[0] for name in studio.outputs()}
    assert record_seeds == {r["seed"] for r in waiting}


def test_takes_keep_their_own_files_beside_the_output_until_one_is_picked(studio):
    # The recipe names outputs "{stem}_{recipe}", without {seed}: takes would write over
    # each other (and over the photo's output), so each gets its seed in its name.
    photo = studio.photos[0]
    assert studio.cli("run", photo, "--recipe", "tint", "--model", "test/model-a",
                      "--out", studio.out).exit_code == 0
    main_seed, main = _take(studio)
    now = studio.cli("rerun", photo, "--recipe", "tint", "--seed", "new", "--takes", "3", "--now")
    assert now.exit_code == 0 and "3 done" in now.output, now.output
    assert "queued 2 run(s)" in studio.cli("rerun", photo, "--recipe", "tint", "--seed", "new",
                                           "--takes", "2").output
    assert studio.daemon_once() == 0
    takes = studio.runs()[1:]
    assert [r["seed_source"] for r in takes] == ["take"] * 5 and len({r["seed"] for r in takes}) == 5
    assert sorted(p.name for p in studio.out.iterdir()) == sorted(
        ["DSCF0001_tint.jpg"] + [f"DSCF0001_tint_{r['seed']}.jpg" for r in takes])
    for run in takes:  # each file is the take its name says, and the catalog knows it
        assert _take(studio, f"DSCF0001_tint_{run['seed']}.jpg")[0] == run["seed"]
        assert Path(run["output_path"]).name == f"DSCF0001_tint_{run['seed']}.jpg"
    seed, pixels = _take(studio)
    assert seed == main_seed and np.array_equal(pixels, main)  # the output is as it was
    # ... and is still the photo's output to the catalog, its listing and its reruns.
    listing = studio.cli("catalog", "ls").output
    assert "DSCF0001_tint.jpg" in listing and "DSCF0001_tint_" not in listing, listing
    stale = studio.cli("rerun", "--stale", "--dry-run").output
    assert "nothing to re-run" in stale, stale

    # Takes choose nothing: the photo's next run keeps the seed it had.
    assert studio.cli("run", photo, "--recipe", "tint", "--model", "test/model-a", "--out",
                      studio.out, "--force").exit_code == 0
    assert (studio.runs()[-1]["seed"], studio.runs()[-1]["seed_source"]) == (main_seed, "derived")
    # Picking one by its number makes it the photo's output.
    picked = takes[2]["seed"]
    assert studio.cli("rerun", photo, "--recipe", "tint", "--seed", picked, "--now").exit_code == 0
    seed, pixels = _take(studio)
    assert seed == picked
    assert np.array_equal(pixels, _take(studio, f"DSCF0001_tint_{picked}.jpg")[1])
    assert len(list(studio.out.iterdir())) == 6


def test_a_seed_that_is_not_one_is_refused(studio):
    for bad in ("banana", "-1", str(2**32)):
        result = studio.cli("rerun", "--all", "--seed", bad)
        assert result.exit_code == 2
        assert f"'{bad}' is not a seed: give a number from 0 to 4294967295, `new` or `recipe`" in result.output


def test_several_takes_each_with_its_own_seed_and_file_queued_or_now(studio):
    from photobatch.plugins.metadata import read_record

    (studio.recipes / "takes.toml").write_text(RECIPE.format(name="takes", strength=0.3).replace(
        'name = "{stem}_{recipe}"', 'name = "{stem}_{recipe}_{seed}"'))
    photo = studio.photos[0]
    assert studio.cli("run", photo, "--recipe", "takes", "--model", "test/model-a",
                      "--out", studio.out).exit_code == 0
    now = studio.cli("rerun", photo, "--recipe", "takes", "--seed", "new", "--takes", "3", "--now")
    assert now.exit_code == 0 and "3 done" in now.output
    queued = studio.cli("rerun", photo, "--recipe", "takes", "--seed", "new", "--takes", "2")
    assert "queued 2 run(s)" in queued.output  # takes are not one run queued twice
    assert studio.daemon_once() == 0
    runs = studio.runs()
    assert [r["status"] for r in runs] == ["done"] * 6
    assert len({r["seed"] for r in runs}) == 6
    takes = sorted(studio.out.glob("DSCF0001_takes_*.jpg"))
    assert [p.name for p in takes] == sorted(f"DSCF0001_takes_{r['seed']}.jpg" for r in runs)
    for take in takes:  # each file is the take its name says
        assert read_record(take)["Seed"] == take.stem.rsplit("_", 1)[1]
    refused = studio.cli("rerun", photo, "--recipe", "takes", "--takes", "2")
    assert refused.exit_code == 2 and "--takes needs --seed new" in refused.output
