"""The awkward files a real shoot folder holds, for tests that a batch survives each of them.

Every file is small and made here; ``write_bad_inputs`` returns them by name. A file deleted
while queued is not a file, so the tests make that case themselves.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from photobatch.daemon import samples
from photobatch.daemon.sample_formats import write_sample_dng, write_sample_png

# name -> the file name it gets (what the user would see in a folder)
BAD_INPUTS = {
    "zero-byte": "empty.jpg",
    "truncated": "half-copied.jpg",
    "text": "notes.jpg",
    "raw-without-data": "no-pixels.dng",
    "bomb": "bomb.png",
    "corrupt-exif": "corrupt-exif.jpg",
    "cmyk": "print-cmyk.jpg",
    "png16": "scan-16bit.png",
    "grey16": "scan-grey-16bit.png",
    "grey": "grey.jpg",
    "palette": "palette.png",
    "alpha": "alpha.png",
    "grey-alpha": "grey-alpha.png",
    "non-ascii": "Ölberg café 東京.jpg",
}


def write_bomb_png(path: Path, width: int = 20000, height: int = 15000) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` (300 MP by default)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * 3 * 16  # a few rows of data; the rest is simply missing
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * 4)) + chunk(b"IEND", b""))
    path = Path(path)
    path.write_bytes(data)
    return path


def write_dng_without_data(path: Path, source: Path) -> Path:
    """The header and IFDs of the DNG ``source`` without its image data (a copy cut short)."""
    import tifffile

    data = Path(source).read_bytes()
    with tifffile.TiffFile(source) as tif:
        start = min(tif.pages[0].dataoffsets)
    Path(path).write_bytes(data[:start])
    return Path(path)


def write_corrupt_exif_jpeg(path: Path, source: Path) -> Path:
    """``source`` with its IFD0 entry count set to 65535: exiv2 and Pillow both stumble."""
    data = bytearray(Path(source).read_bytes())
    at = data.find(b"Exif\x00\x00") + 6
    data[at + 8: at + 10] = b"\xff\xff"
    Path(path).write_bytes(bytes(data))
    return Path(path)


def write_bad_inputs(folder: Path, size: tuple[int, int] = (192, 128)) -> dict[str, Path]:
    """Write every awkward input into ``folder``; return {kind: path} (kinds as BAD_INPUTS)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {kind: folder / name for kind, name in BAD_INPUTS.items()}
    scene = samples.make_scene("landscape", size, seed=7)

    out["zero-byte"].write_bytes(b"")
    good = samples.write_sample_photo(folder / ".good.jpg", size=size, seed=7)
    samples.write_truncated_jpeg(out["truncated"], good)
    out["text"].write_text("Shot list for Saturday:\n- the bride's family\n- the cake\n")
    dng = write_sample_dng(folder / ".good.dng", size=size)
    write_dng_without_data(out["raw-without-data"], dng)
    write_bomb_png(out["bomb"])
    write_corrupt_exif_jpeg(out["corrupt-exif"], good)
    scene.convert("CMYK").save(out["cmyk"], "JPEG", quality=90)
    write_sample_png(out["png16"], size=size, bits=16)
    write_sample_png(out["grey16"], size=size, bits=16, mode="L", metadata=False)
    scene.convert("L").save(out["grey"], "JPEG", quality=90)
    write_sample_png(out["palette"], size=size, mode="P")
    write_sample_png(out["alpha"], size=size, mode="RGBA")
    write_sample_png(out["grey-alpha"], size=size, mode="LA", metadata=False)
    samples.write_sample_photo(out["non-ascii"], size=size, seed=7, orientation=6)
    good.unlink()
    dng.unlink()
    return out


def transparent_left_third(size: tuple[int, int]) -> np.ndarray:
    """The boolean mask of what ``write_sample_png`` makes transparent in RGBA/LA samples."""
    mask = np.zeros((size[1], size[0]), bool)
    mask[:, : size[0] // 3] = True
    return mask


__all__ = ["BAD_INPUTS", "write_bad_inputs", "write_bomb_png", "write_dng_without_data",
           "write_corrupt_exif_jpeg", "transparent_left_third"]
