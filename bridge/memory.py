"""Give large buffers back to the operating system as soon as they are freed.

glibc's malloc serves a large request with its own ``mmap`` (returned to the system on
``free``) only above a threshold that it raises to the size of every large block freed, up to
32 MiB. After the first large message, later ones of that size come from the heap instead,
and the heap keeps the pages: a drain of eight 20 MB messages peaked at 5.5x the message over
idle instead of 2.9x (``make bench``, memory rows). Fixing the threshold at 1 MiB keeps peak
memory proportional to the messages in flight. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

__all__ = ["MMAP_THRESHOLD", "fix_mmap_threshold"]

MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Set glibc's mmap threshold once and for all; True when it took effect."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    return False
