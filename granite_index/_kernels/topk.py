"""Generic row-wise top-k of a dense score matrix (the dense index's scan), with its numpy twin."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def topk_rows(scores, k):
    """Row-wise top-``k`` of a dense score matrix float32 (n_queries, n): ``(values, positions)``
    (n_queries, min(k, n)), best first, ties to the smaller position, ``-inf`` entries left out
    (position -1, value -inf). A bounded min-heap per row; the numpy twin is
    :func:`topk_rows_numpy`."""
    n_q, n = scores.shape
    kk = min(k, n)
    out_v = np.full((n_q, kk), -np.inf, np.float32)
    out_p = np.full((n_q, kk), -1, np.int64)
    hv = np.empty(max(kk, 1), np.float32)
    hp = np.empty(max(kk, 1), np.int64)
    for q in range(n_q):
        size = 0
        for j in range(n):
            v = scores[q, j]
            if v == -np.inf or v != v:
                continue
            if size < kk:  # sift up; the root is the worst kept (lowest value, then largest pos)
                i = size
                size += 1
                while i > 0:
                    parent = (i - 1) >> 1
                    if hv[parent] > v or (hv[parent] == v and hp[parent] < j):
                        hv[i], hp[i] = hv[parent], hp[parent]
                        i = parent
                    else:
                        break
                hv[i], hp[i] = v, j
            elif v > hv[0]:  # a later position never beats an equal value
                i = 0
                while True:  # sift down from the root
                    c = 2 * i + 1
                    if c >= size:
                        break
                    if c + 1 < size and (
                        hv[c + 1] < hv[c] or (hv[c + 1] == hv[c] and hp[c + 1] > hp[c])
                    ):
                        c += 1
                    if hv[c] < v or (hv[c] == v and hp[c] > j):
                        hv[i], hp[i] = hv[c], hp[c]
                        i = c
                    else:
                        break
                hv[i], hp[i] = v, j
        by_pos = np.argsort(hp[:size], kind="mergesort")
        order = by_pos[np.argsort(-hv[:size][by_pos], kind="mergesort")]  # stable: ties by position
        for r in range(size):
            out_v[q, r] = hv[order[r]]
            out_p[q, r] = hp[order[r]]
    return out_v, out_p


def topk_rows_numpy(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain-numpy twin of :func:`topk_rows` (a stable sort per row)."""
    n_q, n = scores.shape
    kk = min(k, n)
    out_v = np.full((n_q, kk), -np.inf, np.float32)
    out_p = np.full((n_q, kk), -1, np.int64)
    for q in range(n_q):
        keep = np.flatnonzero(np.isfinite(scores[q]) | (scores[q] == np.inf))
        order = keep[np.argsort(-scores[q, keep], kind="stable")][:kk]
        out_v[q, : len(order)] = scores[q, order]
        out_p[q, : len(order)] = order
    return out_v, out_p
