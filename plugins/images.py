"""Types shared by readers, writers and the processing session, and format sniffing."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# Pictures larger than this are refused before decoding (a decompression bomb, or a scan
# nobody meant to send through a diffusion model); PHOTOBATCH_MAX_MEGAPIXELS overrides it.
DEFAULT_MAX_MEGAPIXELS = 200.0

# What LibRaw reads; a file with one of these names and a TIFF header is a camera RAW.
RAW_EXTENSIONS = frozenset(
    ".3fr .ari .arw .bay .cap .cr2 .cr3 .crw .dcr .dcs .dng .drf .eip .erf .fff .gpr .iiq "
    ".k25 .kdc .mdc .mef .mos .mrw .nef .nrw .orf .ori .pef .raf .raw .rw2 .rwl .sr2 .srf "
    ".srw .x3f".split()
)

# Magic bytes of camera RAW formats that do not start with a plain TIFF header.
_RAW_MAGIC = (
    b"FUJIFILMCCD-RAW",  # RAF
    b"IIRO", b"IIRS", b"MMOR",  # Olympus ORF
    b"IIU\x00",  # Panasonic RW2 / RAW, Leica RWL
    b"FOVb",  # Sigma X3F
    b"\x00MRM",  # Minolta MRW
    b"II\x1a\x00\x00\x00HEAPCCDR",  # Canon CRW
)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_TAG_DNG_VERSION = 0xC612


class NothingToDo(Exception):
    """A runner found nothing to do on this photo (no face for a retouch): a skip, not a failure."""


class ReadError(Exception):
    """A file that cannot be decoded, with a one-line reason a photographer can act on.

    ``lasting`` (the default): the same bytes would fail the same way, so the daemon does not
    try them again (a new copy of the file is new content, and is picked up). False for a
    failure of the moment, such as running out of memory.
    """

    def __init__(self, reason: str, *, lasting: bool = True):
        super().__init__(reason)
        self.lasting = lasting


@dataclass
class DecodedImage:
    """Upright pixels of a photo plus what the writer needs to keep (colour profile, format)."""

    image: Image.Image  # RGB 8-bit, orientation already applied
    format: str  # "jpeg", "png", "tiff", "webp", "heif", "dng", "cr2", ...
    icc_profile: bytes | None  # the profile of ``image``'s pixels (None: untagged, i.e. sRGB)
    orientation: int  # the EXIF orientation the file had (1 = none)
    pixels16: np.ndarray | None = None  # upright H x W x 3 uint16 when the source has > 8 bits
    bits: int = 8  # bits per channel of the source
    full_size: tuple[int, int] | None = None  # the photo's size when ``image`` is a reduced decode
    # Upright H x W uint8/uint16 transparency of a source that has some (``image`` is then
    # flattened onto white); None for an opaque photo. Outputs that can carry it get it back.
    alpha: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the decoded upright picture."""
        return self.image.size

    @property
    def photo_size(self) -> tuple[int, int]:
        """(width, height) of the photo at full resolution (``size`` differs after a half decode)."""
        return self.full_size or self.image.size


def max_megapixels() -> float:
    """The megapixel limit readers enforce: PHOTOBATCH_MAX_MEGAPIXELS, else 200."""
    value = os.environ.get("PHOTOBATCH_MAX_MEGAPIXELS", "")
    try:
        limit = float(value) if value.strip() else DEFAULT_MAX_MEGAPIXELS
    except ValueError:
        limit = DEFAULT_MAX_MEGAPIXELS
    return limit if limit > 0 else DEFAULT_MAX_MEGAPIXELS


def check_megapixels(width: int, height: int, limit: float) -> None:
    """Raise ReadError when ``width`` x ``height`` is over ``limit`` megapixels."""
    megapixels = width * height / 1e6
    if megapixels > limit:
        raise ReadError(f"{width}x{height} is {megapixels:.0f} MP, over the {limit:g} MP limit "
                        "(PHOTOBATCH_MAX_MEGAPIXELS raises it)")


def sniff(head: bytes, path: Path | None = None) -> str | None:
    """Name the kind of file from its first bytes: "jpeg", "png", "webp", "avif", "heif",
    "tiff", "raw" or None. ``path`` (its extension and, for TIFF, its first IFD) tells a
    TIFF-based camera RAW (DNG, CR2, NEF, ARW...) from a plain TIFF.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        brands = _ftyp_brands(head)
        if b"crx " in brands:
            return "raw"  # Canon CR3
        if brands & _AVIF_BRANDS:
            return "avif"
        if brands & _HEIF_BRANDS:
            return "heif"
        return None
    if head.startswith(_RAW_MAGIC):
        return "raw"
    if head.startswith(_TIFF_MAGIC):
        if path is not None and (path.suffix.lower() in RAW_EXTENSIONS or _is_dng(path)):
            return "raw"
        if head[8:10] == b"CR":  # Canon CR2 marks itself right after the header
            return "raw"
        return "tiff"
    if path is not None and path.suffix.lower() in RAW_EXTENSIONS and len(head) >= 4:
        return "raw"  # IIQ and other rarities with their own headers: let LibRaw decide
    return None


def _ftyp_brands(head: bytes) -> set[bytes]:
    size = int.from_bytes(head[:4], "big")
    end = min(max(size, 16), len(head))
    brands = {head[8:12]}
    brands.update(head[i:i + 4] for i in range(16, end - 3, 4))
    return brands


def _is_dng(path: Path) -> bool:
    """True when the TIFF's first IFD has a DNGVersion tag (a DNG under another name)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(65536)
    except OSError:
        return False
    order = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, offset)
        for i in range(min(count, 1000)):
            (tag,) = struct.unpack_from(order + "H", data, offset + 2 + 12 * i)
            if tag == _TAG_DNG_VERSION:
                return True
    except struct.error:
        return False
    return False


def resize_pixels(image: Image.Image | np.ndarray, size: tuple[int, int]):
    """``image`` (PIL, or an H x W x 3 uint16 array) at ``size`` (width, height), Lanczos; the
    same object when it has that size."""
    if isinstance(image, Image.Image):
        return image if image.size == tuple(size) else image.resize(size, Image.Resampling.LANCZOS)
    if image.shape[1::-1] == tuple(size):
        return image
    # Pillow resamples 16-bit data one channel at a time, as 32-bit integers (mode "I").
    channels = [np.asarray(Image.fromarray(image[..., c].astype(np.int32)).resize(
        size, Image.Resampling.LANCZOS)) for c in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0, 65535).astype(np.uint16)


def to_uint16(image: Image.Image | np.ndarray) -> np.ndarray:
    """An H x W x 3 uint16 array of an RGB picture (8-bit values are scaled by 257)."""
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint16:
            return image
        if image.dtype == np.uint8:
            return image.astype(np.uint16) * 257
        raise ValueError(f"pixels must be uint8 or uint16, got {image.dtype}")
    return np.asarray(image.convert("RGB"), dtype=np.uint16) * 257


def to_uint8(image: Image.Image | np.ndarray) -> Image.Image:
    """An 8-bit RGB Pillow image of an RGB picture (16-bit values keep their high byte)."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if image.dtype == np.uint8:
        return Image.fromarray(image, "RGB")
    if image.dtype == np.uint16:
        # The high byte: within one level of rounding, and ten times cheaper on 24 MP.
        return Image.fromarray((image >> 8).astype(np.uint8), "RGB")
    raise ValueError(f"pixels must be uint8 or uint16, got {image.dtype}")
