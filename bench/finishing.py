"""Output finishing and catalog safety: what a watermark and a catalog backup cost.

Times ``draw_watermark`` on a full-size picture (text and a logo, 8 and 16 bits: it works on
the mark's box, plus one copy of the picture) and ``scheduled_backup`` of a catalog with
``--photos`` files and two runs each (SQLite's online backup, its integrity check, the rename).

    .venv/bin/python bench/finishing.py [--size 6000x4000] [--photos 20000]

The last line is the backup's time per 10,000 photos.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from photobatch.catalog.backup import scheduled_backup
from photobatch.catalog.store import Catalog
from photobatch.plugins.watermark import Mark, draw_watermark


def main() -> None:
    """Time the watermarks and the backup, print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="6000x4000")
    parser.add_argument("--photos", type=int, default=20000)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    rng = np.random.default_rng(0)
    eight = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    sixteen = rng.integers(0, 65535, (height, width, 3), dtype=np.uint16)
    logo = Image.new("RGBA", (600, 200), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((0, 0, 199, 199), fill=(220, 30, 30, 255))
    for depth, picture in (("8-bit", eight), ("16-bit", sixteen)):
        for kind, mark in (("text", Mark(text="© 2026 Jane Doe")), ("logo", Mark(logo=logo))):
            seconds = _best(lambda: draw_watermark(picture, mark))
            print(f"watermark, {kind}, {depth} {width}x{height}: {seconds * 1000:.0f} ms")
    with tempfile.TemporaryDirectory(prefix="pb-finishing-") as tmp:
        path = Path(tmp) / "catalog.db"
        catalog = Catalog(path)
        params = json.dumps({"strength": 0.2, "steps": 30, "prompt": "a photograph " * 8})
        with catalog.transaction():
            for i in range(args.photos):
                file_id = catalog.db["files"].insert(
                    {"sha256": f"{i:064x}", "path": f"/shoots/IMG_{i:05d}.JPG",
                     "exif": json.dumps({"make": "FUJIFILM", "model": "X-T5"})}).last_pk
                for recipe in ("color-correct", "portrait-retouch"):
                    catalog.db["runs"].insert({"file_id": file_id, "recipe": recipe,
                                               "status": "done", "params": params,
                                               "recipe_fingerprint": "f" * 64, "model_id": "m"})
        catalog.close()
        size = path.stat().st_size
        start = time.perf_counter()
        made = scheduled_backup(path)
        seconds = time.perf_counter() - start
    print(f"catalog of {args.photos} photos, {2 * args.photos} runs: {size / 1e6:.1f} MB")
    print(f"scheduled backup (online copy, integrity check, rename): {seconds:.2f} s -> {made.name}")
    print(f"backup per 10,000 photos: {seconds / args.photos * 10000:.2f} s")


def _best(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


if __name__ == "__main__":
    main()
