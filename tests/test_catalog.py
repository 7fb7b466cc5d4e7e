"""The catalog: migrations, WAL, identity by content hash, runs with what they record."""

from __future__ import annotations

import json
import sqlite3

import pytest

from photobatch.catalog.migrations import migrations
from photobatch.catalog.queries import Selection, select_pairs
from photobatch.catalog.store import Catalog


def test_new_catalog_is_migrated_and_in_wal_mode(tmp_path):
    cat = Catalog(tmp_path / "sub" / "catalog.db")
    assert cat.db.journal_mode == "wal"
    assert {"files", "runs"} <= set(cat.db.table_names())
    assert [m.name for m in migrations.applied(cat.db)] == [m.name for m in migrations._migrations]
    cat.close()
    # Reopening applies nothing twice.
    again = Catalog(tmp_path / "sub" / "catalog.db")
    assert len(migrations.applied(again.db)) == len(migrations._migrations) >= 2
    assert migrations.pending(again.db) == []


def test_same_content_under_a_new_name_is_one_file(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    first = cat.register_file(sha256="ab" * 32, path=tmp_path / "a.jpg", size=10, mtime=1.0,
                              metadata={"make": "Canon", "model": "EOS R5"})
    second = cat.register_file(sha256="ab" * 32, path=tmp_path / "renamed.jpg", size=10, mtime=2.0)
    assert first == second
    row = cat.file_by_sha("ab" * 32)
    assert row["path"] == str(tmp_path / "renamed.jpg")
    assert row["camera_make"] == "Canon"  # kept: the second registration had no metadata
    assert cat.find_file("abababab")["id"] == first


def test_a_file_is_found_by_its_name_when_only_one_has_it(tmp_path, monkeypatch):
    cat = Catalog(tmp_path / "c.db")
    one = cat.register_file(sha256="01" * 32, path=tmp_path / "a" / "IMG_0420.JPG", size=1,
                            mtime=0.0)
    cat.register_file(sha256="02" * 32, path=tmp_path / "a" / "IMG_0421.JPG", size=1, mtime=0.0)
    cat.register_file(sha256="03" * 32, path=tmp_path / "a" / "IMGX0420.JPG", size=1, mtime=0.0)
    cat.register_file(sha256="04" * 32, path=tmp_path / "a" / "img_0420.jpg", size=1, mtime=0.0)
    monkeypatch.chdir(tmp_path)  # not the photo's folder: the name is no path from here
    assert cat.find_file("IMG_0420.JPG")["id"] == one
    # _ is no wildcard and case counts: IMGX0420.JPG and img_0420.jpg are other files.
    assert [r["id"] for r in cat.files_named("IMG_0420.JPG")] == [one]
    assert cat.find_file("0420.JPG") is None and cat.files_named("a/IMG_0420.JPG") == []
    two = cat.register_file(sha256="05" * 32, path=tmp_path / "b" / "IMG_0420.JPG", size=1,
                            mtime=0.0)
    assert cat.find_file("IMG_0420.JPG") is None
    assert [r["id"] for r in cat.files_named("IMG_0420.JPG")] == [one, two]


def test_run_lifecycle_records_everything(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    fid = cat.register_file(sha256="cd" * 32, path=tmp_path / "a.jpg", size=1, mtime=0.0)
    run = cat.start_run(file_id=fid, recipe="color-correct", fingerprint="f" * 64,
                        params={"strength": 0.2}, seed=42, model_id="/m", runner="img2img")
    assert cat.finished_run(fid, "f" * 64, "/m") is None
    cat.finish_run(run, output_path=tmp_path / "o.jpg", output_sha256="e" * 64,
                   timings={"read": 0.123456, "run": 1.5}, model_hash="abc", device="cpu")
    done = cat.finished_run(fid, "f" * 64, "/m")
    assert done["id"] == run and done["status"] == "done" and done["seed"] == 42
    assert json.loads(done["timings"]) == {"read": 0.1235, "run": 1.5}
    assert json.loads(done["params"]) == {"strength": 0.2}
    # Another model or recipe version is not "done".
    assert cat.finished_run(fid, "f" * 64, "/other") is None
    assert cat.finished_run(fid, "0" * 64, "/m") is None
    failed = cat.start_run(file_id=fid, recipe="color-correct", fingerprint="f" * 64,
                           params={}, seed=1, model_id="/m", runner="img2img")
    cat.fail_run(failed, error="error while reading a.jpg: truncated", timings={})
    rows = select_pairs(cat.db, Selection())
    assert len(rows) == 1 and rows[0].run["status"] == "failed"
    assert [r["status"] for r in cat.runs_for_file(fid)] == ["done", "failed"]


def test_runs_require_an_existing_file(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    try:
        cat.start_run(file_id=999, recipe="x", fingerprint="f", params={}, seed=1,
                      model_id="m", runner="img2img")
    except sqlite3.IntegrityError:
        return
    raise AssertionError("a run for a missing file was accepted")


def _done_run(cat, fid, tmp_path, name="o.jpg"):
    run = cat.start_run(file_id=fid, recipe="r", fingerprint="f" * 64, params={}, seed=1,
                        model_id="/m", runner="img2img")
    cat.finish_run(run, output_path=tmp_path / name, output_sha256="e" * 64, timings={})
    return run


TAKEN = {"model": "X-T5", "date_taken": "2026-06-21T19:42:10+02:00"}


def test_a_photo_exported_again_over_itself_replaces_its_earlier_version(tmp_path):
    from photobatch.catalog.queries import run_stats, select_files
    from photobatch.catalog.queue import RunQueue
    from photobatch.catalog.store import REPLACED
    from photobatch.catalog.verify import planned_checks

    cat = Catalog(tmp_path / "c.db")
    photo = tmp_path / "in" / "IMG_0001.JPG"
    first = cat.register_file(sha256="01" * 32, path=photo, size=1, mtime=1.0, metadata=TAKEN)
    _done_run(cat, first, tmp_path)
    queued = RunQueue(cat).enqueue(file_id=first, recipe="other", fingerprint="g", model_id="/m",
                                   output_dir="/o")
    # Lightroom exports it again, with the same name, capture time and camera: a new version.
    second = cat.register_file(sha256="02" * 32, path=photo, size=2, mtime=2.0, metadata=TAKEN)
    assert cat.db["files"].get(first)["replaced_by"] == second
    assert [v["id"] for v in cat.versions(second)] == [second, first]
    run = cat.db["runs"].get(queued)  # nothing left to run it on
    assert (run["status"], run["error"]) == ("skipped", REPLACED)
    # The photo is its newest version everywhere a photo is chosen, found, or checked.
    assert [r["id"] for r in select_files(cat.db, Selection())] == [second]
    assert cat.find_file(str(photo))["id"] == second and cat.find_file("IMG_0001.JPG")["id"] == second
    assert [c.file_id for c in planned_checks(cat.db) if c.kind == "original"] == [second]
    assert run_stats(cat.db, Selection())["runs"] == 2  # history keeps the earlier version's runs
    # A third version: the first two are both its earlier ones.
    third = cat.register_file(sha256="03" * 32, path=photo, size=3, mtime=3.0, metadata=TAKEN)
    assert {v["id"] for v in cat.versions(third)} == {first, second, third}
    # The first version's content back in place is the photo again.
    assert cat.register_file(sha256="01" * 32, path=photo, size=1, mtime=4.0) == first
    assert cat.db["files"].get(first)["replaced_by"] is None
    assert [r["id"] for r in select_files(cat.db, Selection())] == [first]


def test_a_name_reused_by_another_photo_is_not_a_new_version(tmp_path):
    from photobatch.catalog.queries import select_files
    from photobatch.catalog.verify import planned_checks, verify

    cat = Catalog(tmp_path / "c.db")
    photo = tmp_path / "in" / "IMG_0001.JPG"
    photo.parent.mkdir()
    photo.write_bytes(b"first shoot")
    old = cat.register_file(sha256="01" * 32, path=photo, size=11, mtime=1.0, metadata=TAKEN)
    _done_run(cat, old, tmp_path)
    # A new card starts at IMG_0001 again: another moment, another photo, outputs its own.
    photo.write_bytes(b"second shoot!")
    new = cat.register_file(sha256="02" * 32, path=photo, size=13, mtime=2.0,
                            metadata={**TAKEN, "date_taken": "2026-09-02T08:00:00+02:00"})
    assert cat.db["files"].get(old)["replaced_by"] is None
    assert {r["id"] for r in select_files(cat.db, Selection())} == {old, new}
    findings = verify([c for c in planned_checks(cat.db) if c.kind == "original"],
                      hasher=lambda p: "02" * 32)
    assert [(f.file_id, f.kind, f.detail) for f in findings] == [
        (old, "original missing", "another photo has its name now (catalogued as a photo of its own)")]
    # Without a capture time to tell, it is another photo too, unless the old one never made
    # an output (content that only failed: nothing of it to keep apart).
    undated = cat.register_file(sha256="03" * 32, path=tmp_path / "in" / "a.png", size=1, mtime=1.0)
    _done_run(cat, undated, tmp_path, "a.jpg")
    failed = cat.register_file(sha256="04" * 32, path=tmp_path / "in" / "b.png", size=1, mtime=1.0)
    assert cat.register_file(sha256="05" * 32, path=tmp_path / "in" / "a.png", size=2, mtime=2.0)
    complete = cat.register_file(sha256="06" * 32, path=tmp_path / "in" / "b.png", size=2, mtime=2.0)
    assert cat.db["files"].get(undated)["replaced_by"] is None
    assert cat.db["files"].get(failed)["replaced_by"] == complete


def test_an_older_catalog_learns_which_files_were_replaced(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    photo = tmp_path / "IMG_0001.JPG"
    first = cat.register_file(sha256="01" * 32, path=photo, size=1, mtime=1.0, metadata=TAKEN)
    _done_run(cat, first, tmp_path)
    second = cat.register_file(sha256="02" * 32, path=photo, size=2, mtime=2.0, metadata=TAKEN)
    # As a catalog written before m013 has it: no replaced_by column (both rows unmarked).
    cat.db.execute("UPDATE files SET replaced_by = NULL")
    cat.db.execute("UPDATE files SET last_seen = '2026-01-01T00:00:00+00:00' WHERE id = ?", [first])
    cat.db.execute("DROP INDEX idx_files_replaced_by")
    cat.db["files"].transform(drop={"replaced_by"})
    cat.db.execute("DELETE FROM _sqlite_migrations WHERE migration_set = 'photobatch' "
                   "AND name = 'm013_file_replaced_by'")
    cat.close()
    reopened = Catalog(tmp_path / "c.db")
    assert reopened.db["files"].get(first)["replaced_by"] == second
    assert reopened.db["files"].get(second)["replaced_by"] is None


def test_a_new_version_keeps_the_photos_number_and_picked_seed(tmp_path, identity_session):
    from photobatch.daemon.samples import write_sample_photo
    from photobatch.recipes.schema import recipe_from_dict

    recipe = recipe_from_dict({"name": "same", "runner": "identity",
                               "output": {"name": "{seq}_{stem}_{seed}"}})
    photo = write_sample_photo(tmp_path / "in" / "IMG_0001.JPG", size=(96, 64), seed=1)
    first = identity_session.process(photo, recipe, seed=1234)
    assert first.status == "done" and first.output.name == "0001_IMG_0001_1234.jpg"
    write_sample_photo(tmp_path / "v2.jpg", size=(96, 64), seed=2).replace(photo)
    second = identity_session.process(photo, recipe)
    # The edited export is the same photo: number 0001 and the seed picked for it, so the same
    # output file, rewritten (another photo would be 0002 with a seed of its own).
    assert second.status == "done" and second.output == first.output
    assert sorted(p.name for p in first.output.parent.iterdir()) == [first.output.name]
    assert identity_session.app.catalog.db["files"].count == 2


def test_a_file_that_is_no_catalog_is_refused_in_one_line_and_left_as_it_is(tmp_path):
    from click.testing import CliRunner

    from photobatch.catalog.store import CatalogError
    from photobatch.daemon.cli import main

    notes = tmp_path / "notes.db"
    notes.write_text("not a database at all")
    lightroom = tmp_path / "Shoots.lrcat"  # SQLite too: it must not get our tables
    con = sqlite3.connect(lightroom)
    con.execute("CREATE TABLE AgLibraryFile (id_local INTEGER, baseName TEXT)")
    con.commit()
    con.close()
    before = lightroom.read_bytes()
    with pytest.raises(CatalogError, match=r"cannot open the catalog .*notes.db: it is not a database"):
        Catalog(notes)
    with pytest.raises(CatalogError, match=r"Shoots.lrcat is another program's database "
                                           r"\(tables AgLibraryFile\), not a photobatch catalog"):
        Catalog(lightroom)
    assert lightroom.read_bytes() == before
    for path in (notes, lightroom):
        for command in (["catalog", "ls"], ["status"]):
            result = CliRunner().invoke(main, ["--catalog", str(path), *command])
            assert result.exit_code == 1 and result.output.startswith("Error: ") \
                and "Traceback" not in result.output, result.output
    assert lightroom.read_bytes() == before
