"""Bad input never stops a batch: each awkward file processes correctly or fails in one line."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from photobatch.daemon.cli import main
from photobatch.daemon.paths import expand_inputs
from photobatch.daemon.sample_bad_inputs import BAD_INPUTS, transparent_left_third, write_bad_inputs
from photobatch.daemon.samples import make_scene, write_sample_photo
from photobatch.plugins.metadata import read_summary
from photobatch.recipes.schema import recipe_from_dict

SIZE = (192, 128)

# kind -> what the one-line reason says
FAILS = {
    "zero-byte": "the file is empty (0 bytes)",
    "truncated": "cannot be decoded: the file is truncated (cut short; was it still being copied?)",
    "text": "not a supported image format",
    "raw-without-data": "the RAW image data is missing or cut short",
    "bomb": "20000x15000 is 300 MP, over the 200 MP limit",
}
PROCESSES = sorted(set(BAD_INPUTS) - set(FAILS))


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return write_bad_inputs(tmp_path_factory.mktemp("shoot"), size=SIZE)


@pytest.fixture()
def model(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")  # resolves; never loaded by these tests
    return folder


def small(image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((48, 32), Image.Resampling.BOX), dtype=float)


def test_the_corpus_has_every_case(bad):
    assert set(bad) == set(BAD_INPUTS) == set(FAILS) | set(PROCESSES)
    assert bad["zero-byte"].stat().st_size == 0
    assert bad["bomb"].stat().st_size < 1000
    with Image.open(bad["cmyk"]) as img:
        assert img.mode == "CMYK"
    with Image.open(bad["grey16"]) as img:
        assert img.mode.startswith("I;16")
    with Image.open(bad["palette"]) as img:
        assert img.mode == "P"


def test_failures_are_one_line_each_and_recorded(bad, tmp_path, model):
    folder = tmp_path / "failing"
    folder.mkdir()
    for kind in FAILS:
        (folder / bad[kind].name).write_bytes(bad[kind].read_bytes())
    db = tmp_path / "catalog.db"
    result = CliRunner().invoke(main, ["--catalog", str(db), "run", str(folder), "--recipe",
                                       "color-correct", "--model", str(model), "--out",
                                       str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"0 done, 0 skipped, {len(FAILS)} failed" in result.output
    assert "Traceback" not in result.output
    failed_lines = [line for line in result.output.splitlines() if line.startswith("FAILED")]
    assert len(failed_lines) == len(FAILS)
    for kind, reason in FAILS.items():
        name = bad[kind].name
        line = next(line for line in failed_lines if f"/{name}:" in line)
        assert f"error while reading {name}: {reason}" in line, line
    con = sqlite3.connect(db)
    rows = dict(con.execute("SELECT f.path, r.status || ': ' || r.error FROM runs r "
                            "JOIN files f ON f.id = r.file_id").fetchall())
    assert len(rows) == len(FAILS)
    for kind, reason in FAILS.items():
        status = rows[str(folder / bad[kind].name)]
        assert status.startswith("failed: ") and reason in status and "\n" not in status


RECIPE = recipe_from_dict({"name": "same", "runner": "identity"})


@pytest.mark.parametrize("kind", PROCESSES)
def test_awkward_but_valid_inputs_process_correctly(bad, identity_session, kind):
    outcome = identity_session.process(bad[kind], RECIPE)
    assert outcome.status == "done", outcome.error
    with Image.open(outcome.output) as out:
        assert out.mode == "RGB" and out.size == SIZE
        got = small(out)
    scene = small(make_scene("landscape", SIZE, seed=0))
    if kind in ("cmyk", "grey"):
        scene = small(make_scene("landscape", SIZE, seed=7))
    if kind in ("grey", "grey16", "grey-alpha"):
        assert np.abs(got - got.mean(axis=2, keepdims=True)).max() < 3  # still grey
        scene = small(Image.fromarray(scene.astype(np.uint8)).convert("L"))
    if kind in ("alpha", "grey-alpha"):
        mask = np.asarray(Image.fromarray(transparent_left_third(SIZE)).resize((48, 32)))
        assert got[mask].min() > 250  # transparency flattened onto white
        got, scene = got[~mask], scene[~mask]
    if kind in ("corrupt-exif", "non-ascii"):
        scene = small(make_scene("landscape", SIZE, seed=7))
    tolerance = 12 if kind == "cmyk" else 6  # Pillow's CMYK round trip is naive
    assert np.abs(got - scene).mean() < tolerance, kind


def test_corrupt_exif_still_carries_what_could_be_read(bad, identity_session):
    outcome = identity_session.process(bad["corrupt-exif"], RECIPE)
    assert outcome.status == "done", outcome.error
    summary = read_summary(bad["corrupt-exif"])
    assert summary["warnings"] and summary["keywords"] == ["sample", "photobatch"]
    assert read_summary(outcome.output)["keywords"] == ["sample", "photobatch"]


def test_non_ascii_name_output(bad, identity_session):
    outcome = identity_session.process(bad["non-ascii"], RECIPE)
    assert outcome.output.name == "Ölberg café 東京_same.jpg"
    out = read_summary(outcome.output)
    assert (out["make"], out["orientation"], out["warnings"]) == ("FUJIFILM", 1, [])


def test_file_deleted_while_queued_is_recorded_failed(tmp_path, identity_session):
    inbox = tmp_path / "inbox"
    for seed, name in enumerate(("A.JPG", "B.JPG", "C.JPG")):
        write_sample_photo(inbox / name, size=(64, 48), seed=seed)
    queued = expand_inputs([inbox])
    (inbox / "B.JPG").unlink()
    outcomes = [identity_session.process(path, RECIPE) for path in queued]
    assert [o.status for o in outcomes] == ["done", "failed", "done"]
    assert outcomes[1].error == "error while reading B.JPG: No such file or directory"
    rows = identity_session.app.catalog.db.query(
        "SELECT f.path, f.sha256, r.status, r.error, r.recipe FROM runs r "
        "JOIN files f ON f.id = r.file_id ORDER BY r.id")
    rows = list(rows)
    assert [r["status"] for r in rows] == ["done", "failed", "done"]
    assert rows[1]["path"] == str(inbox / "B.JPG") and rows[1]["recipe"] == "same"
    assert rows[1]["error"] == outcomes[1].error and rows[1]["sha256"].startswith("unreadable:")
    # Tried again, the same stand-in file gets a second failed run, not a second file.
    identity_session.process(inbox / "B.JPG", RECIPE)
    assert identity_session.app.catalog.db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 3
    # Back again (copied in anew): its real content takes over the row, failed runs kept.
    write_sample_photo(inbox / "B.JPG", size=(64, 48), seed=1)
    assert identity_session.process(inbox / "B.JPG", RECIPE).status == "done"
    files = list(identity_session.app.catalog.db.query("SELECT id, sha256 FROM files WHERE path = ?",
                                              [str(inbox / "B.JPG")]))
    assert len(files) == 1 and not files[0]["sha256"].startswith("unreadable:")
    runs = [r["status"] for r in identity_session.app.catalog.db.query(
        "SELECT status FROM runs WHERE file_id = ? ORDER BY id", [files[0]["id"]])]
    assert runs == ["failed", "failed", "done"]
