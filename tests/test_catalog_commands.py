"""``photobatch catalog ls/stats/export/verify/forget`` on a real catalog of a small shoot."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import sqlite3
import time

import pytest
from click.testing import CliRunner

from photobatch.catalog.queries import Selection, parse_when, select_files
from photobatch.catalog.store import Catalog
from photobatch.daemon.cli import main
from photobatch.daemon.csv_export import csv_cell
from photobatch.daemon.samples import write_sample_photo, write_truncated_jpeg

RUNNER = '''
from types import SimpleNamespace

from photobatch.plugins import hookimpl


class Half:
    name = "half"

    def run(self, image, recipe, seed, model):
        out = image.resize((image.width // 2, image.height // 2))
        return SimpleNamespace(image=out, model_id=model, model_hash=None, device="cpu",
                               working_size=out.size)


@hookimpl
def photobatch_runners():
    return [Half()]
'''

RECIPE = '''
name = "half"
runner = "half"
strength = 0.3
steps = 20
[output]
name = "{stem}_{recipe}"
'''


class Shoot:
    """Three photos (one in a subfolder), one truncated file, all run through the catalog."""

    def __init__(self, root):
        self.root = root
        self.shoot, self.out = root / "shoot", root / "out"
        (self.shoot / "day2").mkdir(parents=True)
        plugins, self.recipes = root / "plugins", root / "recipes"
        plugins.mkdir()
        self.recipes.mkdir()
        (plugins / "half_runner.py").write_text(RUNNER)
        (self.recipes / "half.toml").write_text(RECIPE)
        self.plugins = plugins
        self.catalog = root / "catalog.db"
        write_sample_photo(self.shoot / "DSCF0001.JPG", size=(160, 120), seed=1)
        write_sample_photo(self.shoot / "IMG_0002.JPG", size=(120, 160), seed=2, make="Canon",
                           model="Canon EOS R6m2", date_taken="2026:03:01 07:15:00",
                           lens="=HYPERLINK(\"http://x\")")
        write_sample_photo(self.shoot / "day2" / "DSCF0003.JPG", size=(160, 120), seed=3,
                           date_taken="2026:03:02 18:15:00")
        write_truncated_jpeg(self.shoot / "DSCF0004.JPG", self.shoot / "DSCF0001.JPG")
        result = self.cli("run", self.shoot, "--recipe", "half", "--model", "test/model",
                          "--out", self.out)
        assert result.exit_code == 1 and "3 done, 0 skipped, 1 failed" in result.output

    def cli(self, *args):
        base = ["--catalog", self.catalog, "--plugins-dir", self.plugins, "--recipes", self.recipes]
        return CliRunner().invoke(main, [str(a) for a in (*base, *args)], catch_exceptions=False)

    def names(self, *args) -> list[str]:
        rows = json.loads(self.cli("catalog", "ls", "--json", *args).output)
        return sorted(r["path"].rsplit("/", 1)[1] for r in rows)

    def dump(self) -> list[str]:
        con = sqlite3.connect(self.catalog)
        try:
            return list(con.iterdump())
        finally:
            con.close()


@pytest.fixture()
def shoot(tmp_path):
    return Shoot(tmp_path)


ALL = ["DSCF0001.JPG", "DSCF0003.JPG", "DSCF0004.JPG", "IMG_0002.JPG"]


def test_ls_filters_by_camera_date_folder_path_sha_and_status(shoot):
    assert shoot.names() == ALL
    assert shoot.names("--camera", "canon") == ["IMG_0002.JPG"]
    assert shoot.names("--camera", "X-T5") == ["DSCF0001.JPG", "DSCF0003.JPG"]
    # A date alone as --until covers that whole day (taken 07:15).
    assert shoot.names("--since", "2026-03-01", "--until", "2026-03-01") == ["IMG_0002.JPG"]
    assert shoot.names("--since", "2026-06-01", "--until", "2026-06-30") == ["DSCF0001.JPG"]
    # No capture date (the truncated file): when it was imported counts, i.e. just now.
    recent = shoot.names("--since", "1d")
    assert "DSCF0004.JPG" in recent and "IMG_0002.JPG" not in recent
    assert shoot.names("--folder", shoot.shoot / "day2") == ["DSCF0003.JPG"]
    assert shoot.names(shoot.shoot / "IMG_0002.JPG", shoot.shoot / "day2") == [
        "DSCF0003.JPG", "IMG_0002.JPG"]
    sha = json.loads(shoot.cli("catalog", "ls", "--json", "--camera", "canon").output)[0]["sha256"]
    assert shoot.names(sha[:10]) == ["IMG_0002.JPG"]
    assert shoot.names("--failed") == ["DSCF0004.JPG"] == shoot.names("--status", "failed")
    assert shoot.names("--status", "done", "--camera", "x-t5") == ["DSCF0001.JPG", "DSCF0003.JPG"]
    assert shoot.names("--recipe", "nope") == []
    (shoot.recipes / "other.toml").write_text(RECIPE.replace('"half"\nrunner', '"other"\nrunner'))
    never = json.loads(shoot.cli("catalog", "ls", "--json", "--recipe", "other").output)
    assert {r["state"] for r in never} == {"never run"} and len(never) == 4
    table = shoot.cli("catalog", "ls", "--camera", "canon").output
    assert "IMG_0002.JPG" in table and "DSCF0001" not in table
    assert "nothing in the catalog" in shoot.cli("catalog", "ls", "--camera", "leica").output


def test_show_takes_the_file_name_that_ls_prints(shoot, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the name is no path from here
    shown = shoot.cli("catalog", "show", "DSCF0003.JPG")
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith(f"file {shoot.shoot / 'day2' / 'DSCF0003.JPG'}\n")
    assert [line.split(": ", 1)[1] for line in shown.output.splitlines()
            if line.startswith("run ")] == ["half done"]
    # A second DSCF0003.JPG elsewhere (other pixels): the name no longer says which.
    other = shoot.root / "shoot2" / "DSCF0003.JPG"
    other.parent.mkdir()
    write_sample_photo(other, size=(96, 64), seed=9)
    assert shoot.cli("run", other, "--recipe", "half", "--model", "test/model", "--out",
                     shoot.out / "2").exit_code == 0
    both = shoot.cli("catalog", "show", "DSCF0003.JPG")
    assert both.exit_code == 1
    assert "2 files in the catalog are called DSCF0003.JPG; give its path" in both.output
    assert str(other) in both.output and str(shoot.shoot / "day2" / "DSCF0003.JPG") in both.output
    assert shoot.cli("catalog", "show", other).output.startswith(f"file {other}\n")
    assert "is not in the catalog" in shoot.cli("catalog", "show", "DSCF9999.JPG").output


def test_bad_dates_are_one_line_errors(shoot):
    result = shoot.cli("catalog", "ls", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "'last tuesday' is not a date: use 2026-03-01" in result.output
    assert "Traceback" not in result.output
    assert parse_when("7d", now=__import__("datetime").datetime(2026, 3, 8, 12)) == "2026-03-01T12:00:00"
    assert parse_when("2026-03-01 18:30", end=True) == "2026-03-01T18:30:59"


def test_stats_counts_runs_and_reports_time_and_throughput(shoot):
    stats = json.loads(shoot.cli("catalog", "stats", "--json").output)
    assert stats["files"] == 4 and stats["runs"] == 4
    assert stats["by_status"]["done"] == 3 and stats["by_status"]["failed"] == 1
    assert stats["by_recipe"] == {"half": {"queued": 0, "running": 0, "done": 3, "failed": 1,
                                           "skipped": 0}}
    assert stats["processing_seconds"] > 0 and set(stats["stage_seconds"]) >= {"read", "run", "write"}
    assert stats["seconds_per_done_run"] > 0 and stats["done_per_hour"] > 0
    canon = json.loads(shoot.cli("catalog", "stats", "--json", "--camera", "canon").output)
    assert canon["runs"] == 1 and canon["by_status"]["done"] == 1
    text = shoot.cli("catalog", "stats").output
    assert "4 file(s), 4 run(s): 0 queued, 0 running, 3 done, 1 failed, 0 skipped" in text
    assert "photos/hour" in text and "processing time" in text


def test_export_csv_and_json_with_history(shoot, tmp_path):
    result = shoot.cli("catalog", "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert sorted(r["path"].rsplit("/", 1)[1] for r in rows) == ALL
    canon = next(r for r in rows if r["camera_model"] == "Canon EOS R6m2")
    assert canon["status"] == "done" and canon["recipe"] == "half" and canon["seed"].isdigit()
    assert canon["output_path"].endswith("IMG_0002_half.jpg") and float(canon["seconds"]) > 0
    assert json.loads(canon["params"])["strength"] == 0.3
    assert canon["lens"].startswith("'=HYPERLINK")  # a spreadsheet must not run it
    failed = next(r for r in rows if r["status"] == "failed")
    assert "truncated" in failed["error"]

    shoot.cli("run", shoot.shoot / "DSCF0001.JPG", "--recipe", "half", "--model", "test/model",
              "--out", shoot.out, "--force")
    out = tmp_path / "runs.json"
    written = shoot.cli("catalog", "export", "--format", "json", "--all-runs", "--output", out)
    assert "wrote 5 row(s)" in written.output
    history = json.loads(out.read_text())
    assert [r["path"].rsplit("/", 1)[1] for r in history].count("DSCF0001.JPG") == 2
    latest = json.loads(shoot.cli("catalog", "export", "--format", "json").output)
    assert len(latest) == 4 and {r["state"] for r in latest} == {"up to date", "failed"}


def test_csv_cells_defuse_formulas_and_keep_numbers():
    assert csv_cell("=1+1") == "'=1+1" and csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell(-3) == -3 and csv_cell(None) == "" and csv_cell({"a": 1}) == '{"a": 1}'
    assert csv_cell("Canon") == "Canon"


def test_verify_reports_changed_and_missing_files_and_changes_nothing(shoot):
    clean = shoot.cli("catalog", "verify")
    assert clean.exit_code == 0
    assert "checked 4 original(s) and 3 output(s): all as recorded" in clean.output

    edited = shoot.out / "DSCF0001_half.jpg"
    edited.write_bytes(b"edited elsewhere")
    later = time.time() + 120  # edited a while after the run finished
    os.utime(edited, (later, later))
    (shoot.out / "IMG_0002_half.jpg").unlink()
    original = shoot.shoot / "day2" / "DSCF0003.JPG"
    data = bytearray(original.read_bytes())
    data[-10] ^= 0xFF  # same size, other content: only the hash can tell
    original.write_bytes(bytes(data))
    (shoot.shoot / "DSCF0004.JPG").unlink()
    before = shoot.dump()

    result = shoot.cli("catalog", "verify")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith("output changed") and "DSCF0001_half.jpg" in line for line in lines)
    assert any(line.startswith("output missing") and "IMG_0002_half.jpg" in line for line in lines)
    assert any(line.startswith("original changed") and "DSCF0003.JPG" in line and "sha256" in line
               for line in lines)
    assert any(line.startswith("original missing") and "DSCF0004.JPG" in line for line in lines)
    assert "4 difference(s)" in result.output
    quick = json.loads(shoot.cli("catalog", "verify", "--quick", "--json").output)
    # Without reading files, the same-size edit of the original DSCF0003 goes unseen.
    assert sorted(f["kind"] for f in quick) == ["original missing", "output changed", "output missing"]
    assert "after its run finished" in next(f for f in quick if f["kind"] == "output changed")["detail"]
    assert shoot.dump() == before  # verify changed nothing in the catalog


def test_forget_removes_files_and_runs_but_nothing_on_disk(shoot):
    outputs = sorted(p.name for p in shoot.out.iterdir())
    dry = shoot.cli("catalog", "forget", "--dry-run", shoot.shoot / "day2")
    assert "would forget" in dry.output and "DSCF0003.JPG" in dry.output
    assert shoot.names() == ALL

    # A bare name selects that photo in any folder elsewhere (`ls`, `rerun`, `export`), but
    # forgetting goes by exactly what is named: this folder's file of that name only.
    assert "DSCF0003.JPG" in shoot.cli("catalog", "ls", "DSCF0003.JPG").output
    assert "IMG_0002.JPG" not in shoot.cli("catalog", "ls", "DSCF0003.JPG").output
    bare = shoot.cli("catalog", "forget", "DSCF0003.JPG")
    assert "DSCF0003.JPG is not in the catalog" in bare.output and shoot.names() == ALL
    gone = shoot.cli("catalog", "forget", shoot.shoot / "day2", shoot.shoot / "nope.jpg")
    assert "forgot 1 file(s) and 1 run(s); nothing on disk was touched" in gone.output
    assert "nope.jpg is not in the catalog" in gone.output
    assert shoot.names() == ["DSCF0001.JPG", "DSCF0004.JPG", "IMG_0002.JPG"]
    assert (shoot.shoot / "day2" / "DSCF0003.JPG").exists()
    assert sorted(p.name for p in shoot.out.iterdir()) == outputs

    (shoot.shoot / "DSCF0004.JPG").unlink()
    missing = shoot.cli("catalog", "forget", "--missing")
    assert "forgot 1 file(s)" in missing.output
    assert shoot.names() == ["DSCF0001.JPG", "IMG_0002.JPG"]

    cat = Catalog(shoot.catalog)
    [row] = select_files(cat.db, Selection(camera="canon"))
    cat.db.execute("UPDATE runs SET status = 'running' WHERE file_id = ?", [row["id"]])
    cat.close()
    busy = shoot.cli("catalog", "forget", row["sha256"][:12])
    assert busy.exit_code == 1 and "is being processed right now" in busy.output
    assert shoot.names() == ["DSCF0001.JPG", "IMG_0002.JPG"]
    # Left "running" by a `photobatch run` that was killed: nothing holds it up.
    cat = Catalog(shoot.catalog)
    cat.db.execute("UPDATE runs SET worker = ? WHERE file_id = ?",
                   [f"999999999@{socket.gethostname()}", row["id"]])
    cat.close()
    assert "forgot 1 file(s)" in shoot.cli("catalog", "forget", row["sha256"][:12]).output
    assert shoot.names() == ["DSCF0001.JPG"]
    assert shoot.cli("catalog", "forget").exit_code == 2  # says what to forget


def test_locate_finds_a_shoot_moved_outside_photobatch_by_its_content(shoot):
    nas = shoot.root / "nas" / "2026"
    nas.mkdir(parents=True)
    shoot.shoot.rename(nas / "shoot-renamed")  # reorganised in a file manager
    shoot.out.rename(nas / "enhanced")
    (nas / "shoot-renamed" / "IMG_0002.JPG").unlink()  # one is really gone
    decoy = nas / "decoy"
    decoy.mkdir()
    # The same size as DSCF0001.JPG, another content: never taken for it.
    size = (nas / "shoot-renamed" / "DSCF0001.JPG").stat().st_size
    (decoy / "DSCF0001.JPG").write_bytes(b"\0" * size)
    verify = shoot.cli("catalog", "verify")
    assert verify.exit_code == 1 and "`photobatch catalog locate FOLDER` finds them" in verify.output

    dry = shoot.cli("catalog", "locate", nas, "--dry-run")
    assert "would record 3 original(s) and 3 output(s); 1 still missing" in dry.output
    assert shoot.cli("catalog", "verify").exit_code == 1  # a dry run records nothing

    found = shoot.cli("catalog", "locate", nas)
    assert found.exit_code == 1  # IMG_0002.JPG is still missing (its output is found)
    moved = nas / "shoot-renamed"
    assert f"original {shoot.shoot / 'day2' / 'DSCF0003.JPG'} -> {moved / 'day2' / 'DSCF0003.JPG'}" in found.output
    assert "found 3 original(s) and 3 output(s); 1 still missing" in found.output
    paths = dict(sqlite3.connect(shoot.catalog).execute("SELECT path, sha256 FROM files").fetchall())
    assert str(moved / "DSCF0001.JPG") in paths and str(decoy / "DSCF0001.JPG") not in paths
    left = shoot.cli("catalog", "verify").output
    assert "IMG_0002" in left and "DSCF0001" not in left and "DSCF0003" not in left
    # Outputs found again count as done where they are now: nothing to run for them.
    outputs = sqlite3.connect(shoot.catalog).execute(
        "SELECT output_dir FROM runs WHERE status = 'done' AND output_path LIKE '%DSCF0001%'").fetchall()
    assert outputs == [(str(nas / "enhanced"),)]
