"""Copy EXIF/IPTC/XMP from a source into an output, shedding what a JPEG segment cannot hold."""

from __future__ import annotations

import io
import logging

import pyexiv2

from photobatch.plugins.metadata.exiv2 import LOCK, MetadataError, one_line, open_image
from photobatch.plugins.metadata.policies import group_of, is_raw_only, is_source_only_xmp

log = logging.getLogger(__name__)


def copy_metadata(src: pyexiv2.ImageData, out_data: bytes, name: str,
                  policy: str) -> pyexiv2.ImageData:
    """Parse ``out_data`` and copy the metadata of ``src`` in (whole, else block by block).

    Returns the parsed output, which the caller edits further and closes: parsing a 16-bit
    TIFF's hundred megabytes once instead of twice is a third of the work.
    """
    try:
        return _copy_into(src, out_data, policy, name, careful=False)
    except MetadataError:
        raise
    except RuntimeError as exc:
        if policy == "none":
            raise MetadataError(one_line(exc)) from exc
        # Typically a TIFF, RAW or Photoshop source whose EXIF or XMP is larger than the
        # 64 KiB a JPEG segment holds: copy block by block and shed what does not fit.
        log.warning("%s: metadata could not be copied whole (%s); copying block by block",
                    name, one_line(exc))
    try:
        return _copy_into(src, out_data, policy, name, careful=True)
    except RuntimeError as exc:
        raise MetadataError(one_line(exc)) from exc


def _copy_into(src: pyexiv2.ImageData, out_data: bytes, policy: str, name: str, *,
               careful: bool) -> pyexiv2.ImageData:
    try:
        out = open_image(out_data)
    except RuntimeError as exc:
        raise MetadataError(f"not an image exiv2 can write: {one_line(exc)}") from exc
    try:
        with LOCK:
            # exiv2 refuses to set a comment where the format has none (TIFF) and says so
            # by raising, so ask first.
            has_comment = out.get_access_mode().get("comment") in ("write", "read+write")
            comment = policy == "all" and has_comment
            if policy == "none":
                # Nothing of the source travels; whatever the writer put in goes too.
                out.clear_exif()
                out.clear_iptc()
                out.clear_xmp()
                if has_comment:
                    out.clear_comment()
            elif not careful:
                # The thumbnail and ICC are handled by _rewrite; exiv2 still copies the
                # source's IFD1 along with the EXIF, and _rewrite replaces it.
                src.copy_to_another_image(out, exif=True, iptc=True, xmp=True, comment=comment,
                                          icc=False, thumbnail=False)
            else:
                src.copy_to_another_image(out, exif=False, iptc=True, xmp=False,
                                          comment=comment, icc=False, thumbnail=False)
                try:
                    src.copy_to_another_image(out, exif=True, iptc=False, xmp=False,
                                              comment=False, icc=False, thumbnail=False)
                except RuntimeError as exc:
                    log.warning("%s: EXIF too large (%s); copying the standard tags only, "
                                "without the maker note", name, one_line(exc))
                    out.clear_exif()
                    _copy_standard_exif(src, out)
                _copy_xmp_shedding(src, out, name)
            return out
    except BaseException:
        out.close()
        raise


def _copy_standard_exif(src: pyexiv2.ImageData, out: pyexiv2.ImageData) -> None:
    detail = src.read_exif_detail(encoding="latin-1")
    tags = {
        key: info["value"] for key, info in detail.items()
        if group_of(key) in ("Image", "Photo", "GPSInfo", "Iop")
        and key != "Exif.Photo.MakerNote" and info.get("typeName") != "unknown"
        and not is_raw_only(key, info.get("tagNumber"))
        and not isinstance(info["value"], list)
    }
    try:
        out.modify_exif(tags, encoding="latin-1")  # latin-1 round-trips the raw bytes
    except RuntimeError:
        out.clear_exif()
        for key, value in tags.items():  # find the ones exiv2 refuses, keep the rest
            try:
                out.modify_exif({key: value}, encoding="latin-1")
            except RuntimeError as exc:
                log.warning("EXIF tag %s not copied: %s", key, one_line(exc))
                out.modify_exif({key: None})


# XMP that grows without bound in files that went through Photoshop or Lightroom, and that
# describes the source's history rather than the photo.
_BULKY_XMP = ("Xmp.photoshop.DocumentAncestors", "Xmp.xmpMM.History", "Xmp.xmpMM.Ingredients",
              "Xmp.xmpMM.Pantry", "Xmp.xmpMM.Manifest", "Xmp.xmp.Thumbnails")


def _copy_xmp_shedding(src: pyexiv2.ImageData, out: pyexiv2.ImageData, name: str) -> None:
    packet = src.read_raw_xmp(encoding="utf-8")
    if not packet.strip():
        return
    try:
        out.modify_raw_xmp(packet)
        return
    except RuntimeError as exc:
        log.warning("%s: XMP too large (%s); dropping history and ancestors", name,
                    one_line(exc))
        out.clear_xmp()
    # Prune in a PNG, which has no 64 KiB limit, so exiv2 keeps every value's XMP type.
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    carrier = pyexiv2.ImageData(buf.getvalue())
    try:
        carrier.modify_raw_xmp(packet)
        keys = carrier.read_xmp(encoding="latin-1")
        bulky = [k for k in keys if k.startswith(_BULKY_XMP) or is_source_only_xmp(k)]
        if bulky:
            carrier.modify_xmp(dict.fromkeys(bulky), encoding="latin-1")
        packet = carrier.read_raw_xmp(encoding="utf-8")
    finally:
        carrier.close()
    try:
        out.modify_raw_xmp(packet)
    except RuntimeError as exc:
        log.warning("%s: XMP still too large (%s); not copied", name, one_line(exc))
        out.clear_xmp()
