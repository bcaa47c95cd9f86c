"""Giving freed memory back to the operating system between work units.

Arrow's memory pool (mimalloc or jemalloc) and glibc's malloc keep freed pages for reuse, so
after a unit is scored the process still holds that unit's peak. The streaming engine sets
`use_system_allocator` and calls `release_free_memory` after each unit: the next unit, the
per-video outcomes and the report then start from what is really in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import pyarrow as pa


def _libc_function(name: str) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return getattr(libc, name)  # glibc only (musl has neither)
    except (OSError, AttributeError):
        return None


_TRIM = _libc_function("malloc_trim")
_MALLOPT = _libc_function("mallopt")
M_MMAP_THRESHOLD = -3
# glibc raises its mmap threshold (up to 32 MB) each time a large block is freed, after which
# large arrays come from the heap and freed ones stay resident between the live per-video
# outcomes. A fixed threshold keeps every array of 8 MB or more in its own mapping, returned
# to the system when it is freed. Measured at 200k videos (64-d): peak RSS 778 -> 754 MiB
# for the process at 8 MB, with no change in time; at 1 MB the same RSS, 3-17 % slower (the
# core's pair chunks would be mapped afresh each time).
MMAP_THRESHOLD_BYTES = 8 << 20


def use_system_allocator() -> None:
    """Arrow allocates from malloc, and malloc maps every block of 8 MB or more on its own.

    Measured: Arrow's RSS after reading many batches stays close to the live data on malloc
    (mimalloc's and jemalloc's segments keep 10-40 % more), and malloc's freed pages go back
    with `release_free_memory`. Process-wide; set by the streaming engine."""
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())
    if _MALLOPT is not None and MMAP_THRESHOLD_BYTES > 0:
        _MALLOPT(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def release_free_memory() -> None:
    """Return the memory Arrow's pool and malloc keep free to the operating system."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)
