"""Keep big allocations in the process, so typing in a huge file stays smooth.

Each keystroke in a document makes a new immutable snapshot: a copy of its text
(documents.py). For a 10 MB file that is tens of MB a keystroke. glibc's malloc
serves such sizes with mmap and gives them back with munmap, so every keystroke
faulted in thousands of fresh pages: the p95 of a keystroke in a 10 MB file was
8.6 ms, 4.9 ms with the thresholds below (bench/documents.py). Other C libraries
(musl, macOS, Windows) have no mallopt: nothing changes there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Allocations up to this size come from the heap, where freed memory is reused
# (32 MB is glibc's largest mmap threshold on 64-bit).
MMAP_THRESHOLD = 32 * 1024 * 1024
# Free memory at the top of the heap kept rather than handed back at once.
TRIM_THRESHOLD = 64 * 1024 * 1024


def keep_big_allocations() -> bool:
    """Raise glibc's mmap and trim thresholds; False where there is no glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    done = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done
    log.debug("malloc thresholds raised: %s", done)
    return done
