"""Our XMP record in the photobatch namespace: its keys, values, CreatorTool, reading it back."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from photobatch.plugins.metadata.exiv2 import (
    NAMESPACE_PREFIX,
    open_file,
    read_group,
)
from photobatch.plugins.metadata.values import first


_XMP_RECORD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@functools.lru_cache(maxsize=1)
def creator_tool() -> str:
    """Return the xmp:CreatorTool value we write: "photobatch <version>"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"photobatch {version('photobatch')}"
    except PackageNotFoundError:
        return "photobatch dev"


def normalise_record(record: dict[str, str]) -> dict[str, str]:
    """Check record keys are XMP property names and values are text; return them as str."""
    clean: dict[str, str] = {}
    for key, value in record.items():
        if not isinstance(key, str) or not _XMP_RECORD_KEY.match(key):
            raise ValueError(
                f"record key {key!r} is not a valid XMP property name "
                "(letters, digits, '_' and '-', not starting with a digit)")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError(f"record value for {key!r} must be a string, got "
                            f"{type(value).__name__} (serialise structures with json.dumps)")
        text = str(value)
        if _XML_FORBIDDEN.search(text):
            raise ValueError(f"record value for {key!r} contains characters XML cannot hold")
        clean[key] = text
    return clean


def read_record(path: Path) -> dict[str, str]:
    """Return the ``Xmp.photobatch.*`` record of an output, keyed without the prefix."""
    img = open_file(path)
    try:
        xmp = read_group(img, "xmp")
    finally:
        img.close()
    prefix = f"Xmp.{NAMESPACE_PREFIX}."
    return {k[len(prefix):]: v if isinstance(v, str) else str(first(v) or "")
            for k, v in xmp.items() if k.startswith(prefix)}


def dumps_params(params: dict) -> str:
    """Serialise recipe parameters for the ``Params`` record item (sorted keys, compact JSON)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
