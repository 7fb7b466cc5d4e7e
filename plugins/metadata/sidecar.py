"""XMP sidecars next to outputs, for DAMs that read sidecars (darktable, Capture One, Lightroom).

A sidecar holds the output's XMP plus its EXIF and IPTC translated to XMP. One is written only
where there is none or where the one there is ours; ours is rewritten only when its content
changed, so a DAM watching the folder sees no spurious modification.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyexiv2

from photobatch.plugins.metadata.exiv2 import (
    LOCK,
    NAMESPACE_URI,
    MetadataError,
    open_file,
)
from photobatch.plugins.metadata.policies import is_structural_xmp
from photobatch.plugins.metadata.writing import atomic_write

log = logging.getLogger(__name__)

SIDECAR_STYLES = ("lightroom", "darktable")

_EMPTY_PACKET = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
                 '<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta><?xpacket end="w"?>')
# Namespaces of edits a person made in a DAM: a sidecar holding them is theirs, whatever else
# it holds (darktable and Lightroom carry foreign namespaces along).
_EDIT_NAMESPACES = (b"http://darktable.sf.net/", b"http://ns.adobe.com/camera-raw-settings/1.0/")


def sidecar_path(output: Path, style: str) -> Path:
    """Where the sidecar of ``output`` goes: ``IMG_1.xmp`` (lightroom) or ``IMG_1.jpg.xmp``."""
    output = Path(output)
    if style == "lightroom":
        return output.with_suffix(".xmp")
    if style == "darktable":
        return output.with_name(output.name + ".xmp")
    raise ValueError(f"sidecar style must be one of {', '.join(map(repr, SIDECAR_STYLES))}; "
                     f"got {style!r}")


def write_sidecar(output: Path, sidecar: Path) -> str:
    """Write the XMP sidecar of ``output``; return "written", "unchanged" or "foreign".

    "foreign": a sidecar we did not write is there; it is left alone (and a warning logged).
    Raises MetadataError when the output cannot be read or the sidecar cannot be written.
    """
    output, sidecar = Path(output), Path(sidecar)
    content = sidecar_content(output)
    try:
        existing = sidecar.read_bytes()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise MetadataError(f"cannot read the sidecar {sidecar.name}: "
                            f"{exc.strerror or exc}") from exc
    if existing is not None:
        if existing == content:
            return "unchanged"
        if not is_our_sidecar(existing):
            log.warning("not writing the sidecar %s: a sidecar photobatch did not write is there",
                        sidecar)
            return "foreign"
    try:
        atomic_write(sidecar, content)
    except OSError as exc:
        raise MetadataError(f"cannot write the sidecar {sidecar.name}: "
                            f"{exc.strerror or exc}") from exc
    return "written"


def is_our_sidecar(data: bytes) -> bool:
    """True for a sidecar photobatch wrote and nobody has developed the picture in since."""
    return NAMESPACE_URI.encode() in data and not any(ns in data for ns in _EDIT_NAMESPACES)


def sidecar_content(output: Path) -> bytes:
    """The sidecar packet of ``output``: its XMP, plus EXIF and IPTC as XMP where XMP lacks them."""
    img = open_file(output)
    try:
        with LOCK:
            packet = img.read_raw_xmp()
            exif = img.read_exif()
            iptc = img.read_iptc()
    finally:
        img.close()
    carrier = pyexiv2.ImageData(_EMPTY_PACKET.encode("utf-8"))
    try:
        with LOCK:
            if packet.strip():
                carrier.modify_raw_xmp(packet)
            present = carrier.read_xmp()
            translated = {**pyexiv2.convert_iptc_to_xmp(iptc), **pyexiv2.convert_exif_to_xmp(exif)}
            # How the output stores its pixels is no business of a sidecar.
            missing = {k: v for k, v in translated.items()
                       if k not in present and not is_structural_xmp(k)}
            if missing:
                carrier.modify_xmp(missing)
            return carrier.get_bytes()
    finally:
        carrier.close()
