"""Culling lookups: how long a selection by rating, label or keyword takes on a large catalog.

It catalogs ``--photos`` files in one folder of a real catalog file (WAL, as the daemon's), puts
a Lightroom XMP sidecar beside every ``--every``-th one, and times ``select_files`` with
``--rating 4``: the first time (every photo's culling read and stored, one commit), again
(nothing changed: one folder listing, the stored values), and after one sidecar changed.

    .venv/bin/python bench/culling.py [--photos 5000] [--every 50]

The last line is the time of a repeated selection per 1,000 photos.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from photobatch.catalog.queries import Selection, select_files
from photobatch.catalog.store import Catalog

SIDECAR = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
           '22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/'
           '1.0/" xmp:Rating="{rating}"/></rdf:RDF></x:xmpmeta>')


def main() -> None:
    """Build the catalog and folder, time the selections, print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=5000)
    parser.add_argument("--every", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pb-culling-") as tmp:
        root = Path(tmp)
        shoot = root / "shoot"
        shoot.mkdir()
        catalog = Catalog(root / "catalog.db")
        with catalog.transaction():
            for i in range(args.photos):
                photo = shoot / f"IMG_{i:05d}.JPG"
                photo.touch()
                catalog.db["files"].insert({"sha256": f"{i:064x}", "path": str(photo),
                                            "exif": '{"rating": 2}'})
                if i % args.every == 0:
                    photo.with_suffix(".xmp").write_text(SIDECAR.format(rating=4))
        picks = Selection(rating=4)
        first, found = _timed(lambda: select_files(catalog.db, picks))
        again, _ = _timed(lambda: select_files(catalog.db, picks))
        sidecar = shoot / "IMG_00001.xmp"
        sidecar.write_text(SIDECAR.format(rating=5))
        os.utime(sidecar, ns=(time.time_ns() + 10**9,) * 2)
        changed, more = _timed(lambda: select_files(catalog.db, picks))
        catalog.close()
    print(f"{args.photos} photos in one folder, a sidecar beside every {args.every}th")
    print(f"first selection (every photo read and stored): {first:.3f} s, {len(found)} picks")
    print(f"again (nothing changed): {again:.3f} s")
    print(f"after one sidecar changed: {changed:.3f} s, {len(more)} picks")
    print(f"repeated selection per 1,000 photos: {again / args.photos * 1000 * 1000:.1f} ms")


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


if __name__ == "__main__":
    main()
