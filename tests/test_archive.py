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


def test_a_name_taken_in_the_archive_leaves_the_photo_in_the_inbox(ws, monkeypatch, caplog):
    from photobatch.daemon import service

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    caplog.set_level(logging.INFO)
    originals = ws.root / "originals"
    _with_archive(ws, f"{originals}/{{date}}")
    day = originals / "2026-06-21"
    earlier = write_sample_photo(day / "IMG_0001.JPG", size=(96, 64), seed=1)  # another card's
    photo = write_sample_photo(ws.inbox / "IMG_0001.JPG", size=(96, 64), seed=2,
                               date_taken="2026:06:21 10:00:00")
    before = _sha(earlier)
    daemon = service.WatchService(ws.config, ws.catalog)
    run_in_process_while(daemon, lambda: wait_for(lambda: "exists already in the archive" in caplog.text, 30))
    assert photo.is_file() and _sha(earlier) == before  # neither moved nor overwritten
    assert f"IMG_0001.JPG stays in {ws.inbox}: {day / 'IMG_0001.JPG'} exists already" in caplog.text
    daemon._archive(photo)  # asked again (each catch-up scan does): said once only
    assert caplog.text.count("exists already in the archive") == 1


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
