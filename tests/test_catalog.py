"""The catalog: migrations, WAL, identity by content hash, runs with what they record."""

from __future__ import annotations

import json
import sqlite3

from photobatch.catalog.migrations import migrations
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
    rows = cat.files_with_latest_runs()
    assert len(rows) == 1 and rows[0]["status"] == "failed"
    assert [r["status"] for r in cat.runs_for_file(fid)] == ["done", "failed"]


def test_runs_require_an_existing_file(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    try:
        cat.start_run(file_id=999, recipe="x", fingerprint="f", params={}, seed=1,
                      model_id="m", runner="img2img")
    except sqlite3.IntegrityError:
        return
    raise AssertionError("a run for a missing file was accepted")
