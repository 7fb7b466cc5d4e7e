"""``[[watch.export]]``: a watch folder's exports (a client's web folder, a proofing gallery)
made again by the daemon each time it has caught up, from the folder's outputs."""

from __future__ import annotations

import logging

import pytest
from PIL import Image

from photobatch.daemon.config import ConfigError, ExportSpec, parse_config
from photobatch.daemon.samples import write_sample_photo
from tests.test_watch_daemon import Workspace, run_in_process_while, wait_for


@pytest.fixture()
def ws(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    yield workspace
    workspace.stop_all()


def _config(tmp_path, *exports):
    return parse_config({"watch": [{"path": str(tmp_path / "inbox"), "recipes": ["x"],
                                    "output": str(tmp_path / "out"), "export": list(exports)}]})


def test_export_tables_are_read_with_their_options_as_the_command_takes_them(tmp_path):
    config = _config(tmp_path, {"exporter": "files", "out": str(tmp_path / "web"),
                                "long-edge": 2048, "sharpen": "screen", "zip": True})
    (spec,) = config.watch[0].exports
    assert spec == ExportSpec("files", tmp_path / "web",
                              (("long_edge", 2048), ("sharpen", "screen"), ("zip", True)))
    assert spec.describe() == f"export files -> {tmp_path / 'web'} (--long-edge 2048 --sharpen screen --zip)"
    (_, same), = config.app_settings()["auto_exports"]
    assert same is spec
    with pytest.raises(ConfigError, match=r"watch\[0\].export\[0\] needs exporter .* and out"):
        _config(tmp_path, {"exporter": "files"})
    with pytest.raises(ConfigError, match=r"watch\[0\].export\[0\].long_edge must be a value"):
        _config(tmp_path, {"exporter": "files", "out": "/x", "long_edge": [1, 2]})
    with pytest.raises(ConfigError, match=r"export\[0\].out .*inbox.web is inside the watched folder"):
        _config(tmp_path, {"exporter": "files", "out": str(tmp_path / "inbox" / "web")})


def test_an_export_the_exporter_cannot_run_stops_the_daemon_before_it_starts(ws):
    from photobatch.daemon import service

    base = ws.config.read_text()
    for table, message in (
        ('exporter = "slideshow"\nout = "/tmp/x"\n', "exporter 'slideshow' is not there (known: "),
        ('exporter = "files"\nout = "/tmp/x"\nlong_side = 2048\n',
         "files has no option long_side (it has: bit_depth, color_space"),
        ('exporter = "files"\nout = "/tmp/x"\nsharpen = "paper"\n',
         "[[watch.export]] files's sharpen: 'paper' is not one of 'none', 'screen', 'matte', 'glossy'."),
    ):
        ws.config.write_text(base + "[[watch.export]]\n" + table)
        with pytest.raises(ConfigError) as caught:
            service.WatchService(ws.config, ws.catalog).build_app(service.load_config(ws.config))
        assert message in str(caught.value)


def test_the_daemon_makes_the_folders_exports_again_after_each_shoot(ws, monkeypatch, caplog):
    from photobatch.daemon import service

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    monkeypatch.setattr(service, "CAUGHT_UP_SECONDS", 0.5)
    caplog.set_level(logging.INFO)
    web, proofs = ws.root / "web", ws.root / "proofs"
    ws.config.write_text(ws.config.read_text() + (
        f'[[watch.export]]\nexporter = "files"\nout = "{web}"\nlong_edge = 64\n'
        f'name = "Shoot-{{stem}}"\n'
        f'[[watch.export]]\nexporter = "gallery"\nout = "{proofs}"\ntitle = "Live"\n'))
    write_sample_photo(ws.inbox / "IMG_0001.JPG", size=(160, 120), seed=1)
    daemon = service.WatchService(ws.config, ws.catalog)

    def two_bursts():
        assert wait_for(lambda: (web / "Shoot-IMG_0001.jpg").is_file()
                        and (proofs / "index.html").is_file(), 60), caplog.text
        write_sample_photo(ws.inbox / "IMG_0002.JPG", size=(160, 120), seed=2)
        assert wait_for(lambda: (web / "Shoot-IMG_0002.jpg").is_file()
                        and "IMG_0002" in (proofs / "index.html").read_text(), 60), caplog.text

    run_in_process_while(daemon, two_bursts)
    assert max(Image.open(web / "Shoot-IMG_0001.jpg").size) == 64
    assert "<title>Live</title>" in (proofs / "index.html").read_text()
    # The second burst wrote only its new photo: the first one's file was found unchanged.
    assert f"export files -> {web} (--long-edge 64 --name 'Shoot-{{stem}}'): exported 2 file(s) " \
           f"to {web} (1 written, 1 unchanged)" in caplog.text
    assert "(3 picture(s) made, 3 reused)" in caplog.text  # the gallery made the new one's only


def test_status_shows_how_each_export_went_last(ws, monkeypatch, caplog):
    from photobatch.daemon import service
    from photobatch.daemon.status import collect_status, format_status

    monkeypatch.setenv("PB_TEST_RUNNER_SECONDS", "0.02")
    monkeypatch.setattr(service, "CAUGHT_UP_SECONDS", 0.5)
    web, blocked = ws.root / "web", ws.root / "blocked"
    blocked.write_text("a file where a folder should be")
    ws.config.write_text(ws.config.read_text() + (
        f'[[watch.export]]\nexporter = "files"\nout = "{web}"\n'
        f'[[watch.export]]\nexporter = "files"\nout = "{blocked}"\n'))
    write_sample_photo(ws.inbox / "IMG_0001.JPG", size=(160, 120), seed=1)
    daemon = service.WatchService(ws.config, ws.catalog)
    caplog.set_level(logging.INFO)
    run_in_process_while(daemon, lambda: wait_for(
        lambda: f"export files -> {blocked} failed" in caplog.text
        and f"export files -> {web}: exported" in caplog.text, 60))
    text = format_status(collect_status(ws.catalog))
    assert f"export   files -> {web}, " in text and f"ago: exported 1 file(s) to {web} (1 written" in text
    assert f"export   files -> {blocked}, " in text and "ago: failed: cannot write to " in text


def test_watch_check_lists_the_exports_and_where_they_cannot_write(ws):
    from click.testing import CliRunner

    from photobatch.daemon.cli import main

    web = ws.root / "web"
    ws.config.write_text(ws.config.read_text() + (
        f'[[watch.export]]\nexporter = "files"\nout = "{web}"\nlong_edge = 2048\n'))
    said = CliRunner().invoke(main, ["--config", str(ws.config), "--catalog", str(ws.catalog),
                                     "watch", "--check"])
    assert said.exit_code == 0, said.output
    assert any(line.startswith(f"  export files -> {web} (--long-edge 2048) (after each shoot), ")
               and line.endswith(" free") for line in said.output.splitlines()), said.output
    in_the_way = ws.root / "nas"
    in_the_way.write_text("a file where the share's folder should be")
    ws.config.write_text(ws.config.read_text().replace(str(web), str(in_the_way / "web")))
    said = CliRunner().invoke(main, ["--config", str(ws.config), "--catalog", str(ws.catalog),
                                     "watch", "--check"])
    assert said.exit_code == 1 and f"{in_the_way / 'web'} cannot be made: {in_the_way} is a file" in said.output


def test_an_export_thread_leaves_no_catalog_connection_open(tmp_path):
    from photobatch.daemon.app import App
    from photobatch.plugins.builtin.auto_export import run_exports

    spec = ExportSpec("files", tmp_path / "web", (("long_edge", 64),))
    app = App(catalog_path=tmp_path / "catalog.db", auto_exports=[(tmp_path / "out", spec)])
    try:
        app.catalog.db.execute("SELECT 1")  # this thread's own connection
        for _ in range(3):  # a thread per catch-up, each with a connection of its own
            assert len(run_exports(app, wait=True)) == 1
        assert len(app._opened) == 1  # only this thread's is left: theirs went with them
    finally:
        app.close()
