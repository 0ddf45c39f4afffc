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


# fusion strategies as the kernel knows them (see granite_index.fusion)
MINMAX, ZSCORE, THEORETICAL, RRF, DBSF = 0, 1, 2, 3, 4


@njit(cache=True)
def _contribution(kind, x, cnt, lo, hi, mean, std, tmin, rank, rrf_k):
    """One leg's contribution for one candidate: ``x`` its score (NaN: missing), the rest the
    statistics of the leg's own list (NaN when it is empty). Mirrors the strategies' numpy
    ``_contributions`` in :mod:`granite_index.fusion`."""
    if kind == RRF:
        return 1.0 / (rrf_k + max(float(rank), 1.0)) if rank > 0 else 0.0
    if kind == MINMAX:
        v = (x - lo) / (hi - lo) if hi > lo else (1.0 if x >= hi else 0.0)
        return v if v > 0.0 else 0.0  # NaN -> 0, the floor
    if kind == ZSCORE:
        if std > 0:
            v, floor = (x - mean) / std, (lo - mean) / std
        else:
            v, floor = 0.0, 0.0
        return v if v > floor else floor  # NaN -> floor
    if kind == THEORETICAL:
        v = (x - tmin) / (hi - tmin) if hi > tmin else 0.0
        return v if v > 0.0 else 0.0
    # DBSF: Qdrant's mean +- 3 sample standard deviations, clipped to [0, 1]
    sd = std * np.sqrt(cnt / (cnt - 1.0)) if cnt > 1 else 0.0
    if sd > 0:
        v = (x - (mean - 3.0 * sd)) / (6.0 * sd)
    else:
        v = 1.0 if x > mean else (0.5 if x == mean else 0.0)
    v = v if v > 0.0 else 0.0
    return v if v < 1.0 else 1.0


@njit(cache=True)
def fuse_topk(ids_u, scores_u, ranks_u, kind, weights, tmin, rrf_k, k):
    """Fused top-``k`` over :func:`union` output, per query: statistics of each leg's own list,
    normalised contributions, their weighted sum (float64, legs in order, zero weights skipped),
    then the best ``k`` by float32 fused score, ties to the smaller id (ids are ascending in a
    row, so to the earlier candidate). Returns ``(ids, scores)`` (n_queries, k), padded with -1 /
    -inf. The numpy path (``Fusion.fuse`` on :class:`~granite_index.fusion.Candidates`) is its
    twin; list statistics are summed in another order there, so the two agree to rounding."""
    n_legs, n_q, m = scores_u.shape
    out_ids = np.full((n_q, k), -1, np.int64)
    out_s = np.full((n_q, k), -np.inf, np.float32)
    fused = np.empty(m, np.float64)
    key = np.empty(m, np.int64)
    f32 = np.empty(m, np.float32)
    bits = f32.view(np.int32)
    for q in range(n_q):
        fused[:] = 0.0
        for leg in range(n_legs):
            w = weights[leg]
            if w == 0:
                continue
            cnt, total = 0, 0.0
            lo, hi = np.inf, -np.inf
            for j in range(m):
                if ranks_u[leg, q, j] > 0:
                    x = np.float64(scores_u[leg, q, j])
                    cnt += 1
                    total += x
                    lo, hi = min(lo, x), max(hi, x)
            mean, std = np.nan, np.nan
            if cnt > 0:
                mean = total / cnt
                var = 0.0
                for j in range(m):
                    if ranks_u[leg, q, j] > 0:
                        var += (np.float64(scores_u[leg, q, j]) - mean) ** 2
                std = np.sqrt(var / cnt)
            else:
                lo, hi = np.nan, np.nan
            for j in range(m):
                if ids_u[q, j] >= 0:
                    x = np.float64(scores_u[leg, q, j])
                    c = _contribution(
                        kind, x, cnt, lo, hi, mean, std, tmin[leg], ranks_u[leg, q, j], rrf_k
                    )
                    fused[j] += w * c
        for j in range(m):
            f32[j] = np.float32(fused[j]) + np.float32(0.0)  # -0 -> +0
        n = 0
        for j in range(m):
            if ids_u[q, j] >= 0:
                b = np.int64(bits[j])
                if b < 0:
                    b ^= 0x7FFFFFFF
                key[n] = ~((b << 32) + (0xFFFFFFFF - j))  # ascending key = best first
                n += 1
        order = np.argsort(key[:n], kind="mergesort")
        for r in range(min(k, n)):
            inv = key[order[r]]
            j = 0xFFFFFFFF - (~inv & 0xFFFFFFFF)
            out_ids[q, r] = ids_u[q, j]
            out_s[q, r] = f32[j]
    return out_ids, out_s
