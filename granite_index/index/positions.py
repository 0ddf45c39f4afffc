"""The one sorted-key lookup both indexes use: caller ids (int64 keys) → live positions."""

from __future__ import annotations

import numpy as np


class KeyPositions:
    """Vectorised ``key → position`` over the live positions of an index.

    Parameters
    ----------
    keys : numpy.ndarray of int64, shape (n_positions,)
        The key stored at each position.
    alive : numpy.ndarray of bool or uint8, shape (n_positions,)
        Which positions are live (deleted ones are never found).

    ascending : bool
        The caller knows ``keys`` ascend strictly (a collection's keys do): the lookup then
        searches them in place, with no sort and no copy.

    A snapshot: build a new one after the index changes.
    """

    def __init__(self, keys: np.ndarray, alive: np.ndarray, *, ascending: bool = False) -> None:
        self._alive = alive if ascending else None
        if ascending:
            self._sorted, self._pos = keys, None
            return
        live = np.flatnonzero(alive)
        order = np.argsort(keys[live], kind="stable")
        self._sorted = np.asarray(keys[live][order])
        self._pos = live[order]

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Live positions of ``keys`` int64 (n,), int64 (n,), -1 where absent or deleted."""
        if len(self._sorted) == 0:
            return np.full(len(keys), -1, np.int64)
        i = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
        if self._pos is None:  # ascending keys: the index is the position
            ok = (self._sorted[i] == keys) & (self._alive[i] > 0)
            return np.where(ok, i, -1)
        return np.where(self._sorted[i] == keys, self._pos[i], -1)
