"""``photobatch demo`` started the way a user starts it: the console script in a subprocess."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from PIL import Image


def test_demo_runs_in_a_temp_dir_and_prints_its_table(tmp_path):
    script = Path(sys.executable).with_name("photobatch")
    assert script.exists(), "the console script is installed next to the interpreter"
    workdir = tmp_path / "demo"
    proc = subprocess.run([str(script), "demo", "--dir", str(workdir)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "stand-in" in out and "--model" in out  # says plainly the pictures are not meaningful
    assert "(SD 1.x)\n" in out  # what the model is, told from its folder
    assert "photo" in out and "EXIF kept" in out
    photos = sorted((workdir / "inbox").iterdir())
    outputs = sorted((workdir / "enhanced").iterdir())
    assert len(photos) >= 3 and len(outputs) == len(photos)
    for photo in photos:
        assert photo.name in out
    assert out.count("4/4") == len(photos)  # make, model, date and GPS kept on every output
    for output in outputs:
        with Image.open(output) as img:
            assert img.format == "JPEG" and min(img.size) >= 256
    con = sqlite3.connect(workdir / "catalog.db")
    assert con.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0] == len(photos)
    assert f"{len(photos)} of {len(photos)} photos enhanced" in out
    # The commands it suggests work as printed.
    suggested = [line.strip().split("   (")[0] for line in out.splitlines()[-4:]]
    assert [c.split()[3:5] for c in suggested] == [
        ["catalog", "ls"], ["catalog", "show"], ["export", "gallery"], ["export", "files"]]
    for command in suggested:
        ran = subprocess.run(command.split(), capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, command + "\n" + ran.stdout + ran.stderr
    assert (workdir / "gallery" / "index.html").is_file()
    web = sorted((workdir / "web").glob("*.jpg"))
    assert len(web) == len(photos) and all(max(Image.open(p).size) <= 1024 for p in web)
