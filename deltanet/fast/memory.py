"""glibc's allocator told to keep freed arrays for reuse, not to hand them back to the system.

A training step allocates and frees the same large arrays every step (layer outputs, window
copies, gradients). glibc serves a request of more than ``M_MMAP_THRESHOLD`` (128 KiB at first)
with a fresh ``mmap`` and unmaps it on ``free``, and trims the heap's top whenever more than
``M_TRIM_THRESHOLD`` of it is free; either way the next step's array is fresh memory, and its
first write page-faults on every 4 KiB page (and the kernel zeroes each). That cost more than the
arithmetic: the main job's step fell from 4.3 to 3.2 ms and LeNet-5's at batch 256 from 12.0
to 9.6 ms (``python -m benchmarks``) with the thresholds of ``plan.Thresholds.malloc_mmap`` and
``malloc_trim`` (docs/performance.md). The price: up to ``malloc_trim`` bytes of freed memory
stay mapped in the process after a peak.

``keep_freed_memory`` runs once, when ``import deltanet`` runs, on glibc only; it does nothing
where the environment already sets either glibc variable (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``: the user's choice) or ``DELTANET_MALLOC=0``.
"""

from __future__ import annotations

import ctypes
import os
import sys

_done = False
applied = False  # whether this process's call set the thresholds


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (once a process); True when they were set."""
    global _done, applied
    if _done:
        return False
    _done = True
    env = os.environ
    if (
        not sys.platform.startswith("linux")
        or env.get("DELTANET_MALLOC", "1") == "0"
        or "MALLOC_MMAP_THRESHOLD_" in env
        or "MALLOC_TRIM_THRESHOLD_" in env
    ):
        return False
    from deltanet.fast.plan import THRESHOLDS

    try:
        # the process's own symbols hold libc's: no library search (find_library runs
        # ldconfig in a subprocess, which import deltanet should not)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # option codes of glibc's malloc.h
    ok = mallopt(m_mmap_threshold, THRESHOLDS.malloc_mmap) == 1
    applied = mallopt(m_trim_threshold, THRESHOLDS.malloc_trim) == 1 and ok
    return applied
