"""Dropping a memory-mapped array's resident pages from this process (Linux / macOS ``madvise``).

A read-only map's pages are copies of the file: after ``MADV_DONTNEED`` they leave the process's
resident set (the kernel's page cache may keep them) and are read again from the file if touched.
"""

from __future__ import annotations

import mmap

import numpy as np

__all__ = ["release_pages"]


def release_pages(arr: np.ndarray, lo: int, hi: int) -> int:
    """Release the whole pages inside ``arr[lo:hi]`` when ``arr`` is a read-only ``np.memmap``.

    Returns the bytes released (0 for an in-memory array, a range shorter than a page, or a
    platform without ``madvise``). The array's contents are unchanged.
    """
    mm = getattr(arr, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return 0
    if arr.flags.writeable or not arr.flags.c_contiguous:
        return 0  # a writable map may hold changes the file does not
    start_of_map = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    first = arr.ctypes.data - start_of_map + lo * arr.itemsize
    last = arr.ctypes.data - start_of_map + hi * arr.itemsize
    page = mmap.PAGESIZE
    start = -(-first // page) * page  # whole pages only: neighbours may still be in use
    end = last // page * page
    if end <= start:
        return 0
    mm.madvise(mmap.MADV_DONTNEED, start, end - start)
    return end - start
