"""Large temporary arrays given back to the system when freed, while segments are built.

glibc serves a freed block of 128 KiB or more from mmap at first, then raises that threshold to the size of the
largest block freed (up to 32 MiB): after the first segment every posting array of the next ones came from the
heap, and the heap kept what they freed. A million passages (nine segments) peaked 1.8x a hundred thousand (one);
with the threshold pinned at 128 KiB, 500,000 passages' lexical build peaked at 370 MB instead of 465 MB
(benchmarks/scale.py measures the whole ingest). A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
THRESHOLD = 128 * 1024
_pinned = False


def pin_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold (once per process); whether it was pinned."""
    global _pinned
    if _pinned:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _pinned = bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    return _pinned
