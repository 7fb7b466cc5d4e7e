"""``photobatch run``'s stages: pipelined and batched on a GPU, one after the other on the CPU."""

from __future__ import annotations

import os
import threading

from fakes import FakeRunner

from photobatch.daemon.app import App
from photobatch.daemon.run_stages import Work, process_all
from photobatch.daemon.samples import write_sample_photo
from photobatch.daemon.session import Session
from photobatch.plugins.manager import build_plugin_manager


def _setup(tmp_path, device: str):
    runner = FakeRunner(device)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "f.toml").write_text('name = "f"\nrunner = "fake"\nbatch = 3\nstrength = 0.5\nsteps = 10\n'
                                    'full_resolution = "resize"\n', encoding="utf-8")
    app = App(catalog_path=tmp_path / "c.db", recipe_dirs=[recipes], model="test/model",
              plugin_manager=build_plugin_manager(entrypoints=False, extra=[runner.plugin()]))
    files = []
    for i in range(7):
        path = tmp_path / "in" / f"P{i}.JPG"
        path.parent.mkdir(exist_ok=True)
        if i == 3:
            path.write_text("not a photo")  # fails alone, in its place
        else:
            write_sample_photo(path, size=(96, 64), seed=i)
        files.append(path)
    return app, runner, files


def _run(app, files, tmp_path):
    seen = {"prepare": set(), "finish": set()}
    session = Session(app, tmp_path / "out")
    for stage in seen:
        original = getattr(session, stage)

        def spy(*args, _stage=stage, _original=original, **kwargs):
            seen[_stage].add(threading.current_thread().name)
            return _original(*args, **kwargs)
        setattr(session, stage, spy)
    outcomes = []
    process_all(session, [Work(path, app.recipe("f")) for path in files], outcomes.append)
    app.close()
    return outcomes, seen


def test_on_a_gpu_photos_are_batched_and_the_cpu_stages_overlap(tmp_path):
    app, runner, files = _setup(tmp_path, "cuda")
    outcomes, seen = _run(app, files, tmp_path)
    assert [o.path for o in outcomes] == files  # reported in the files' order
    assert [o.status for o in outcomes] == ["done"] * 3 + ["failed"] + ["done"] * 3
    assert "P3.JPG" in str(outcomes[3].path) and outcomes[3].error
    assert sum(runner.calls) == 6 and max(runner.calls) > 1  # some photos shared a call
    assert runner.threads == {threading.current_thread().name}  # the model in one thread
    assert all(name.startswith("pb-prepare") for name in seen["prepare"])
    assert all(name.startswith("pb-finish") for name in seen["finish"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"P{i}_f.jpg" for i in (0, 1, 2, 4, 5, 6)]


def test_on_a_cpu_model_each_photo_goes_through_its_stages_in_turn(tmp_path, monkeypatch):
    import torch

    # A model with a thread on every core (torch's default, whatever OMP_NUM_THREADS says).
    monkeypatch.setattr(torch, "get_num_threads", lambda: os.cpu_count() or 1)
    app, runner, files = _setup(tmp_path, "cpu")
    outcomes, seen = _run(app, files, tmp_path)
    assert [o.status for o in outcomes] == ["done"] * 3 + ["failed"] + ["done"] * 3
    assert runner.calls == [1] * 6  # no batching: it does not pay on a CPU
    here = {threading.current_thread().name}
    assert seen["prepare"] == here and seen["finish"] == here and runner.threads == here


def test_photos_of_other_recipes_or_folders_keep_their_own(tmp_path):
    # rerun --now mixes recipes and output folders: a batch never mixes recipes, and each
    # photo's output goes to its own folder.
    app, runner, files = _setup(tmp_path, "cuda")
    (tmp_path / "recipes" / "g.toml").write_text(
        'name = "g"\nrunner = "fake"\nbatch = 3\nstrength = 0.3\nsteps = 10\n'
        'full_resolution = "resize"\n', encoding="utf-8")
    app = App(catalog_path=tmp_path / "c.db", recipe_dirs=[tmp_path / "recipes"], model="test/model",
              plugin_manager=app.pm)
    good = [f for f in files if f.name != "P3.JPG"]
    work = [Work(path, app.recipe("f" if i % 2 else "g"), out_dir=tmp_path / f"out{i % 2}")
            for i, path in enumerate(good)]
    outcomes = []
    process_all(Session(app, tmp_path / "unused"), work, outcomes.append)
    app.close()
    assert [o.status for o in outcomes] == ["done"] * 6
    assert [o.output.parent.name for o in outcomes] == [f"out{i % 2}" for i in range(6)]
    assert [o.output.name for o in outcomes] == [
        f"{w.path.stem}_{w.recipe.name}.jpg" for w in work]
    assert runner.calls == [1] * 6  # alternating recipes: no two neighbours share a call
