"""The process heap: large blocks given back to the system once freed (glibc's malloc).

Why ctypes: nothing in the standard library or on PyPI sets ``mallopt`` or calls ``malloc_trim``.
Both are no-ops where the C library is not glibc.
"""

from __future__ import annotations

from typing import Any

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
# Above asyncio's read buffer (each recv() asks for 256 KiB, then shrinks it to what came): under
# it, every read of every request cost an mmap, an mremap and a munmap (a third of a cached
# lookup's system calls, and fresh pages to fault in each time).
MMAP_THRESHOLD_BYTES = 512 * 1024
_libc: Any = None  # the C library once loaded; False when it cannot be


def _c_library() -> Any:
    global _libc
    if _libc is None:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name) if name else False
        except OSError:
            _libc = False
    return _libc


def give_back_free_memory() -> None:
    """``malloc_trim(0)``: hand the heap's free pages back to the system (glibc only). Called after
    a large document, whose pieces (chunks of the body, parser buffers) came from the heap."""
    libc = _c_library()
    if libc and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def keep_large_blocks_returnable() -> bool:
    """Fix glibc's mmap threshold at 512 KiB, so that every large block (a 10 MiB body, its text,
    a refused document's scalar) is mapped on its own and given back to the system when freed.
    By default glibc raises the threshold after the first large free, after which such blocks
    come from the heap and stay in the process: refused 10 MiB documents grew a node to 1.3 GB
    and kept it there. False where the C library is not glibc."""
    libc = _c_library()
    return bool(libc and hasattr(libc, "mallopt") and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1)
