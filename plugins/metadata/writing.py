"""write_output_metadata: give an output the source's metadata, filtered, plus our record."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from photobatch.plugins.metadata.copying import copy_metadata
from photobatch.plugins.metadata.exiv2 import (
    LOCK,
    MetadataError,
    one_line,
    open_image,
    read_group,
    register_namespace,
)
from photobatch.plugins.metadata.policies import POLICIES, drop_iptc, exif_changes, xmp_changes
from photobatch.plugins.metadata.record import normalise_record
from photobatch.plugins.metadata.rights import rights_changes, set_rights
from photobatch.plugins.metadata.thumbnail import replace_thumbnail

log = logging.getLogger(__name__)


def write_output_metadata(
    source: Path,
    output: Path,
    *,
    width: int,
    height: int,
    record: dict[str, str],
    policy: str = "all",
    icc: str | bytes = "source",
    pixels=None,
    photographer: dict | None = None,
    ppi: int = 0,
    rights: dict[str, str] | None = None,
    rights_replace: bool = False,
) -> None:
    """Give ``output`` the metadata of ``source``, filtered by ``policy``, plus our XMP record.

    Copies EXIF, IPTC, XMP and the ICC profile; sets Orientation 1 (the output's pixels are
    upright) and the pixel dimensions to ``width`` x ``height``; drops RAW-only tags; writes a
    fresh EXIF thumbnail from the output's pixels; sets xmp:CreatorTool and one
    ``Xmp.photobatch.<Key>`` per item of ``record``. ``policy``: "all", "no-location" (no GPS),
    "copyright-only" (creator and rights only) or "none" (our record only). ``icc``: "source"
    embeds the source's profile when it has one, "output" keeps what the writer embedded (for
    outputs converted to another colour space), a profile's bytes embed that profile (what the
    reader decoded the pixels into: a RAW's rendering space, sRGB for a CMYK source). The
    source is only ever read; the output is replaced atomically. ``pixels``: the output's own
    pixels (PIL image or H x W x 3 array) when the caller still has them, for the thumbnail.
    ``photographer``: XMP values from the photo's sidecar (rating, label, keywords) that the
    source file itself lacks, set when the policy keeps descriptive metadata. ``ppi``: the
    resolution to record instead of the source's (0: the source's). ``rights``: the config's
    copyright preset for this photo (Rights.values), written where the source has no value of
    its own (everywhere with ``rights_replace``), under every policy but "none".
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(repr(p) for p in POLICIES)}; "
                         f"got {policy!r}")
    if not isinstance(icc, bytes) and icc not in ("source", "output"):
        raise ValueError(f"icc must be 'source', 'output' or a profile's bytes; got {icc!r}")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    record = normalise_record(record)
    source, output = Path(source), Path(output)
    try:
        if os.path.samefile(source, output):
            raise ValueError(f"output {output} is the source file itself")
    except OSError:
        pass  # one of them is missing: reported below with a clearer message

    try:
        src_data = source.read_bytes()
    except OSError as exc:
        raise MetadataError(f"cannot read metadata of {source.name}: "
                            f"{exc.strerror or exc}") from exc
    try:
        out_data = output.read_bytes()
    except OSError as exc:
        raise MetadataError(f"cannot write metadata to {output.name}: "
                            f"{exc.strerror or exc}") from exc

    register_namespace()
    notes: list[str] = []
    try:
        src = open_image(src_data, notes)
    except RuntimeError as exc:
        raise MetadataError(f"cannot read metadata of {source.name}: {one_line(exc)}") from exc
    for note in notes:
        log.warning("metadata of %s: %s", source.name, note)
    try:
        if isinstance(icc, bytes):
            src_icc = icc
        else:
            src_icc = src.read_icc() if icc == "source" else b""
        own = {} if not rights or policy == "none" else {
            **read_group(src, "exif", []), **read_group(src, "iptc", []), **read_group(src, "xmp", [])}
        try:
            out = copy_metadata(src, out_data, output.name, policy)
        except MetadataError as exc:
            raise MetadataError(f"cannot write metadata to {output.name}: {exc}") from exc
    finally:
        src.close()

    try:
        data = _rewrite(out, src_icc=src_icc, width=width, height=height, record=record,
                        policy=policy, name=output.name, pixels=pixels,
                        photographer=photographer, ppi=ppi,
                        rights=(rights, own, rights_replace) if rights and policy != "none" else None)
    except RuntimeError as exc:
        raise MetadataError(f"cannot write metadata to {output.name}: {one_line(exc)}") from exc

    try:
        atomic_write(output, data)
    except OSError as exc:
        raise MetadataError(f"cannot write metadata to {output.name}: "
                            f"{exc.strerror or exc}") from exc


def _rewrite(out, *, src_icc: bytes, width: int, height: int, record: dict[str, str],
             policy: str, name: str, pixels=None, photographer: dict | None = None,
             ppi: int = 0, rights: tuple | None = None) -> bytes:
    # Edits the parsed output in place and closes it. Working on the copy target instead of
    # a fresh parse of its bytes gave byte-identical files for every sample format (JPEG,
    # DNG, 16-bit TIFF and PNG, HEIC) into JPEG, TIFF and PNG under every policy.
    try:
        with LOCK:
            mime = out.get_mime_type()
            # Keys are read as Latin-1 and deletions written back as Latin-1, so a key or value
            # in some other encoding round-trips byte for byte; new values are UTF-8.
            exif_detail = out.read_exif_detail(encoding="latin-1")
            iptc = out.read_iptc(encoding="latin-1")
            xmp = out.read_xmp(encoding="latin-1")

            if src_icc and out.read_icc() != src_icc:
                out.modify_icc(src_icc)
            final_icc = out.read_icc()

            drop, exif_set = exif_changes(exif_detail, policy, width, height, mime,
                                           final_icc, ppi)
            if drop:
                out.modify_exif(dict.fromkeys(drop), encoding="latin-1")
            if exif_set:
                out.modify_exif(exif_set)
            drop = [k for k in iptc if drop_iptc(k, policy)]
            if drop:
                out.modify_iptc(dict.fromkeys(drop), encoding="latin-1")
            drop, xmp_set = xmp_changes(xmp, policy, width, height, record, photographer)
            if drop:
                out.modify_xmp(dict.fromkeys(drop), encoding="latin-1")
            out.modify_xmp(xmp_set)
            if rights:
                values, own, replace = rights
                kept_iptc = {k: v for k, v in iptc.items() if not drop_iptc(k, policy)}
                set_rights(out, rights_changes(values, own, kept_iptc, replace))

            if mime == "image/jpeg" and policy != "none":
                replace_thumbnail(out, name, pixels)
            elif out.read_thumbnail():
                out.clear_thumbnail()
            return out.get_bytes()
    finally:
        out.close()


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, keeping its permissions (new files: umask's)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # os.open with 0o666 lets the umask decide a new file's permissions, as open() would.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
