"""`release_free_heap`: memory freed into glibc's heap (below its mmap threshold, under a chunk still in
use, so glibc's own trimming of the heap's top cannot return it) leaves the process once it is called."""

import ctypes
import sys

import pytest

from vireo.inference.native.heap import _libc, release_free_heap

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or getattr(_libc(), "malloc_trim", None) is None, reason="glibc only"
)


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_freed_heap_memory_is_returned():
    libc = _libc()
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    chunks = [libc.malloc(64 << 10) for _ in range(3200)]  # 200 MB in heap-sized pieces
    for chunk in chunks:
        ctypes.memset(chunk, 1, 64 << 10)
    pinned = libc.malloc(64 << 10)  # above them: the heap's top stays in use
    for chunk in chunks:
        libc.free(chunk)
    before = resident_mb()
    release_free_heap()
    after = resident_mb()
    libc.free(pinned)
    assert before - after > 150, (before, after)
