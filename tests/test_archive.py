"""``[[watch]] archive``: originals move out of the watch folder once done, as Lightroom's Auto
Import moves them; the inbox stays an inbox."""

from __future__ import annotations

import errno
import hashlib
import logging

import pytest

from photobatch.daemon import archive
from photobatch.daemon.config import ConfigError, parse_config
from photobatch.daemon.samples import write_sample_photo
from tests.test_watch_daemon import Workspace, run_in_process_while, wait_for


@pytest.fixture()
def ws(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    yield workspace
    workspace.stop_all()


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _with_archive(ws, template: str) -> None:
    ws.config.write_text(ws.config.read_text() + f'archive = "{template}"\n')


def test_the_template_and_where_it_points_are_checked(tmp_path):
    def config(template, path=tmp_path / "inbox"):
        return parse_config({"watch": [{"path": str(path), "recipes": ["x"],
                                        "output": str(tmp_path / "out"), "archive": template}]})

    assert config(str(tmp_path / "originals" / "{year}" / "{date}")).watch[0].archive
    with pytest.raises(ConfigError, match=r"watch\[0\].archive has an unknown token \{shoot\}"):
        config(str(tmp_path / "originals" / "{shoot}"))
    with pytest.raises(ConfigError, match=r"watch\[0\].archive must be outside the watched folder"):
        config(str(tmp_path / "inbox" / "done" / "{date}"))
    with pytest.raises(ConfigError, match=r"watch\[0\].archive must be outside the watched folder"):
        config(str(tmp_path / "out" / "{date}"))
    summary = {"date_taken": "2026-06-21T19:42:10+02:00", "model": "X-T5"}
    folder = archive.archive_folder(str(tmp_path / "o" / "{year}" / "{date}_{camera}"), summary,
                                    tmp_path / "IMG_1.JPG")
    assert folder == tmp_path / "o" / "2026" / "2026-06-21_X-T5"
    by_shoot = str(tmp_path / "o" / "{year}" / "{folder}")
    assert archive.archive_folder(by_shoot, summary, tmp_path / "in" / "wedding" / "day1" / "a.jpg",
                                  tmp_path / "in") == tmp_path / "o" / "2026" / "wedding" / "day1"
    assert archive.archive_folder(by_shoot, summary, tmp_path / "in" / "a.jpg",
                                  tmp_path / "in") == tmp_path / "o" / "2026"


def test_done_photos_move_to_the_archive_with_their_sidecars_and_the_catalog_follows(
        ws, monkeypatch, caplog):
    from photobatch.daemon import service

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    caplog.set_level(logging.INFO)
    originals = ws.root / "originals"
    _with_archive(ws, f"{originals}/{{year}}/{{date}}")
    shoot = ws.inbox / "wedding"
    photo = write_sample_photo(shoot / "IMG_0001.JPG", size=(96, 64), date_taken="2026:06:21 19:42:10")
    sidecar = shoot / "IMG_0001.xmp"
    sidecar.write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    broken = shoot / "IMG_0002.JPG"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")  # fails: it stays to be seen
    expected_sha = _sha(photo)
    daemon = service.WatchService(ws.config, ws.catalog)

    def wait_for_the_move():
        assert wait_for(lambda: "archived IMG_0001.JPG, IMG_0001.xmp" in caplog.text, 30), caplog.text
        assert wait_for(lambda: ws.query("SELECT count(*) FROM runs WHERE status = 'failed'")[0][0], 30)

    run_in_process_while(daemon, wait_for_the_move)
    day = originals / "2026" / "2026-06-21"
    assert sorted(p.name for p in day.iterdir()) == ["IMG_0001.JPG", "IMG_0001.xmp"]
    assert _sha(day / "IMG_0001.JPG") == expected_sha  # the same bytes
    assert sorted(p.name for p in shoot.iterdir()) == ["IMG_0002.JPG"]  # the failure stays
    # The catalog follows the photo; its output stays where it went (the shoot's subfolder).
    assert ws.query("SELECT path FROM files WHERE sha256 = ?", [expected_sha]) == [(str(day / "IMG_0001.JPG"),)]
    assert (ws.out / "wedding" / "IMG_0001_quick.jpg").is_file()


def test_another_photo_of_that_name_in_the_archive_gets_a_numbered_name(ws, monkeypatch, caplog):
    from photobatch.daemon import service

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    caplog.set_level(logging.INFO)
    originals = ws.root / "originals"
    _with_archive(ws, f"{originals}/{{date}}")
    day = originals / "2026-06-21"
    earlier = write_sample_photo(day / "IMG_0001.JPG", size=(96, 64), seed=1)  # another card's
    (day / "IMG_0001-1.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")  # -1 is taken
    photo = write_sample_photo(ws.inbox / "IMG_0001.JPG", size=(96, 64), seed=2,
                               date_taken="2026:06:21 10:00:00")
    (ws.inbox / "IMG_0001.JPG.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    before, expected = _sha(earlier), _sha(photo)
    daemon = service.WatchService(ws.config, ws.catalog)
    run_in_process_while(daemon, lambda: wait_for(lambda: "archived IMG_0001.JPG" in caplog.text, 30))
    assert _sha(earlier) == before  # never overwritten
    assert _sha(day / "IMG_0001-2.JPG") == expected and (day / "IMG_0001-2.JPG.xmp").is_file()
    assert not photo.exists() and not (ws.inbox / "IMG_0001.JPG.xmp").exists()
    assert (f"archived IMG_0001.JPG, IMG_0001.JPG.xmp -> {day} as IMG_0001-2.JPG "
            "(IMG_0001.JPG there is another photo)") in caplog.text
    assert ws.query("SELECT path FROM files WHERE sha256 = ?", [expected]) == [(str(day / "IMG_0001-2.JPG"),)]


def test_archive_names_number_a_clash_and_know_a_copy_under_a_numbered_name(tmp_path):
    inbox, target = tmp_path / "inbox", tmp_path / "archive"
    photo = write_sample_photo(inbox / "IMG_0001.JPG", size=(32, 24), seed=2)
    sidecar = inbox / "IMG_0001.xmp"
    sidecar.write_text("<x/>")
    moving = [photo, sidecar]
    assert archive.archive_names(moving, "IMG_0001", target) == {photo: "IMG_0001.JPG", sidecar: "IMG_0001.xmp"}
    write_sample_photo(target / "IMG_0001.JPG", size=(32, 24), seed=1)
    (target / "IMG_0001-1.CR3.xmp").write_text("<x/>")  # IMG_0001-1 is someone's: a sidecar says so
    assert archive.archive_names(moving, "IMG_0001", target) == {photo: "IMG_0001-2.JPG", sidecar: "IMG_0001-2.xmp"}
    (target / "IMG_0001-2.JPG").write_bytes(photo.read_bytes())  # archived before, renamed
    with pytest.raises(archive.NotArchived, match="the same photo is archived already as .*IMG_0001-2.JPG"):
        archive.archive_names(moving, "IMG_0001", target)


def test_the_same_photo_dropped_again_is_not_run_again_nor_archived_twice(ws, monkeypatch, caplog):
    from photobatch.daemon import service

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    caplog.set_level(logging.INFO)
    originals = ws.root / "originals"
    _with_archive(ws, f"{originals}/{{date}}")
    photo = write_sample_photo(ws.inbox / "IMG_0001.JPG", size=(96, 64), date_taken="2026:06:21 10:00:00")
    data = photo.read_bytes()
    daemon = service.WatchService(ws.config, ws.catalog)

    def drop_it_again():
        assert wait_for(lambda: "archived IMG_0001.JPG" in caplog.text, 30), caplog.text
        (ws.inbox / "IMG_0001.JPG").write_bytes(data)  # the card copied in a second time
        assert wait_for(lambda: "archived already" in caplog.text, 30), caplog.text

    run_in_process_while(daemon, drop_it_again)
    output = ws.out / "IMG_0001_quick.jpg"
    assert f"not queued: IMG_0001.JPG [quick] is done already -> {output}" in caplog.text
    assert ws.query("SELECT count(*) FROM runs WHERE status = 'done'") == [(1,)]
    archived = originals / "2026-06-21" / "IMG_0001.JPG"
    assert (f"IMG_0001.JPG stays in {ws.inbox}: the same photo is archived already as "
            f"{archived}, which the catalog keeps (this copy can be deleted)") in caplog.text
    assert (ws.inbox / "IMG_0001.JPG").read_bytes() == data  # kept: nothing is deleted
    assert sorted(p.name for p in (originals / "2026-06-21").iterdir()) == ["IMG_0001.JPG"]
    assert ws.query("SELECT path FROM files") == [(str(archived),)]  # deleting the copy is safe
    daemon._archive(ws.inbox / "IMG_0001.JPG")  # asked again (each catch-up scan does): said once
    daemon.intake(ws.inbox / "IMG_0001.JPG")  # a scan finds the copy again: it stays a copy
    assert caplog.text.count("archived already") == 1
    assert ws.query("SELECT path FROM files") == [(str(archived),)]


def test_across_disks_the_copy_is_checked_before_the_original_goes(tmp_path, monkeypatch):
    photo = write_sample_photo(tmp_path / "inbox" / "IMG_0001.JPG", size=(64, 48))
    data = photo.read_bytes()
    real_link = archive.os.link

    def other_disk(src, dst):
        if str(src) == str(photo):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(src, dst)

    monkeypatch.setattr(archive.os, "link", other_disk)
    moved = archive.move_into(photo, tmp_path / "nas" / "2026")
    assert moved.read_bytes() == data and not photo.exists()
    assert [p.name for p in moved.parent.iterdir()] == ["IMG_0001.JPG"]  # no partial left
    # A copy that comes out different is never taken for the original.
    second = write_sample_photo(tmp_path / "inbox" / "IMG_0002.JPG", size=(64, 48), seed=2)
    photo = second
    monkeypatch.setattr(archive, "file_sha256", lambda path: "x" if ".partial" in str(path) else "y")
    with pytest.raises(OSError, match="differs from it"):
        archive.move_into(second, tmp_path / "nas" / "2026")
    assert second.is_file() and not (tmp_path / "nas" / "2026" / "IMG_0002.JPG").exists()


def test_a_raw_and_jpeg_pair_moves_together_once_the_raw_is_done(ws, monkeypatch, caplog):
    from photobatch.daemon import service
    from photobatch.daemon.sample_formats import write_sample_dng

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    caplog.set_level(logging.INFO)
    originals = ws.root / "originals"
    _with_archive(ws, f"{originals}/{{camera}}")
    write_sample_dng(ws.inbox / "IMG_0005.DNG")
    write_sample_photo(ws.inbox / "IMG_0005.JPG", size=(96, 64))  # the camera's JPEG: left out
    daemon = service.WatchService(ws.config, ws.catalog)
    run_in_process_while(daemon, lambda: wait_for(lambda: "archived" in caplog.text, 60))
    [folder] = originals.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["IMG_0005.DNG", "IMG_0005.JPG"]
    assert not list(ws.inbox.iterdir())
    assert ws.query("SELECT count(*) FROM files WHERE path LIKE ?", [f"{folder}/%"]) == [(2,)]


def test_photos_done_before_the_archive_was_set_up_move_at_the_next_start(ws, monkeypatch, caplog):
    from photobatch.daemon import service

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    caplog.set_level(logging.INFO)
    for i in range(2):
        write_sample_photo(ws.inbox / f"IMG_000{i}.JPG", size=(96, 64), seed=i)
    assert ws.once().returncode == 0 and ws.done_count() == 2  # no archive yet: they stay
    assert len(list(ws.inbox.iterdir())) == 2
    originals = ws.root / "originals"
    _with_archive(ws, f"{originals}/{{date}}")
    daemon = service.WatchService(ws.config, ws.catalog)
    run_in_process_while(daemon, lambda: wait_for(lambda: caplog.text.count("archived") == 2, 30))
    assert not list(ws.inbox.iterdir()) and len(list(originals.rglob("*.JPG"))) == 2
    assert ws.done_count() == 2  # moved, not run again


def test_watch_check_shows_where_done_photos_go(ws):
    from click.testing import CliRunner

    from photobatch.daemon.cli import main

    _with_archive(ws, f"{ws.root}/originals/{{date}}")
    said = CliRunner().invoke(main, ["--config", str(ws.config), "--catalog", str(ws.catalog),
                                     "watch", "--check"])
    assert said.exit_code == 0, said.output
    assert f"  archive {ws.root}/originals/{{date}} (each photo once done)" in said.output.splitlines()


def test_an_emptied_shoot_folder_goes_once_left_alone_and_only_then(tmp_path):
    import os
    import time

    inbox = tmp_path / "inbox"
    ceremony = inbox / "wedding" / "ceremony"
    ceremony.mkdir(parents=True)
    (ceremony / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # Finder's: empty all the same
    assert archive.remove_emptied_folder(ceremony, inbox, idle_seconds=30) is None  # too fresh
    old = time.time() - 60
    for folder in (ceremony, ceremony.parent):
        os.utime(folder, (old, old))
    (inbox / "wedding" / "reception.JPG").write_bytes(b"x")  # the parent is still in use
    os.utime(inbox / "wedding", (old, old))
    assert archive.remove_emptied_folder(ceremony, inbox, idle_seconds=30) is False
    assert not ceremony.exists() and (inbox / "wedding" / "reception.JPG").is_file()
    (inbox / "wedding" / "reception.JPG").unlink()
    os.utime(inbox / "wedding", (old, old))
    assert archive.remove_emptied_folder(inbox / "wedding", inbox, idle_seconds=30) is True
    assert inbox.is_dir() and list(inbox.iterdir()) == []  # the watch folder itself stays
    assert archive.remove_emptied_folder(inbox, inbox, idle_seconds=0) is False and inbox.is_dir()


def test_the_daemon_leaves_no_empty_shoot_folder_in_the_inbox(ws, monkeypatch, caplog):
    from photobatch.daemon import service

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    monkeypatch.setattr(service, "EMPTIED_FOLDER_IDLE_SECONDS", 0.0)
    monkeypatch.setattr(service, "FOLDER_CHECK_SECONDS", 0.2)
    caplog.set_level(logging.INFO)
    originals = ws.root / "originals"
    _with_archive(ws, f"{originals}/{{folder}}")
    shoot = ws.inbox / "wedding" / "ceremony"
    write_sample_photo(shoot / "IMG_0001.JPG", size=(64, 48))
    broken = ws.inbox / "party" / "IMG_0009.JPG"
    broken.parent.mkdir()
    broken.write_bytes(b"not a photo")  # fails: stays, and so does its folder
    daemon = service.WatchService(ws.config, ws.catalog)
    gone = f"removed the emptied folder {ws.inbox / 'wedding'}"
    run_in_process_while(daemon, lambda: wait_for(
        lambda: any(r.getMessage() == gone for r in caplog.records), 30))
    assert (originals / "wedding" / "ceremony" / "IMG_0001.JPG").is_file()
    assert sorted(p.name for p in ws.inbox.iterdir()) == ["party"] and broken.is_file()
