"""Exact top-k with MaxScore dynamic pruning, and exact impact lookups from a document-major copy.

Array conventions are those of :mod:`granite_index._kernels.sparse_scoring`: a segment's
``term_ids`` / ``term_ptr`` / ``post_doc`` and one weight per posting in ``vals`` (the BM25 cache
``tf / (tf + norm)`` or the impacts); queries as CSR (``q_ptr``, ``q_terms``, ``q_w``), each
query's terms heaviest first (as ``SparseIndex.prepare`` orders them). ``tmax`` holds, per term
of the segment, the largest of its ``vals`` (:func:`term_max`); a term's upper bound is
``q_w · tmax``.

How a query is answered (per segment, :func:`pruned_topk`):

1. Terms are scored in full, in the query's order, into plain accumulators, until ``theta`` (the
   k-th best partial score among the first postings of a scored term: a lower bound of the final
   k-th best score) exceeds the sum of the bounds of the terms left. From then on no document
   with a lower partial score than ``theta`` minus those bounds can reach the top k.
2. The documents that still can are collected by a blocked scan of the accumulators (a block
   whose largest accumulator is too low is passed over in one comparison), ascending.
3. Each remaining term is merged into them by a galloping search through its postings (cost
   ``c · log(len / c)`` for ``c`` candidates, instead of ``len``); after each term the ones that
   can no longer reach ``theta`` are dropped and ``theta`` rises.
4. The best k candidates are taken, ties to the lower position.

Every document's terms are added in the query's order, as the exhaustive kernels add them, so
scores are bit-identical to theirs; bounds are compared with a relative margin of
:data:`MARGIN`. The exhaustive kernels (and their numpy twin) are this path's oracle in the tests.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from granite_index._kernels.batches import run_groups, serial_and_parallel

#: relative safety margin of the pruning comparisons (float32 rounding of sums in another order)
MARGIN = 1e-5
#: theta is recomputed only after the bounds left shrank by this factor since the last time
RECHECK = 0.9


@njit(cache=True, nogil=True)
def term_max(q_terms, term_ids, term_ptr, vals, tmax, ready):
    """``tmax[i] = max(vals[term_ptr[i]:term_ptr[i + 1]])`` for the query terms not yet ``ready``
    (``i`` indexes ``term_ids``); marks them ready."""
    n_terms = len(term_ids)
    for j in range(len(q_terms)):
        t = q_terms[j]
        i = np.searchsorted(term_ids, t)
        if i < n_terms and term_ids[i] == t and not ready[i]:
            v = vals[term_ptr[i] : term_ptr[i + 1]]
            mx = np.float32(0)
            for x in range(len(v)):
                mx = v[x] if v[x] > mx else mx
            tmax[i] = mx
            ready[i] = 1


@njit(cache=True, nogil=True, inline="always")
def _key(s, d):
    """(score >= 0, local position < 2**32) as one uint64 that sorts best first, ties to the lower
    position (a non-negative float32's bits order like its value)."""
    bits = np.uint32(np.array([s], dtype=np.float32).view(np.uint32)[0])
    return (np.uint64(0xFFFFFFFF - bits) << np.uint64(32)) | np.uint64(d)


@njit(cache=True, nogil=True)
def _kth_alive(acc, docs, n, alive, base, k, buf):
    """The k-th largest ``acc`` among the alive documents of ``docs[:n]`` (0 if fewer than k)."""
    cnt = 0
    for i in range(n):
        d = docs[i]
        if alive[base + d]:
            buf[cnt] = acc[d]
            cnt += 1
    if cnt < k:
        return 0.0
    return np.float64(np.partition(buf[:cnt], cnt - k)[cnt - k])


@njit(cache=True, nogil=True, inline="always")
def _gallop(post_doc, p, end, d):
    """First index in ``post_doc[p:end]`` (ascending) whose document is >= d (``end`` if none)."""
    if p >= end or post_doc[p] >= d:
        return p
    step = 1
    while p + step < end and post_doc[p + step] < d:
        step *= 2
    a = p + step // 2 + 1
    b = min(p + step, end)
    while a < b:
        mid = (a + b) >> 1
        if post_doc[mid] < d:
            a = mid + 1
        else:
            b = mid
    return a


BLOCK = 128


@njit(cache=True, nogil=True, inline="always")
def _block_max(bits, b):
    """Largest int32 bit pattern of block ``b`` (vectorised: a slice and a constant trip count)."""
    blk = bits[b * BLOCK : (b + 1) * BLOCK]
    mx = blk[0]
    for i in range(BLOCK):
        v = blk[i]
        mx = v if v > mx else mx
    return mx


@njit(cache=True, nogil=True)
def _collect(acc, n_docs, thr, cand):
    """Documents with ``acc >= thr > 0``, ascending, into ``cand``; returns how many. Whole
    blocks whose largest accumulator is below ``thr`` are passed over in one comparison."""
    tb = np.array([thr], dtype=np.float32).view(np.int32)[0]
    bits = acc.view(np.int32)
    nc = 0
    for b in range((n_docs + BLOCK - 1) // BLOCK):
        if _block_max(bits, b) >= tb:
            for d in range(b * BLOCK, min((b + 1) * BLOCK, n_docs)):
                if bits[d] >= tb:
                    cand[nc] = d
                    nc += 1
    return nc


@njit(cache=True, nogil=True)
def _probe(lo, hi, t_end, post_doc, acc, alive, base, k, buf):
    """A lower bound of the k-th best final score: the k-th best partial score among the first
    postings of the first scored term with at least k documents (distinct documents)."""
    for j in range(t_end):
        if hi[j] - lo[j] >= k:
            end = min(hi[j], lo[j] + max(4096, 4 * k))
            return _kth_alive(acc, post_doc[lo[j] : end], end - lo[j], alive, base, k, buf)
    return 0.0


@njit(cache=True, nogil=True)
def _one_query(lo, hi, ws, m, post_doc, vals, tmax_q, alive, base, k, acc, n_docs, cand, buf,
               out_s, out_p):  # fmt: skip
    """Answer one query over ``m`` found terms, taken in the query's order (heaviest first), into
    ``out_s`` / ``out_p``; returns the postings read in full. Terms are scored in full into the
    accumulators until the k-th best partial score (probed) exceeds the bounds of the terms
    left; the documents that can still reach it are collected by a blocked scan and the
    remaining terms are merged into them. Each document's terms are added in the query's order,
    so scores are bit-identical to the exhaustive kernels'."""
    rest = np.zeros(m + 1, np.float64)  # rest[t]: the bounds of terms t..m-1
    for t in range(m - 1, -1, -1):
        rest[t] = rest[t + 1] + np.float64(ws[t]) * np.float64(tmax_q[t])
    theta = 0.0
    checked = np.inf
    read = 0
    t = 0
    while t < m:
        if rest[t] * (1 + MARGIN) < theta:
            break
        w = ws[t]
        docs = post_doc[lo[t] : hi[t]]
        v = vals[lo[t] : hi[t]]
        read += len(docs)
        for i in range(len(docs)):
            acc[docs[i]] += w * v[i]
        t += 1
        if t < m and rest[t] < RECHECK * checked:
            theta = max(theta, _probe(lo, hi, t, post_doc, acc, alive, base, k, buf))
            checked = rest[t]
    thr = theta / (1 + MARGIN) - rest[t]
    tiny = np.float64(np.nextafter(np.float32(0), np.float32(1)))
    nc = _collect(acc, n_docs, max(thr, tiny), cand)
    while t < m:
        w = ws[t]
        p, end = lo[t], hi[t]
        for c in range(nc):
            d = cand[c]
            p = _gallop(post_doc, p, end, d)
            if p >= end:
                break
            if post_doc[p] == d:
                acc[d] += w * vals[p]
        t += 1
        if nc >= k:
            theta = max(theta, _kth_alive(acc, cand, nc, alive, base, k, buf))
        kept = 0
        for c in range(nc):
            d = cand[c]
            if (acc[d] + rest[t]) * (1 + MARGIN) >= theta:
                cand[kept] = d
                kept += 1
        nc = kept
    keys = np.empty(nc, np.uint64)
    n = 0
    for c in range(nc):
        d = cand[c]
        if alive[base + d]:
            keys[n] = _key(acc[d], d)
            n += 1
    acc[:] = 0
    if n > k:
        keys[:k] = np.partition(keys[:n], k - 1)[:k]
        n = k
    keys = np.sort(keys[:n])
    for i in range(n):
        bits = np.uint32(0xFFFFFFFF) - np.uint32(keys[i] >> np.uint64(32))
        out_s[i] = np.array([bits], dtype=np.uint32).view(np.float32)[0]
        out_p[i] = base + np.int64(keys[i] & np.uint64(0xFFFFFFFF))
    return read


def _pruned_topk(q_ptr, q_terms, q_w, term_ids, term_ptr, post_doc, vals, tmax, alive, base,
                 n_docs, k, n_groups):  # fmt: skip
    n_q = len(q_ptr) - 1
    out_s = np.full((n_q, k), -np.inf, dtype=np.float32)
    out_p = np.full((n_q, k), -1, dtype=np.int64)
    read = np.zeros(n_q, np.int64)
    n_terms = len(term_ids)
    per = (n_q + n_groups - 1) // n_groups
    max_q = 0
    for q in range(n_q):
        max_q = max(max_q, q_ptr[q + 1] - q_ptr[q])
    for g in prange(n_groups):
        acc = np.zeros((n_docs + BLOCK - 1) // BLOCK * BLOCK, dtype=np.float32)
        cand = np.empty(n_docs, dtype=np.uint32)
        buf = np.empty(n_docs, dtype=np.float32)
        lo = np.empty(max_q, dtype=np.int64)
        hi = np.empty(max_q, dtype=np.int64)
        ws = np.empty(max_q, dtype=np.float32)
        tq = np.empty(max_q, dtype=np.float32)
        for q in range(g * per, min(n_q, (g + 1) * per)):
            m = 0
            for j in range(q_ptr[q], q_ptr[q + 1]):
                t = q_terms[j]
                i = np.searchsorted(term_ids, t)
                if i < n_terms and term_ids[i] == t:
                    lo[m], hi[m], ws[m], tq[m] = term_ptr[i], term_ptr[i + 1], q_w[j], tmax[i]
                    m += 1
            if m:
                read[q] = _one_query(lo, hi, ws, m, post_doc, vals, tq, alive, base, k, acc,
                                     n_docs, cand, buf, out_s[q], out_p[q])  # fmt: skip
    return out_s, out_p, read


_pruned_serial, _pruned_parallel = serial_and_parallel(_pruned_topk, "_pruned")


def pruned_topk(q_ptr, q_terms, q_w, seg, vals, tmax, alive, k: int, threads: int):
    """Exact top-k (scores, positions) of one segment for a query batch, with MaxScore pruning
    (see module docs); -inf / -1 where fewer match. Also returns the postings each query read in
    full (int64, n_queries). ``tmax`` must be ready for the query's terms (:func:`term_max`)."""
    n_q = len(q_ptr) - 1
    n_groups = max(1, min(threads, n_q))
    args = (
        q_ptr,
        q_terms,
        q_w,
        seg.term_ids,
        seg.term_ptr,
        seg.post_doc,
        vals,
        tmax,
        alive,
        np.int64(seg.base),
        np.int64(seg.n_docs),
        np.int64(k),
        np.int64(n_groups),
    )
    return run_groups(_pruned_serial, _pruned_parallel, args, n_groups, threads)


@njit(cache=True, nogil=True)
def forward_index(term_ids, term_ptr, post_doc, post_w, n_docs):
    """The segment's postings document-major (a forward index): ``(doc_ptr int64 (n_docs + 1),
    doc_terms uint32, doc_w float32)``, each document's terms ascending."""
    doc_ptr = np.zeros(n_docs + 1, np.int64)
    for p in range(len(post_doc)):
        doc_ptr[post_doc[p] + 1] += 1
    for d in range(n_docs):
        doc_ptr[d + 1] += doc_ptr[d]
    fill = doc_ptr[:-1].copy()
    doc_terms = np.empty(len(post_doc), np.uint32)
    doc_w = np.empty(len(post_doc), np.float32)
    for i in range(len(term_ids)):  # terms ascending, so each document's terms come ascending
        for p in range(term_ptr[i], term_ptr[i + 1]):
            d = post_doc[p]
            doc_terms[fill[d]] = term_ids[i]
            doc_w[fill[d]] = post_w[p]
            fill[d] += 1
    return doc_ptr, doc_terms, doc_w


@njit(cache=True, nogil=True)
def rescore_forward(q_ptr, q_terms, q_w, doc_ptr, doc_terms, doc_w, base, n_docs, positions, out):
    """Exact impact scores of given documents from a forward index: ``out[q, c]`` for
    ``positions[q, c]`` inside this segment (others untouched). A map from term to its rank in
    the query turns each of the document's terms into one read; the matches are then added in
    the query's order from 0, as every search kernel adds them, so a score is bit-identical to
    the exhaustive search's. A document costs its own terms (one predictable branch each) plus a
    sort of its few matches."""
    n_q = len(q_ptr) - 1
    max_q, top = 0, 0
    for q in range(n_q):
        max_q = max(max_q, q_ptr[q + 1] - q_ptr[q])
        for j in range(q_ptr[q], q_ptr[q + 1]):
            top = max(top, np.int64(q_terms[j]) + 1)
    rank = np.full(top, -1, np.int32)
    bits = np.zeros((top + 63) // 64, np.uint64)  # the query's terms: a few KB, read first
    part = np.zeros(max_q, np.float32)
    hit = np.empty(max_q, np.int32)
    for q in range(n_q):
        a, b = q_ptr[q], q_ptr[q + 1]
        for j in range(a, b):
            rank[q_terms[j]] = j - a
            bits[q_terms[j] >> 6] |= np.uint64(1) << np.uint64(q_terms[j] & 63)
        for c in range(positions.shape[1]):
            pos = positions[q, c]
            if pos < base or pos >= base + n_docs:
                continue
            d = pos - base
            terms = doc_terms[doc_ptr[d] : doc_ptr[d + 1]]
            ws = doc_w[doc_ptr[d] : doc_ptr[d + 1]]
            nh = 0
            for i in range(len(terms)):
                t = np.int64(terms[i])
                if t < top and (bits[t >> 6] >> np.uint64(t & 63)) & np.uint64(1):
                    r = rank[t]
                    if r >= 0:
                        part[r] = q_w[a + r] * ws[i]
                        # insertion into the ascending query ranks matched so far
                        x = nh
                        while x > 0 and hit[x - 1] > r:
                            hit[x] = hit[x - 1]
                            x -= 1
                        hit[x] = r
                        nh += 1
            s = np.float32(0)
            for x in range(nh):
                s += part[hit[x]]
            out[q, c] = s
        for j in range(a, b):
            rank[q_terms[j]] = -1
            bits[q_terms[j] >> 6] = 0
