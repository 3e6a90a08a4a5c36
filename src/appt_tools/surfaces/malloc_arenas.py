"""A long-running server's C allocator: few arenas, so freed memory is reused instead of piling up.

glibc's malloc gives each new thread its own arena (up to 8 per core). A server's threads (one per
SQLite connection from aiosqlite, the worker threads that run write transactions) allocate and free
SQLite pages and driver buffers in their own arenas, and memory freed in one arena is not reused by
another: under a soak the live memory stayed flat while the free space held by the arenas grew, and
the resident size with it. With two arenas the same work reuses the same free space.
"""

from __future__ import annotations

import ctypes
import sys

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2


def limit_malloc_arenas(count: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at `count` for threads started from now on; True if it took effect.
    Elsewhere (macOS, musl, Windows) nothing is changed. Call it before the server starts its threads:
    arenas made before stay."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, count))
