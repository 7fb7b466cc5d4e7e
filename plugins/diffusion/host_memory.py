"""Keep the memory torch frees inside the process, for the next photo's tensors of the same sizes.

glibc hands every freed block above its mmap threshold back to the kernel and trims the free
top of its heap. A pipeline call frees and allocates the same large tensors at every denoising
step and for every photo, so each of them is page-faulted in afresh: on the stand-in model about
17,000 faults a photo, and whole runs about 3 % slower on a 2-core VM (bench/RESULTS.md). A1111 preloads
tcmalloc on Linux for the same reason; glibc's own tunables (``mallopt``) do it without another
library or a restart. The cost is that the process keeps its peak host memory instead of
returning it between photos, which is what a daemon processing one shoot after another wants.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

KEEP_FREED_MEMORY_ENV = "PHOTOBATCH_KEEP_FREED_MEMORY"

# mallopt parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# Blocks up to 512 MB come from the heap (a 24 MP float picture is 288 MB); up to 1 GB of free
# heap top is kept; the heap grows 64 MB at a time instead of one system call per tensor.
MMAP_THRESHOLD = 512 << 20
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse (once per process).

    Returns whether it is in effect: False where the C library is not glibc (macOS, Windows,
    musl) or where ``PHOTOBATCH_KEEP_FREED_MEMORY=0`` turns it off.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(KEEP_FREED_MEMORY_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
    if not ok:
        log.debug("glibc refused a malloc setting; freed memory goes back to the kernel as before")
    _applied = ok
    return ok


def _glibc_mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # gnu_get_libc_version exists only in glibc: musl has a mallopt that does nothing.
        libc.gnu_get_libc_version
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt
