"""Serial and parallel compilations of one batch kernel, and the call that picks between them.

Plain Python (nothing here is compiled), so kernel modules may share it without calling a
kernel of another file: each compiled copy keeps its own file's code and its own cache entry.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numba
from numba import njit


def _renamed(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A copy of ``fn`` under another name: numba's on-disk cache is keyed by the function's
    qualified name, so two variants of one function would otherwise overwrite each other."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = name
    return copy


def serial_and_parallel(fn: Callable[..., Any], name: str) -> tuple[Any, Any]:
    """``fn`` (a batch kernel whose outer loop is a ``prange`` over query groups) compiled twice:
    ``<name>_serial`` and ``<name>_parallel``."""
    serial = njit(cache=True, nogil=True)(_renamed(fn, f"{name}_serial"))
    parallel = njit(cache=True, nogil=True, parallel=True)(_renamed(fn, f"{name}_parallel"))
    return serial, parallel


def run_groups(serial: Any, parallel: Any, args: tuple, n_groups: int, threads: int) -> Any:
    """Call ``serial(*args)`` for one group of queries, else ``parallel(*args)`` on
    ``min(threads, NUMBA_NUM_THREADS)`` threads (numba's thread count restored after)."""
    if n_groups == 1:
        return serial(*args)
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        return parallel(*args)
    finally:
        numba.set_num_threads(previous)
