"""Photo I/O speed: photobatch's readers, writers and metadata next to the bare libraries.

For a 24 MP JPEG and a 24 MP DNG (both generated here, with camera metadata) it times decode
(full and half size), metadata read, encode and metadata write through photobatch, and the
same work done with bare Pillow / rawpy / tifffile / pyexiv2 calls. Each timing is the best of
``--repeat`` alternating runs. The last line is the total overhead over the bare libraries.

    .venv/bin/python bench/io.py [--megapixels 24] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyexiv2
import rawpy
import tifffile
from PIL import Image

from photobatch.daemon.sample_formats import write_sample_dng
from photobatch.daemon.samples import srgb_profile, write_sample_photo
from photobatch.plugins.builtin.jpeg_writer import JpegWriter
from photobatch.plugins.builtin.pillow_reader import PillowReader
from photobatch.plugins.builtin.raw_reader import RawReader
from photobatch.plugins.builtin.tiff_writer import TiffWriter
from photobatch.plugins.metadata import read_summary, write_output_metadata

RECORD = {"Recipe": "bench", "Seed": "1", "SourceFile": "bench"}


def best_pair(ours, bare, repeat: int) -> tuple[float, float]:
    """Best wall times of ``repeat`` alternating calls of each: the least disturbed by other
    work on a shared machine, and both sides equally exposed to it."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, bucket in ((ours, times[0]), (bare, times[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


# ---------------------------------------------------------------- the bare libraries


def bare_jpeg_decode(path: Path, half: bool = False) -> Image.Image:
    """Pillow: decode (at half scale with ``half``) and turn upright."""
    with Image.open(path) as img:
        if half:
            img.draft("RGB", (img.width // 2, img.height // 2))
        img.load()
        method = _TRANSPOSE.get(img.getexif().get(0x0112, 1))
        return img.transpose(method) if method is not None else img


# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose).
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def bare_raw_decode(path: Path, half: bool = False) -> np.ndarray:
    """rawpy: render with the settings photobatch uses (16 bits, or 8 at half size)."""
    with rawpy.imread(str(path)) as raw:
        return raw.postprocess(use_camera_wb=True, output_color=rawpy.ColorSpace.sRGB,
                               output_bps=8 if half else 16, half_size=half, gamma=(2.4, 12.92))


def bare_metadata_read(path: Path) -> tuple:
    """pyexiv2: read EXIF, IPTC and XMP from the file's bytes."""
    img = pyexiv2.ImageData(path.read_bytes())
    try:
        return img.read_exif(), img.read_iptc(), img.read_xmp()
    finally:
        img.close()


def bare_metadata_write(source: Path, output: Path, width: int, height: int) -> None:
    """What write_output_metadata does, in straight pyexiv2 + Pillow calls without checks."""
    src = pyexiv2.ImageData(source.read_bytes())
    out = pyexiv2.ImageData(output.read_bytes())
    try:
        src.copy_to_another_image(out, exif=True, iptc=True, xmp=True, comment=False, icc=False,
                                  thumbnail=False)
        pyexiv2.registerNs("https://photobatch.dev/ns/1.0/", "photobatch")
        out.modify_exif({"Exif.Image.Orientation": "1", "Exif.Photo.PixelXDimension": str(width),
                         "Exif.Photo.PixelYDimension": str(height)})
        out.modify_xmp({"Xmp.xmp.CreatorTool": "bench", **{f"Xmp.photobatch.{k}": v
                                                           for k, v in RECORD.items()}})
        if out.get_mime_type() == "image/jpeg":
            with Image.open(io.BytesIO(out.get_bytes())) as img:
                img.draft("RGB", (320, 320))
                small = img.convert("RGB")
            small.thumbnail((160, 160))
            buf = io.BytesIO()
            small.save(buf, "JPEG", quality=80)
            out.modify_thumbnail(buf.getvalue())
        # Replaced atomically and durably, as photobatch does: a crash never leaves half a file.
        temp = output.with_name(f".{output.name}.tmp")
        with open(temp, "wb") as fh:
            fh.write(out.get_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, output)
    finally:
        src.close()
        out.close()


# ---------------------------------------------------------------- the comparison


def run(megapixels: float, repeat: int) -> list[tuple[str, float, float]]:
    """Time every operation both ways; return (name, photobatch seconds, bare seconds) rows."""
    width = int(round((megapixels * 1e6 * 1.5) ** 0.5 / 16)) * 16
    height = int(round(width / 1.5 / 16)) * 16
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"generating a {width}x{height} JPEG and DNG ...", flush=True)
        jpeg = write_sample_photo(tmp / "IMG_0001.JPG", size=(width, height), orientation=6,
                                  quality=92)
        dng = write_sample_dng(tmp / "IMG_0002.DNG", size=(width, height))
        pillow, raw = PillowReader(), RawReader()

        def timed(name, ours, bare):
            rows.append((name, *best_pair(ours, bare, repeat)))
            print(f"{name:<28} photobatch {rows[-1][1]:7.3f} s   bare {rows[-1][2]:7.3f} s",
                  flush=True)

        timed("JPEG decode, full", lambda: pillow.read(jpeg), lambda: bare_jpeg_decode(jpeg))
        timed("JPEG decode, half", lambda: pillow.read(jpeg, half_size=True),
              lambda: bare_jpeg_decode(jpeg, half=True))
        timed("JPEG metadata read", lambda: read_summary(jpeg), lambda: bare_metadata_read(jpeg))
        decoded = pillow.read(jpeg)
        out_ours, out_bare = tmp / "ours.jpg", tmp / "bare.jpg"
        icc = srgb_profile()
        timed("JPEG encode q95 4:4:4",
              lambda: JpegWriter().write(decoded.image, out_ours, quality=95, icc_profile=icc),
              lambda: decoded.image.save(out_bare, "JPEG", quality=95, subsampling=0,
                                         optimize=True, icc_profile=icc))
        w, h = decoded.size
        timed("JPEG metadata write",
              lambda: write_output_metadata(jpeg, out_ours, width=w, height=h, record=RECORD),
              lambda: bare_metadata_write(jpeg, out_bare, w, h))

        timed("DNG decode, full", lambda: raw.read(dng), lambda: bare_raw_decode(dng))
        timed("DNG decode, half", lambda: raw.read(dng, half_size=True),
              lambda: bare_raw_decode(dng, half=True))
        timed("DNG metadata read", lambda: read_summary(dng), lambda: bare_metadata_read(dng))
        decoded = raw.read(dng)
        tif_ours, tif_bare = tmp / "ours.tif", tmp / "bare.tif"
        timed("TIFF 16-bit encode",
              lambda: TiffWriter().write(decoded.pixels16, tif_ours, bit_depth=16,
                                         icc_profile=decoded.icc_profile),
              lambda: tifffile.imwrite(tif_bare, decoded.pixels16, photometric="rgb",
                                       compression="zlib", predictor=True,
                                       iccprofile=decoded.icc_profile, resolution=(72, 72),
                                       resolutionunit="INCH", metadata=None))
        w, h = decoded.size
        timed("TIFF metadata write (from DNG)",
              lambda: write_output_metadata(dng, tif_ours, width=w, height=h, record=RECORD,
                                            icc=decoded.icc_profile),
              lambda: bare_metadata_write(dng, tif_bare, w, h))
    return rows


def main() -> None:
    """Run the comparison and print one line per operation, then the total overhead."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=24.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = run(args.megapixels, args.repeat)
    ours = sum(r[1] for r in rows)
    bare = sum(r[2] for r in rows)
    print(f"total                        photobatch {ours:7.3f} s   bare {bare:7.3f} s")
    print(f"overhead vs bare libraries: {100 * (ours - bare) / bare:.1f}%")


if __name__ == "__main__":
    main()
