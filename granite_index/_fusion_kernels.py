"""Numba kernel of hybrid fusion: the union of the legs' candidate lists, per query.

Its plain-numpy twin is :func:`union_numpy`; the tests compare the two. Inputs are the legs' own
lists padded to one length ``n``: ``ids`` int64 (n_legs, n_queries, n), ``scores`` float32 (same
shape), ``valid`` bool (same shape; false for padding). Output, per query, the union of the valid
ids in ascending order, padded with -1 to the longest union ``m``; each leg's score for each
candidate (NaN where the leg did not return it) and its 1-based rank among the leg's valid
entries (0 where it did not return it).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_SENTINEL = np.iinfo(np.int64).max


@njit(cache=True)
def union(ids, scores, valid):
    """See the module docstring. Returns (ids_u, scores_u, ranks_u, dup_leg); ``dup_leg`` is the
    first leg found repeating an id within one query's list, else -1 (outputs then undefined)."""
    n_legs, n_q, n = ids.shape
    uniq = np.empty((n_q, n_legs * n), np.int64)
    counts = np.zeros(n_q, np.int64)
    buf = np.empty(n_legs * n, np.int64)
    for q in range(n_q):
        c = 0
        for leg in range(n_legs):
            for j in range(n):
                if valid[leg, q, j]:
                    buf[c] = ids[leg, q, j]
                    c += 1
        srt = np.sort(buf[:c])
        u = 0
        for i in range(c):
            if i == 0 or srt[i] != srt[i - 1]:
                uniq[q, u] = srt[i]
                u += 1
        counts[q] = u
    m = 0
    for q in range(n_q):
        m = max(m, counts[q])
    ids_u = np.full((n_q, m), -1, np.int64)
    scores_u = np.full((n_legs, n_q, m), np.nan, np.float32)
    ranks_u = np.zeros((n_legs, n_q, m), np.int32)
    for q in range(n_q):
        u = counts[q]
        ids_u[q, :u] = uniq[q, :u]
        for leg in range(n_legs):
            r = 0
            for j in range(n):
                if valid[leg, q, j]:
                    r += 1
                    at = np.searchsorted(ids_u[q, :u], ids[leg, q, j])
                    if ranks_u[leg, q, at] != 0:
                        return ids_u, scores_u, ranks_u, leg
                    scores_u[leg, q, at] = scores[leg, q, j]
                    ranks_u[leg, q, at] = r
    return ids_u, scores_u, ranks_u, -1


def union_numpy(
    ids: np.ndarray, scores: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Plain-numpy twin of :func:`union` (vectorised over queries; the test oracle)."""
    n_legs, n_q, n = ids.shape
    all_ids = np.concatenate([np.where(valid[g], ids[g], _SENTINEL) for g in range(n_legs)], 1)
    all_scores = np.concatenate(list(scores), axis=1)
    all_ranks = np.concatenate([np.cumsum(v, axis=1) * v for v in valid], axis=1)
    leg_of = np.repeat(np.arange(n_legs), n)
    order = np.argsort(all_ids, axis=1, kind="stable")  # stable: same id -> leg order
    sid = np.take_along_axis(all_ids, order, axis=1)
    sleg = leg_of[order]
    ok = sid != _SENTINEL
    new = np.ones_like(ok)
    new[:, 1:] = sid[:, 1:] != sid[:, :-1]
    dup = ~new[:, 1:] & ok[:, 1:] & (sleg[:, 1:] == sleg[:, :-1])
    col = np.cumsum(new & ok, axis=1) - 1
    m = int(col.max()) + 1 if col.size else 0
    ids_u = np.full((n_q, m), -1, dtype=np.int64)
    scores_u = np.full((n_legs, n_q, m), np.nan, dtype=np.float32)
    ranks_u = np.zeros((n_legs, n_q, m), dtype=np.int32)
    if dup.any():
        return ids_u, scores_u, ranks_u, int(sleg[:, 1:][dup][0])
    rows = np.broadcast_to(np.arange(n_q)[:, None], sid.shape)
    first = ok & new
    ids_u[rows[first], col[first]] = sid[first]
    at = (sleg[ok], rows[ok], col[ok])
    scores_u[at] = np.take_along_axis(all_scores, order, axis=1)[ok]
    ranks_u[at] = np.take_along_axis(all_ranks, order, axis=1)[ok]
    return ids_u, scores_u, ranks_u, -1
