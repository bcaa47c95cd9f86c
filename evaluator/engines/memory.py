"""Giving freed memory back to the operating system between work units.

Arrow's memory pool (mimalloc or jemalloc) and glibc's malloc keep freed pages for reuse, so
after a unit is scored the process still holds that unit's peak. The streaming engine calls
`release_free_memory` after each unit: the next unit, the per-video outcomes and the report
then start from what is really in use, and peak RSS follows the budget.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import pyarrow as pa


def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # glibc only (musl has none)
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def use_system_pool() -> None:
    """Arrow allocates from malloc: measured, its RSS after reading many batches stays close to
    the live data (mimalloc's and jemalloc's segments keep 10-40 % more), and malloc's freed
    pages go back with `release_free_memory`. Process-wide; set by the streaming engine."""
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def release_free_memory() -> None:
    """Return the memory Arrow's pool and malloc keep free to the operating system."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)
