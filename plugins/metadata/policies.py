"""Which tags an output keeps: RAW-only tags, metadata policies, and the updates we make."""

from __future__ import annotations

import re

from photobatch.plugins.metadata.exiv2 import NAMESPACE_PREFIX
from photobatch.plugins.metadata.icc import is_srgb
from photobatch.plugins.metadata.record import creator_tool


POLICIES = ("all", "no-location", "copyright-only", "none")


# IFD0 tags that describe how a TIFF/RAW file stores its pixels, or embed other metadata
# blocks TIFF-style; in a JPEG output they would describe data that is not there.
_IMAGE_STRUCTURE_TAGS = frozenset({
    "NewSubfileType", "SubfileType", "ImageWidth", "ImageLength", "BitsPerSample",
    "Compression", "PhotometricInterpretation", "Thresholding", "CellWidth", "CellLength",
    "FillOrder", "StripOffsets", "SamplesPerPixel", "RowsPerStrip", "StripByteCounts",
    "PlanarConfiguration", "Predictor", "TileWidth", "TileLength", "TileOffsets",
    "TileByteCounts", "SubIFDs", "ExtraSamples", "SampleFormat", "JPEGTables", "JPEGProc",
    "JPEGInterchangeFormat", "JPEGInterchangeFormatLength", "JPEGRestartInterval",
    "JPEGLosslessPredictors", "JPEGPointTransforms", "JPEGQTables", "JPEGDCTables",
    "JPEGACTables", "YCbCrSubSampling", "XMLPacket", "IPTCNAA", "ImageResources",
    "InterColorProfile", "CFARepeatPatternDim", "CFAPattern", "SensingMethod",
})
# Sensor-level tags that may also sit in the Exif IFD.
_RAW_PHOTO_TAGS = frozenset({"CFAPattern", "SpatialFrequencyResponse"})
# DNG (and CinemaDNG) tag numbers: colour matrices, calibration, black/white levels, crop,
# opcode lists, private data, profiles. None describes a rendered JPEG.
_DNG_TAG_RANGES = ((0xC612, 0xC7FF), (0xCD2D, 0xCD4F))
# exiv2 groups for further IFDs of a RAW (sub-IFDs with the mosaic, IFD2/3 previews, Panasonic's
# RAW IFD0, multi-picture index). Exif.Thumbnail is handled separately: it is regenerated.
_RAW_GROUPS = re.compile(r"^(SubImage\d+|SubThumb\d+|Image\d+|PanasonicRaw|MpfInfo)$")
# Previews embedded in maker notes (Nikon, Olympus, Pentax, Sony...): megabytes that would burst
# the 64 KiB JPEG APP1 segment.
_PREVIEW_TAG = re.compile(r"(Preview|Thumbnail)(Image|Offset|Length|Start)|^PreviewIFD$")
_STANDARD_GROUPS = frozenset({"Image", "Photo", "GPSInfo", "Iop", "Thumbnail"})

# What survives "copyright-only", besides our own record.
_COPYRIGHT_EXIF = frozenset({"Exif.Image.Artist", "Exif.Image.Copyright"})
_COPYRIGHT_IPTC = frozenset({
    "Iptc.Application2.Copyright", "Iptc.Application2.Byline", "Iptc.Application2.BylineTitle",
    "Iptc.Application2.Credit", "Iptc.Application2.Source", "Iptc.Application2.Contact",
})
_COPYRIGHT_XMP_PREFIXES = (
    "Xmp.dc.rights", "Xmp.dc.creator", "Xmp.xmpRights.", "Xmp.photoshop.Credit",
    "Xmp.photoshop.Source", "Xmp.photoshop.AuthorsPosition", "Xmp.iptc.CreatorContactInfo",
    "Xmp.plus.",
)
# Tags that describe the file rather than the photo or the photographer, kept by every policy
# that keeps an EXIF block (colour space and Interop index are colour, not metadata).
_STRUCTURAL_EXIF = frozenset({
    "Exif.Image.Orientation", "Exif.Image.XResolution", "Exif.Image.YResolution",
    "Exif.Image.ResolutionUnit", "Exif.Image.YCbCrPositioning", "Exif.Photo.ExifVersion",
    "Exif.Photo.ComponentsConfiguration", "Exif.Photo.FlashpixVersion",
    "Exif.Photo.ColorSpace", "Exif.Photo.PixelXDimension", "Exif.Photo.PixelYDimension",
    "Exif.Iop.InteroperabilityIndex", "Exif.Iop.InteroperabilityVersion",
})
_STRUCTURAL_IPTC = frozenset({
    "Iptc.Envelope.CharacterSet", "Iptc.Envelope.ModelVersion",
    "Iptc.Application2.RecordVersion",
})
# Defaults for the tags the Exif 2.3 spec requires in a JPEG's EXIF (exiftool -validate checks
# them), filled in only when the source lacks them.
_REQUIRED_EXIF_DEFAULTS = {
    "Exif.Image.XResolution": "72/1",
    "Exif.Image.YResolution": "72/1",
    "Exif.Image.ResolutionUnit": "2",
    "Exif.Photo.ExifVersion": "48 50 51 50",  # "0232"
    "Exif.Photo.ComponentsConfiguration": "1 2 3 0",  # Y Cb Cr -
    "Exif.Photo.FlashpixVersion": "48 49 48 48",  # "0100"
}
# The versions Exif 2.3 also requires in a TIFF's Exif IFD.
_REQUIRED_TIFF_EXIF_DEFAULTS = {
    "Exif.Photo.ExifVersion": "48 50 51 50",
    "Exif.Photo.FlashpixVersion": "48 49 48 48",
}
_TIFF_FORBIDDEN_EXIF = ("Exif.Photo.ComponentsConfiguration", "Exif.Photo.PixelXDimension",
                        "Exif.Photo.PixelYDimension", "Exif.Photo.CompressedBitsPerPixel")


def group_of(key: str) -> str:
    """The exiv2 group of a key ("Photo" for "Exif.Photo.FNumber")."""
    return key.split(".", 2)[1]


def is_raw_only(key: str, tag_number: int | None) -> bool:
    """True for a tag that describes how a RAW or TIFF stores its data, not the photo."""
    _, group, name = key.split(".", 2)
    if _RAW_GROUPS.match(group):
        return True
    if group not in _STANDARD_GROUPS and _PREVIEW_TAG.search(name):
        return True
    if group == "Image":
        if name in _IMAGE_STRUCTURE_TAGS:
            return True
        if tag_number is not None and any(lo <= tag_number <= hi for lo, hi in _DNG_TAG_RANGES):
            return True
    if group == "Photo" and name in _RAW_PHOTO_TAGS:
        return True
    return False


def is_source_only_xmp(key: str) -> bool:
    """True for XMP that describes edits of the source (Camera Raw settings)."""
    # Camera Raw / Lightroom develop settings describe edits of the source's pixels; Adobe
    # applies them to any JPEG that carries them, so our rendered output must not.
    return key.startswith(("Xmp.crs.", "Xmp.crss.", "Xmp.crd."))


def is_structural_xmp(key: str) -> bool:
    """True for an XMP copy of a TIFF storage tag (tiff:Compression, tiff:BitsPerSample...)."""
    return key.startswith("Xmp.tiff.") and key[len("Xmp.tiff."):] in _IMAGE_STRUCTURE_TAGS


def is_gps_xmp(key: str) -> bool:
    """True for an XMP location property."""
    return key.startswith("Xmp.exif.GPS") or "exif:GPS" in key


def exif_changes(detail: dict, policy: str, width: int, height: int, mime: str,
                  icc_profile_bytes: bytes, ppi: int = 0) -> tuple[list[str], dict[str, str]]:
    """EXIF keys to drop and values to set in an output, for ``policy``; ``ppi`` (when set)
    replaces the source's resolution."""
    drop: list[str] = []
    for key, info in detail.items():
        if group_of(key) == "Thumbnail":
            continue  # regenerated as a whole by replace_thumbnail
        gone = is_raw_only(key, info.get("tagNumber"))
        if policy == "no-location":
            gone = gone or group_of(key) == "GPSInfo"
        elif policy == "copyright-only":
            gone = gone or key not in (_COPYRIGHT_EXIF | _STRUCTURAL_EXIF)
        elif policy == "none":
            gone = True
        if gone:
            drop.append(key)
    if policy == "none":
        return drop, {}
    updates = {"Exif.Image.Orientation": "1"}
    if ppi:
        updates.update({"Exif.Image.XResolution": f"{ppi}/1", "Exif.Image.YResolution": f"{ppi}/1",
                        "Exif.Image.ResolutionUnit": "2"})  # inches
    if mime == "image/tiff":
        # TIFF keeps its size in IFD0 (exiv2 maintains it); Exif 2.3 allows the pixel
        # dimensions and the components configuration only in compressed files.
        drop += [k for k in _TIFF_FORBIDDEN_EXIF if k in detail and k not in drop]
    else:
        updates["Exif.Photo.PixelXDimension"] = str(width)
        updates["Exif.Photo.PixelYDimension"] = str(height)
    kept = set(detail) - set(drop)
    if mime == "image/jpeg":
        # libjpeg (Pillow) subsamples chroma centred, whatever the camera did.
        updates["Exif.Image.YCbCrPositioning"] = "1"
    required = _REQUIRED_EXIF_DEFAULTS if mime == "image/jpeg" else \
        _REQUIRED_TIFF_EXIF_DEFAULTS if mime == "image/tiff" else {}
    for key, value in required.items():
        if key not in kept:
            updates[key] = value
    # Exif knows sRGB (1) or "uncalibrated" (0xFFFF: see the ICC profile); the output's profile
    # decides, since it may have been converted from the source's.
    srgb = not icc_profile_bytes or is_srgb(icc_profile_bytes)
    if icc_profile_bytes or "Exif.Photo.ColorSpace" not in kept:
        updates["Exif.Photo.ColorSpace"] = "1" if srgb else "65535"
    if "Exif.Iop.InteroperabilityIndex" in kept:
        updates["Exif.Iop.InteroperabilityIndex"] = "R98" if srgb else "R03"  # DCF sRGB/Adobe
    return drop, updates


def drop_iptc(key: str, policy: str) -> bool:
    """True when ``policy`` drops the IPTC dataset ``key``."""
    if policy == "copyright-only":
        return key not in (_COPYRIGHT_IPTC | _STRUCTURAL_IPTC)
    return policy == "none"


def xmp_changes(xmp: dict, policy: str, width: int, height: int,
                 record: dict[str, str], photographer: dict | None = None
                 ) -> tuple[list[str], dict]:
    """XMP keys to drop and values to set in an output: policy, dimensions, our record, and
    the photographer's rating, label and keywords from a sidecar (``photographer``; kept by
    the policies that keep descriptive metadata, "all" and "no-location")."""
    ours = f"Xmp.{NAMESPACE_PREFIX}."
    drop: list[str] = []
    for key in xmp:
        if key.startswith(ours):
            gone = True  # a re-processed output gets a fresh record, not a mix of two
        elif is_source_only_xmp(key):
            gone = True
        elif policy == "no-location":
            gone = is_gps_xmp(key)
        elif policy == "copyright-only":
            gone = not key.startswith(_COPYRIGHT_XMP_PREFIXES)
        else:
            gone = policy == "none"
        if gone:
            drop.append(key)
    kept = set(xmp) - set(drop)
    updates = {
        "Xmp.tiff.Orientation": "1",
        "Xmp.exif.PixelXDimension": str(width),
        "Xmp.exif.PixelYDimension": str(height),
        "Xmp.tiff.ImageWidth": str(width),
        "Xmp.tiff.ImageLength": str(height),
    }
    changes = {k: v for k, v in updates.items() if k in kept}
    changes["Xmp.xmp.CreatorTool"] = creator_tool()
    if policy in ("all", "no-location"):
        changes.update(photographer or {})
    for key, value in record.items():
        changes[f"{ours}{key}"] = value
    return drop, changes
