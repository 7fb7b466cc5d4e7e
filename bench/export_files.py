"""What `photobatch export files` costs per photo, for 24 MP outputs.

Exports ``--photos`` camera-like JPEG outputs (``write_sample_photo`` at ``--size``, with EXIF,
GPS, ICC) through the exporter itself, as the command does, in four ways a photographer
exports: web size with screen sharpening, web size under 1 MB (the quality search), full size
to sRGB, and full size in Adobe RGB as a 16-bit-free TIFF for a lab. Then the same web export
again, which finds every file unchanged.

    .venv/bin/python bench/export_files.py [--size 6000x4000] [--photos 4]

The last line is the web export's seconds per photo.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from photobatch.daemon.samples import write_sample_photo
from photobatch.plugins.exporting import ExportItem, ExportOptions
from photobatch.plugins.files_export import FilesExporter
from photobatch.plugins.manager import build_plugin_manager, collect

WAYS = {
    "web: 2048 px, screen sharpening, JPEG 90": {"long_edge": 2048, "sharpen": "screen"},
    "web under 200 KB: 2048 px, quality searched": {"long_edge": 2048, "max_size": "200K"},
    "full size, sRGB JPEG 90": {},
    "full size, Adobe RGB TIFF for a lab": {"color_space": "adobe-rgb", "file_format": "tiff",
                                            "metadata": "copyright-only"},
}


def main() -> None:
    """Export the sample outputs each way, print the seconds per photo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="6000x4000")
    parser.add_argument("--photos", type=int, default=4)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    pm = build_plugin_manager(entrypoints=False)
    readers = list(collect(pm, "photobatch_readers", "reader"))
    writers = collect(pm, "photobatch_writers", "writer")
    with tempfile.TemporaryDirectory(prefix="pb-export-") as tmp:
        root = Path(tmp)
        items = []
        for i in range(args.photos):
            output = write_sample_photo(root / "out" / f"IMG_{i:04d}_look.jpg",
                                        size=(width, height), seed=i, quality=95)
            items.append(ExportItem(source=output, output=output, recipe="look", params={},
                                    seed=i, model="m", run_id=i, source_sha256=f"{i:064x}",
                                    output_sha256=f"{i:064x}", processed_at=None,
                                    metadata={"date_taken": "2026-06-21T19:42:10"}))
        print(f"{args.photos} outputs of {width}x{height}, "
              f"{sum(p.output.stat().st_size for p in items) / len(items) / 1e6:.1f} MB each")
        per_photo = {}
        for n, (way, values) in enumerate(WAYS.items()):
            per_photo[way] = _timed(items, root / f"export{n}", values, readers, writers)
            sizes = [p.stat().st_size for p in (root / f"export{n}").iterdir()
                     if not p.name.startswith(".")]
            print(f"{way}: {per_photo[way]:.2f} s per photo, {sum(sizes) / len(sizes) / 1e6:.2f} MB")
        first = next(iter(WAYS))
        again = _timed(items, root / "export0", WAYS[first], readers, writers)
        print(f"the web export again (all unchanged): {again:.3f} s per photo")
        print(f"web export per photo: {per_photo[first]:.2f} s")


def _timed(items, out: Path, values: dict, readers, writers) -> float:
    start = time.perf_counter()
    result = FilesExporter().export(items, out, ExportOptions(values=values, readers=readers,
                                                              writers=writers))
    assert not result.left_out, result.left_out
    return (time.perf_counter() - start) / len(items)


if __name__ == "__main__":
    main()
