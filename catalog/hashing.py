"""Content hashes: how photobatch identifies a file (by what it holds, not where it is)."""

from __future__ import annotations

import hashlib
from pathlib import Path

HASH_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Stream the file through sha256 (photos are tens of MB; never read them whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
