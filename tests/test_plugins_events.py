"""Events reach listeners; a listener that raises is logged and recorded and never stops the work.

Also the steps hook point: steps plugins select for a recipe run on the full-size result.
A fake runner replaces the built-in one (by disabling it), so these tests need no model.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from photobatch.daemon.app import App
from photobatch.daemon.samples import write_sample_photo, write_truncated_jpeg
from photobatch.daemon.session import Session
from photobatch.plugins import hookimpl
from photobatch.plugins.manager import build_plugin_manager, notify

BUILTIN_RUNNER = "photobatch.plugins.builtin.img2img_runner"


class FakeRunner:
    """Returns a flat mid-grey picture at a small working size, instantly."""

    name = "img2img"

    def run(self, image, recipe, seed, model):
        return SimpleNamespace(image=Image.new("RGB", (64, 48), (128, 128, 128)),
                               model_hash=None, device="cpu")


class FakeRunnerPlugin:
    @hookimpl
    def photobatch_runners(self):
        return [FakeRunner()]


class Recorder:
    """Listens to every event and keeps (event, arguments)."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def photobatch_file_discovered(self, path, sha256):
        self.seen.append(("file_discovered", {"path": path, "sha256": sha256}))

    @hookimpl
    def photobatch_run_started(self, path, recipe, run_id):
        self.seen.append(("run_started", {"path": path, "recipe": recipe, "run_id": run_id}))

    @hookimpl
    def photobatch_output_written(self, source, output, recipe, run_id):
        self.seen.append(("output_written", {"source": source, "output": output, "recipe": recipe,
                                             "run_id": run_id}))

    @hookimpl
    def photobatch_run_failed(self, path, recipe, error, run_id):
        self.seen.append(("run_failed", {"path": path, "recipe": recipe, "error": error, "run_id": run_id}))


class Raiser:
    """A listener with a bug."""

    @hookimpl
    def photobatch_output_written(self, output):
        raise KeyError("exif")


@pytest.fixture()
def model(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    return str(folder)


@pytest.fixture()
def photo(tmp_path):
    return write_sample_photo(tmp_path / "in" / "DSCF0001.JPG", size=(160, 120), seed=1)


def make_app(tmp_path, model, *plugins):
    host = build_plugin_manager(entrypoints=False, disabled_plugins=[BUILTIN_RUNNER],
                                extra=[FakeRunnerPlugin(), *plugins])
    return App(catalog_path=tmp_path / "catalog.db", model=model, plugin_manager=host)


def test_listeners_get_only_the_arguments_they_ask_for():
    got = []

    class Narrow:
        @hookimpl
        def photobatch_run_failed(self, error):
            got.append(error)

    host = build_plugin_manager(builtins=False, entrypoints=False, extra=[Narrow()])
    assert notify(host, "photobatch_run_failed", path="a.jpg", recipe="r", error="boom", run_id=1) == []
    assert got == ["boom"]


def test_a_raising_listener_is_logged_recorded_and_the_others_still_run(caplog):
    got = []

    class Exits:
        @hookimpl
        def photobatch_daemon_stopping(self, reason):
            raise SystemExit(2)  # a plugin must not end the service

    class Fine:
        @hookimpl
        def photobatch_daemon_stopping(self, reason):
            got.append(reason)

    host = build_plugin_manager(builtins=False, entrypoints=False, extra=[Exits(), Fine()])
    with caplog.at_level(logging.ERROR):
        failures = notify(host, "photobatch_daemon_stopping", app=None, reason="signal")
    assert got == ["signal"]
    assert [(f.plugin, f.hook, f.error) for f in failures] == [("Exits", "photobatch_daemon_stopping", "SystemExit: 2")]
    assert list(host.failures) == failures
    assert "plugin 'Exits' failed in photobatch_daemon_stopping: SystemExit: 2" in caplog.text


def test_keyboard_interrupt_in_a_listener_is_not_swallowed():
    class Interrupted:
        @hookimpl
        def photobatch_daemon_started(self, app):
            raise KeyboardInterrupt

    host = build_plugin_manager(builtins=False, entrypoints=False, extra=[Interrupted()])
    with pytest.raises(KeyboardInterrupt):
        notify(host, "photobatch_daemon_started", app=None)


def test_an_unknown_event_is_a_programming_error():
    with pytest.raises(ValueError, match="'photobatch_output_writen' is not a photobatch event"):
        notify(build_plugin_manager(builtins=False, entrypoints=False), "photobatch_output_writen")


def test_a_session_sends_each_event_with_the_run_id(tmp_path, model, photo):
    recorder = Recorder()
    app = make_app(tmp_path, model, recorder)
    recipe = app.recipe("color-correct")
    outcome = Session(app, tmp_path / "out").process(photo, recipe)
    assert outcome.status == "done", outcome.error
    events = [name for name, _ in recorder.seen]
    assert events == ["file_discovered", "run_started", "output_written"]
    seen = dict(recorder.seen)
    assert seen["file_discovered"]["path"] == photo and len(seen["file_discovered"]["sha256"]) == 64
    assert seen["run_started"] == {"path": photo, "recipe": "color-correct", "run_id": outcome.run_id}
    assert seen["output_written"] == {"source": photo, "output": outcome.output,
                                      "recipe": "color-correct", "run_id": outcome.run_id}

    bad = write_truncated_jpeg(tmp_path / "in" / "DSCF0002.JPG", photo)
    failed = Session(app, tmp_path / "out").process(bad, recipe)
    assert failed.status == "failed"
    name, args = recorder.seen[-1]
    assert name == "run_failed" and args["run_id"] == failed.run_id is not None
    assert args["error"] == failed.error and "DSCF0002.JPG" in args["error"]
    app.close()


def test_a_raising_listener_never_fails_the_run_and_is_recorded_in_the_catalog(tmp_path, model, photo):
    recorder = Recorder()
    app = make_app(tmp_path, model, Raiser(), recorder)
    outcome = Session(app, tmp_path / "out").process(photo, app.recipe("color-correct"))
    assert outcome.status == "done" and outcome.output.exists()
    assert [n for n, _ in recorder.seen][-1] == "output_written"  # listeners after it still ran
    assert [(e.plugin, e.hook, e.error) for e in app.plugin_errors] == [
        ("Raiser", "photobatch_output_written", "KeyError: 'exif'")]
    app.close()

    con = sqlite3.connect(tmp_path / "catalog.db")
    con.row_factory = sqlite3.Row
    [row] = con.execute("SELECT * FROM plugin_errors").fetchall()
    assert (row["plugin"], row["hook"], row["error"], row["run_id"]) == (
        "Raiser", "photobatch_output_written", "KeyError: 'exif'", outcome.run_id)
    assert "raise KeyError" in row["traceback"] and row["at"]
    assert con.execute("SELECT status FROM runs WHERE id = ?", [outcome.run_id]).fetchone()[0] == "done"


def test_failing_to_record_a_plugin_error_does_not_fail_the_run(tmp_path, model, photo, monkeypatch):
    app = make_app(tmp_path, model, Raiser())
    monkeypatch.setattr("photobatch.catalog.plugin_errors.TABLE", "no such table")
    outcome = Session(app, tmp_path / "out").process(photo, app.recipe("color-correct"))
    assert outcome.status == "done"
    app.close()


class Inverter:
    name = "invert"

    def apply(self, image, params, source):
        assert image.size == source.size  # the full-size result next to the upright original
        return Image.eval(image, lambda v: 255 - v)


def steps_plugin(selection, steps=(Inverter(),)):
    class Steps:
        @hookimpl
        def photobatch_steps(self):
            return list(steps)

        @hookimpl
        def photobatch_post_steps(self, recipe):
            if isinstance(selection, Exception):
                raise selection
            return selection

    return Steps()


def test_steps_selected_by_a_plugin_run_on_the_full_size_result(tmp_path, model, photo):
    app = make_app(tmp_path, model, steps_plugin(["invert"]))
    outcome = Session(app, tmp_path / "out").process(photo, app.recipe("color-correct"))
    assert outcome.status == "done", outcome.error
    with Image.open(outcome.output) as out:
        assert out.size == (160, 120)
        # The fake runner's grey 128 comes back inverted: 127 (give or take JPEG).
        assert abs(float(np.asarray(out).mean()) - 127) < 2
    assert "post" in outcome.timings
    row = sqlite3.connect(tmp_path / "catalog.db").execute(
        "SELECT timings FROM runs WHERE id = ?", [outcome.run_id]).fetchone()
    assert "post" in json.loads(row[0])
    app.close()


def test_no_selected_step_means_no_post_stage(tmp_path, model, photo):
    app = make_app(tmp_path, model, steps_plugin([]))
    outcome = Session(app, tmp_path / "out").process(photo, app.recipe("color-correct"))
    assert outcome.status == "done" and "post" not in outcome.timings
    app.close()


class Broken:
    name = "broken"

    def apply(self, image, params, source):
        raise RuntimeError("kernel too large")


class Lazy:
    name = "lazy"

    def apply(self, image, params, source):
        return None


@pytest.mark.parametrize("selection, reason", [
    (["blur"], "plugin 'Steps' selected step 'blur', which no plugin contributes (known: broken, invert, lazy)"),
    ([("invert", "strong")], "plugin 'Steps' selected ('invert', 'strong'); expected a step name or a (name, params) pair"),
    (["broken"], "step 'broken' (plugin 'Steps') failed: RuntimeError: kernel too large"),
    (["lazy"], "step 'lazy' (plugin 'Steps') returned NoneType, not an image"),
    (ValueError("recipe unknown"), "plugin 'Steps' failed choosing steps: ValueError: recipe unknown"),
])
def test_a_step_that_cannot_run_fails_the_run_with_a_reason(tmp_path, model, photo, selection, reason):
    app = make_app(tmp_path, model, steps_plugin(selection, steps=(Inverter(), Broken(), Lazy())))
    outcome = Session(app, tmp_path / "out").process(photo, app.recipe("color-correct"))
    assert outcome.status == "failed"
    assert outcome.error == f"error while applying steps to the result of DSCF0001.JPG: {reason}"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    app.close()


def test_step_params_are_passed_as_a_copy(tmp_path, model, photo):
    seen = []

    class Recording:
        name = "rec"

        def apply(self, image, params, source):
            seen.append(dict(params))
            params["mutated"] = True
            return image

    params = {"amount": 0.5}
    app = make_app(tmp_path, model, steps_plugin([("rec", params)], steps=(Recording(),)))
    session = Session(app, tmp_path / "out", force=True)
    for _ in range(2):
        assert session.process(photo, app.recipe("color-correct")).status == "done"
    assert seen == [{"amount": 0.5}, {"amount": 0.5}] and params == {"amount": 0.5}
    app.close()
