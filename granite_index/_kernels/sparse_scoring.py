"""Numba kernels of the sparse inverted index, each with a plain-numpy twin used as its test oracle.

Array conventions (see :mod:`granite_index.index.sparse`):

- a *segment* covers positions ``base .. base + n_docs``; ``term_ids`` (uint32, sorted, unique),
  ``term_ptr`` (int64, len ``n_terms + 1``), ``post_doc`` (uint32, position - base, ascending within
  a term), ``post_w`` (float32: term frequency for BM25, impact weight for learned sparse);
- a *query batch* is CSR: ``q_ptr`` (int64), ``q_terms`` (uint32), ``q_w`` (float32: idf × count for
  BM25, the query's impact for learned sparse);
- ``norm`` (float32 per position) is BM25's ``k1 · (1 - b + b · dl / avgdl)``; ``alive`` (uint8 per
  position) is 0 for deleted documents.

Scores: BM25 (Lucene) adds ``q_w · (tf / (tf + norm))`` per matching term, the bracket read from a
per-segment cache filled lazily per term (:func:`fill_bm25_cache`); impacts add ``q_w · w``.
Top-k order: higher score first, ties to the lower position (so results are deterministic).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from granite_index._kernels.batches import run_groups, serial_and_parallel

# ---------------------------------------------------------------------------- top-k heap (numba)


@njit(inline="always")
def _worse(s1, p1, s2, p2):
    """True when (s1, p1) ranks below (s2, p2)."""
    return s1 < s2 or (s1 == s2 and p1 > p2)


@njit(cache=True, nogil=True, inline="always")
def _heap_push(hs, hp, n, k, s, p):
    """Offer (s, p) to a min-heap (worst at the root) of capacity k holding n items; returns new n."""
    if n < k:
        i = n
        hs[i] = s
        hp[i] = p
        while i > 0:
            parent = (i - 1) >> 1
            if _worse(hs[i], hp[i], hs[parent], hp[parent]):
                hs[i], hs[parent] = hs[parent], hs[i]
                hp[i], hp[parent] = hp[parent], hp[i]
                i = parent
            else:
                break
        return n + 1
    if not _worse(hs[0], hp[0], s, p):
        return n
    hs[0] = s
    hp[0] = p
    _sift_down(hs, hp, 0, n)
    return n


@njit(cache=True, nogil=True, inline="always")
def _sift_down(hs, hp, i, n):
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        child = left
        right = left + 1
        if right < n and _worse(hs[right], hp[right], hs[left], hp[left]):
            child = right
        if _worse(hs[child], hp[child], hs[i], hp[i]):
            hs[i], hs[child] = hs[child], hs[i]
            hp[i], hp[child] = hp[child], hp[i]
            i = child
        else:
            break


@njit(cache=True, nogil=True, inline="always")
def _key(bits, p):
    """A (score > 0, position < 2**32) pair as one 64-bit key that sorts best first, ties to the
    lower position: a positive float32's bit pattern (``bits``, uint32) orders like its value, so
    it goes inverted in the high half, the position in the low half."""
    return (np.uint64(0xFFFFFFFF - bits) << np.uint64(32)) | np.uint64(p)


@njit(cache=True, nogil=True)
def _keys_out(keys, n, out_s, out_p):
    """Sort ``keys[:n]`` (see :func:`_key`) and decode the best min(n, k) into out_s / out_p."""
    keys[:n].sort()
    m = min(n, len(out_s))
    out_bits = np.empty(m, dtype=np.uint32)
    for i in range(m):
        out_bits[i] = np.uint32(0xFFFFFFFF) - np.uint32(keys[i] >> np.uint64(32))
        out_p[i] = np.int64(keys[i] & np.uint64(0xFFFFFFFF))
    out_s[:m] = out_bits.view(np.float32)


@njit(cache=True, nogil=True)
def _sort_out(hs, hp, n, out_s, out_p):
    """(score, position) pairs → out_s / out_p best-first, ties to the lower position, by one sort
    of :func:`_key` keys. Writes min(n, k) slots."""
    bits = hs[:n].view(np.uint32)
    keys = np.empty(n, dtype=np.uint64)
    for i in range(n):
        keys[i] = _key(bits[i], hp[i])
    _keys_out(keys, n, out_s, out_p)


@njit(cache=True, nogil=True)
def _compact(keys, n, k):
    """Keep the k best of ``keys[:n]`` (n > k) in ``keys[:k]``; returns the k-th best key."""
    best = np.partition(keys[:n], k - 1)[:k]
    keys[:k] = best
    return best.max()


@njit(cache=True, nogil=True)
def _keys_best(keys, n, k, out_s, out_p):
    """The best min(n, k) of the key buffer ``keys[:n]`` into out_s / out_p, best first."""
    if n > k:
        _compact(keys, n, k)
    _keys_out(keys, min(n, k), out_s, out_p)


@njit(cache=True, nogil=True)
def _heap_drain(hs, hp, n, out_s, out_p):
    """Empty the heap into out_s / out_p best-first (slots past n keep their fill)."""
    if n > 32 and hp[:n].max() < 2**32:
        _sort_out(hs, hp, n, out_s, out_p)
        return
    while n > 0:
        n -= 1
        out_s[n] = hs[0]
        out_p[n] = hp[0]
        hs[0] = hs[n]
        hp[0] = hp[n]
        _sift_down(hs, hp, 0, n)


# ---------------------------------------------------------------------------- scoring + top-k


@njit(cache=True, nogil=True)
def fill_bm25_cache(q_terms, term_ids, term_ptr, post_doc, post_w, norm, base, cache, ready):
    """Fill ``cache[p] = tf / (tf + norm)`` for the postings of the query terms not yet ``ready``.

    BM25's term-frequency part depends on avgdl, so it cannot be stored at index time without
    going stale; it is computed here, once per term and per change of the collection, and the
    scoring kernel then reads one float per posting. Returns the indices (into ``term_ids``) of
    the terms this call filled, each once.
    """
    n_terms = len(term_ids)
    filled = np.empty(len(q_terms), dtype=np.int64)
    n = 0
    for j in range(len(q_terms)):
        t = q_terms[j]
        i = np.searchsorted(term_ids, t)
        if i < n_terms and term_ids[i] == t and not ready[i]:
            lo, hi = term_ptr[i], term_ptr[i + 1]
            docs, tfs, out = post_doc[lo:hi], post_w[lo:hi], cache[lo:hi]
            seg_norm = norm[base:]
            for x in range(len(docs)):  # slices from 0: no wraparound arithmetic per posting
                tf = tfs[x]
                out[x] = tf / (tf + seg_norm[docs[x]])
            ready[i] = 1
            filled[n] = i
            n += 1
    return filled[:n]


#: accumulators per block of the dense scan; ``acc`` is padded with zeros to whole blocks
BLOCK = 128
#: k from which the dense path selects with a key buffer (:func:`_scan_select`) instead of a heap
SELECT_K = 64
#: a query takes the dense path when it reads more postings than n_docs / DENSE_DIV: after the
#: scan became cheap (:func:`_block_max`), 4 to 256 timed the same on 1M documents and on SciFact
DENSE_DIV = 16


@njit(cache=True, nogil=True, inline="always")
def _block_max(bits, b):
    """Largest of the accumulators of block ``b``, as int32 bit patterns (a score is >= 0, and a
    non-negative float32's bits order like its value). Through a slice and a loop from 0 with a
    constant trip count, LLVM vectorises it; indexing ``acc`` directly it does not, and the
    scan then costs ~6x more."""
    blk = bits[b * BLOCK : (b + 1) * BLOCK]
    mx = blk[0]
    for i in range(BLOCK):
        v = blk[i]
        mx = v if v > mx else mx
    return mx


@njit(cache=True, nogil=True, inline="always")
def _bits(x):
    """A float32's bit pattern as int32."""
    return np.array([x], dtype=np.float32).view(np.int32)[0]


@njit(cache=True, nogil=True)
def _probe_floor(m, lo, hi, post_doc, acc, alive, base, k, hs, hp):
    """A lower bound of a query's k-th best score, from its finished accumulators: the k-th best
    over (a prefix of) the postings of its heaviest term that has at least k documents (one
    term's documents are distinct, so this is the k-th best of k real documents). 0 if none."""
    for j in range(m):
        if hi[j] - lo[j] >= k:
            n = 0
            for p in range(lo[j], min(hi[j], lo[j] + max(1024, 2 * k))):
                d = post_doc[p]
                if alive[base + d]:
                    n = _heap_push(hs, hp, n, k, acc[d], np.int64(d))
            return hs[0] if n == k else np.float32(0)
    return np.float32(0)


@njit(cache=True, nogil=True)
def _scan_dense(acc, alive, base, n_docs, floor, k, hs, hp, clear=True):
    """Offer every alive document with ``acc >= floor > 0`` (or ``acc > 0``) to an empty heap, in
    ascending positions (so an equal score never displaces an earlier document), and clear
    ``acc`` (unless ``clear`` is false); returns the heap size.

    The scan is the dense path's second cost after the postings: it reads a block of
    accumulators at a time through their (vectorised) maximum and looks at single ones only
    where that maximum can enter the heap.
    """
    n = 0
    thr = max(floor, np.float32(np.nextafter(np.float32(0), np.float32(1))))
    tb = _bits(thr)
    full = 0  # once the heap is full, an equal score no longer enters (it would come later)
    bits = acc.view(np.int32)
    for b in range((n_docs + BLOCK - 1) // BLOCK):
        if _block_max(bits, b) >= tb + full:
            for d in range(b * BLOCK, min((b + 1) * BLOCK, n_docs)):
                if bits[d] >= tb + full and alive[base + d]:
                    n = _heap_push(hs, hp, n, k, acc[d], base + d)
                    if n == k:
                        full = 1
                        thr = max(thr, hs[0])
                        tb = _bits(thr)
    if clear:
        acc[:] = 0
    return n


@njit(cache=True, nogil=True, inline="always")
def _block_max_alive(bits, alive, base, b):
    """:func:`_block_max` over the alive documents only (dead ones count as 0)."""
    blk = bits[b * BLOCK : (b + 1) * BLOCK]
    live = alive[base + b * BLOCK : base + (b + 1) * BLOCK]
    mx = np.int32(0)
    for i in range(BLOCK):
        v = blk[i] if live[i] != 0 else np.int32(0)
        mx = v if v > mx else mx
    return mx


@njit(cache=True, nogil=True)
def _block_floor(acc, alive, base, n_docs, masked, k, bmax, hs, hp):
    """Fill ``bmax`` with each block's largest alive accumulator (int32 bits; ``masked``: some
    document of the index is dead, else ``alive`` is not read) and return the k-th largest of
    them as int32 bits, at least 1 (the smallest positive float32).

    k blocks whose maxima are >= x hold k distinct alive documents scoring >= x, so the k-th
    largest block maximum is a lower bound of the query's k-th best score: a floor from which
    the scan starts. It lies close to the final threshold (two of the k best rarely share a
    block), so the scan looks inside few blocks. Used for large k, where a running threshold
    from a low start admits many documents (at k=1000 on 1M documents, half the blocks were
    looked inside); at small k the heap's own threshold rises fast enough, and this extra pass
    measured slower than :func:`_probe_floor`.
    """
    bits = acc.view(np.int32)
    nb = len(bmax)
    whole = n_docs // BLOCK
    if masked:
        for b in range(whole):
            bmax[b] = _block_max_alive(bits, alive, base, b)
    else:
        for b in range(whole):
            bmax[b] = _block_max(bits, b)
    if nb > whole:  # the last, partial block: alive has no padding
        mx = np.int32(0)
        for d in range(whole * BLOCK, n_docs):
            if bits[d] > mx and (not masked or alive[base + d]):
                mx = bits[d]
        bmax[nb - 1] = mx
    fmax = bmax.view(np.float32)
    n = 0
    for b in range(nb):
        if bmax[b] > 0:
            n = _heap_push(hs, hp, n, k, fmax[b], np.int64(b))
    return max(np.int32(1), _bits(hs[0])) if n == k else np.int32(1)


@njit(cache=True, nogil=True)
def _scan_select(acc, alive, base, n_docs, bmax, tb, k, keys):
    """:func:`_scan_dense` for large k: admitted documents go into a buffer of keys (len(keys) > k,
    see :func:`_key`), compacted to the k best by one partition when full, which also raises the
    admission threshold. Amortised O(1) per admitted document, against O(log k) for a heap push.
    Returns the number of keys in the buffer (not yet cut to k); clears ``acc``."""
    cap = len(keys)
    n = 0
    bits = acc.view(np.int32)
    strict = 0  # after a compaction only a higher score can enter (later positions lose ties)
    for b in range(len(bmax)):
        if bmax[b] >= tb + strict:
            for d in range(b * BLOCK, min((b + 1) * BLOCK, n_docs)):
                if bits[d] >= tb + strict and alive[base + d]:
                    keys[n] = _key(np.uint32(bits[d]), base + d)
                    n += 1
                    if n == cap:
                        worst = _compact(keys, n, k)
                        n = k
                        tb = np.int32(np.uint32(0xFFFFFFFF) - np.uint32(worst >> np.uint64(32)))
                        strict = 1
    acc[:] = 0
    return n


@njit(cache=True, nogil=True)
def _select_touched(acc, touched, nt, alive, base, k, keys):
    """The sparse path's :func:`_scan_select`: offer the ``nt`` touched documents (in first-touch
    order, so admission compares whole keys) to the key buffer; clears their accumulators."""
    cap = len(keys)
    bits = acc.view(np.uint32)
    n = 0
    worst = np.uint64(0xFFFFFFFFFFFFFFFF)  # admit anything until the first compaction
    for i in range(nt):
        d = touched[i]
        key = _key(bits[d], base + d)
        acc[d] = 0
        if key < worst and alive[base + d]:
            keys[n] = key
            n += 1
            if n == cap:
                worst = _compact(keys, n, k)
                n = k
    return n


def _score_topk(
    q_ptr,
    q_terms,
    q_w,
    term_ids,
    term_ptr,
    post_doc,
    vals,
    alive,
    masked,
    base,
    n_docs,
    k,
    n_groups,
):
    # Each posting adds q_w · vals[p] (vals: the BM25 cache, or the impacts). Query and document
    # weights are > 0, so an accumulator is 0 until its document's first match. Two strategies
    # per query, chosen by the number of postings it reads (P):
    #  - sparse (P small against the segment): remember first-touched documents in a list and rank
    #    and reset only those, so the query costs what its postings cost;
    #  - dense: plain accumulation (no bookkeeping in the hot loop), then one sequential scan of the
    #    accumulators against the heap's threshold, then a memset.
    n_q = len(q_ptr) - 1
    out_s = np.full((n_q, k), -np.inf, dtype=np.float32)
    out_p = np.full((n_q, k), -1, dtype=np.int64)
    n_terms = len(term_ids)
    per = (n_q + n_groups - 1) // n_groups
    max_q = 0
    for q in range(n_q):
        max_q = max(max_q, q_ptr[q + 1] - q_ptr[q])
    for g in prange(n_groups):
        n_blocks = (n_docs + BLOCK - 1) // BLOCK
        acc = np.zeros(n_blocks * BLOCK, dtype=np.float32)
        touched = np.empty(n_docs, dtype=np.uint32)
        hs = np.empty(k, dtype=np.float32)
        hp = np.empty(k, dtype=np.int64)
        lo = np.empty(max_q, dtype=np.int64)
        hi = np.empty(max_q, dtype=np.int64)
        ws = np.empty(max_q, dtype=np.float32)
        bs = np.empty(min(n_docs, 4 * k), dtype=np.float32)
        bp = np.empty(min(n_docs, 4 * k), dtype=np.int64)
        # large k: a key buffer compacted by partition instead of a heap (positions as 32 bits)
        select = k >= SELECT_K and base + n_docs < 2**32
        # > k, or > n_docs so that it never fills (a full buffer must hold more than k)
        keys = np.empty(min(4 * k, n_docs + 1) if select else 0, dtype=np.uint64)
        bmax = np.empty(n_blocks if select else 0, dtype=np.int32)  # block maxima (_block_floor)
        for q in range(g * per, min(n_q, (g + 1) * per)):
            m = 0
            n_post = 0
            for j in range(q_ptr[q], q_ptr[q + 1]):
                t = q_terms[j]
                i = np.searchsorted(term_ids, t)
                if i < n_terms and term_ids[i] == t:
                    lo[m] = term_ptr[i]
                    hi[m] = term_ptr[i + 1]
                    ws[m] = q_w[j]
                    n_post += hi[m] - lo[m]
                    m += 1
            dense = n_post * DENSE_DIV > n_docs
            nt = 0
            for j in range(m):
                w = ws[j]
                # through slices indexed from 0: LLVM then drops the negative-index wraparound
                # arithmetic from each access (4 instructions per posting instead of 11)
                docs = post_doc[lo[j] : hi[j]]
                v = vals[lo[j] : hi[j]]
                if dense:
                    for i in range(len(docs)):
                        acc[docs[i]] += w * v[i]
                else:
                    for i in range(len(docs)):
                        d = docs[i]
                        c = w * v[i]
                        a = acc[d]
                        touched[nt] = d  # kept only if this is the first match (branch-free)
                        nt += (a == 0) & (c > 0)
                        acc[d] = a + c
            n = 0
            if dense and select:
                tb = _block_floor(acc, alive, base, n_docs, masked, k, bmax, hs, hp)
                n = _scan_select(acc, alive, base, n_docs, bmax, tb, k, keys)
                _keys_best(keys, n, k, out_s[q], out_p[q])
                continue
            if dense:
                floor = _probe_floor(m, lo, hi, post_doc, acc, alive, base, k, hs, hp)
                n = _scan_dense(acc, alive, base, n_docs, floor, k, hs, hp)
            elif nt <= 4 * k and base + n_docs < 2**32:
                # few documents against k: one sort of all of them beats a heap
                cnt = 0
                for i in range(nt):
                    d = touched[i]
                    bs[cnt] = acc[d]
                    bp[cnt] = base + d
                    cnt += alive[base + d] != 0
                    acc[d] = 0
                _sort_out(bs, bp, cnt, out_s[q], out_p[q])
                continue
            elif select:
                n = _select_touched(acc, touched, nt, alive, base, k, keys)
                _keys_best(keys, n, k, out_s[q], out_p[q])
                continue
            else:
                for i in range(nt):
                    d = touched[i]
                    s = acc[d]
                    acc[d] = 0
                    pos = base + d
                    if alive[pos]:
                        n = _heap_push(hs, hp, n, k, s, pos)
            _heap_drain(hs, hp, n, out_s[q], out_p[q])
    return out_s, out_p


_score_topk_serial, _score_topk_parallel = serial_and_parallel(_score_topk, "_score_topk")


def _score_keep(
    q_ptr, q_terms, q_w, term_ids, term_ptr, post_doc, vals, alive, base, n_docs, k, n_groups, accs
):
    # _score_topk's dense path, keeping every accumulator: row q of ``accs`` (zeros, at least
    # base + n_docs columns) receives query q's score of each document of the segment, in
    # columns base .. base + n_docs, summed in the same order as every other path.
    n_q = len(q_ptr) - 1
    out_s = np.full((n_q, k), -np.inf, dtype=np.float32)
    out_p = np.full((n_q, k), -1, dtype=np.int64)
    n_terms = len(term_ids)
    per = (n_q + n_groups - 1) // n_groups
    max_q = 1
    for q in range(n_q):
        max_q = max(max_q, q_ptr[q + 1] - q_ptr[q])
    for g in prange(n_groups):
        hs = np.empty(k, dtype=np.float32)
        hp = np.empty(k, dtype=np.int64)
        lo = np.empty(max_q, dtype=np.int64)
        hi = np.empty(max_q, dtype=np.int64)
        for q in range(g * per, min(n_q, (g + 1) * per)):
            acc = accs[q, base : base + n_docs]
            m = 0
            for j in range(q_ptr[q], q_ptr[q + 1]):
                t = q_terms[j]
                i = np.searchsorted(term_ids, t)
                if i < n_terms and term_ids[i] == t:
                    lo[m] = term_ptr[i]
                    hi[m] = term_ptr[i + 1]
                    w = q_w[j]
                    docs = post_doc[lo[m] : hi[m]]
                    v = vals[lo[m] : hi[m]]
                    for x in range(len(docs)):
                        acc[docs[x]] += w * v[x]
                    m += 1
            floor = _probe_floor(m, lo, hi, post_doc, acc, alive, base, k, hs, hp)
            n = _scan_dense(acc, alive, base, n_docs, floor, k, hs, hp, False)
            _heap_drain(hs, hp, n, out_s[q], out_p[q])
    return out_s, out_p


_score_keep_serial, _score_keep_parallel = serial_and_parallel(_score_keep, "_score_keep")


def score_keep_topk(q_ptr, q_terms, q_w, seg, vals, alive, k: int, threads: int, accs):
    """:func:`score_topk` that also keeps every score: ``accs`` float32 (n_queries, >= base +
    n_docs), zeros, gets query q's score of the segment's document d at ``accs[q, base + d]``
    (0 where it shares no term with the query), bit-identical to the top-k's scores. Costs one
    pass over the segment's accumulators per query: for small segments, where looking up the
    scores of a hybrid search's candidates afterwards would cost more."""
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
        alive,
        np.int64(seg.base),
        np.int64(seg.n_docs),
        np.int64(k),
        np.int64(n_groups),
        accs,
    )
    return run_groups(_score_keep_serial, _score_keep_parallel, args, n_groups, threads)


def score_topk(q_ptr, q_terms, q_w, seg, vals, alive, k: int, threads: int, masked: bool = True):
    """Top-k (scores, positions) of one segment for a query batch; -inf / -1 where fewer match.

    ``vals`` holds one weight per posting: the segment's BM25 cache (see
    :func:`fill_bm25_cache`) or its impacts. ``masked=False`` promises that no document is dead
    (the dense path's block maxima then skip reading ``alive``).
    """
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
        alive,
        bool(masked),
        np.int64(seg.base),
        np.int64(seg.n_docs),
        np.int64(k),
        np.int64(n_groups),
    )
    return run_groups(_score_topk_serial, _score_topk_parallel, args, n_groups, threads)


def score_topk_numpy(q_ptr, q_terms, q_w, seg, norm, alive, k: int, bm25: bool):
    """Plain-numpy twin of :func:`score_topk` (dense score vector per query, full sort)."""
    n_q = len(q_ptr) - 1
    out_s = np.full((n_q, k), -np.inf, dtype=np.float32)
    out_p = np.full((n_q, k), -1, dtype=np.int64)
    positions = seg.base + np.arange(seg.n_docs)
    for q in range(n_q):
        scores = np.zeros(seg.n_docs, dtype=np.float32)
        hit = np.zeros(seg.n_docs, dtype=bool)
        for t, w in zip(q_terms[q_ptr[q] : q_ptr[q + 1]], q_w[q_ptr[q] : q_ptr[q + 1]]):
            i = np.searchsorted(seg.term_ids, t)
            if i >= len(seg.term_ids) or seg.term_ids[i] != t:
                continue
            sl = slice(seg.term_ptr[i], seg.term_ptr[i + 1])
            docs = seg.post_doc[sl].astype(np.int64)
            tf = seg.post_w[sl]
            if bm25:
                c = np.float32(w) * (tf / (tf + norm[seg.base + docs]))
            else:
                c = np.float32(w) * tf
            scores[docs] += c.astype(np.float32)
            hit[docs] = True
        keep = np.nonzero(hit & (alive[positions] != 0))[0]
        order = np.lexsort((positions[keep], -scores[keep]))[:k]
        out_s[q, : len(order)] = scores[keep][order]
        out_p[q, : len(order)] = positions[keep][order]
    return out_s, out_p


@njit(cache=True, nogil=True)
def score_docs(
    q_ptr,
    q_terms,
    q_w,
    term_ids,
    term_ptr,
    post_doc,
    post_w,
    norm,
    bm25,
    base,
    n_docs,
    positions,
    out,
):
    """Scores of given documents: ``out[q, c]`` for ``positions[q, c]`` inside this segment.

    Each query term is found once by binary search, then each document in the term's postings;
    the terms are added in the query's order from 0, as the search kernels do, so a score equals
    the one search gives bit for bit. BM25 values are computed as :func:`fill_bm25_cache` does.
    """
    n_terms = len(term_ids)
    n_q = len(q_ptr) - 1
    max_q = 0
    for q in range(n_q):
        max_q = max(max_q, q_ptr[q + 1] - q_ptr[q])
    lo = np.empty(max_q, np.int64)
    hi = np.empty(max_q, np.int64)
    ws = np.empty(max_q, np.float32)
    for q in range(n_q):
        m = 0
        for j in range(q_ptr[q], q_ptr[q + 1]):
            t = q_terms[j]
            i = np.searchsorted(term_ids, t)
            if i < n_terms and term_ids[i] == t:
                lo[m], hi[m], ws[m] = term_ptr[i], term_ptr[i + 1], q_w[j]
                m += 1
        for c in range(positions.shape[1]):
            pos = positions[q, c]
            if pos < base or pos >= base + n_docs:
                continue
            d = np.uint32(pos - base)
            acc = np.float32(0)
            for j in range(m):
                a, b = lo[j], hi[j]  # binary search for d in post_doc[a:b]
                while a < b:
                    mid = (a + b) >> 1
                    if post_doc[mid] < d:
                        a = mid + 1
                    else:
                        b = mid
                if a < hi[j] and post_doc[a] == d:
                    v = post_w[a]
                    if bm25:
                        v = v / (v + norm[pos])
                    acc += ws[j] * v
            out[q, c] = acc


@njit(cache=True, nogil=True)
def merge_topk(scores, positions, k):
    """Row-wise top-k over candidate lists (concatenated per-segment results; -1 = empty)."""
    n_q = scores.shape[0]
    out_s = np.full((n_q, k), -np.inf, dtype=np.float32)
    out_p = np.full((n_q, k), -1, dtype=np.int64)
    hs = np.empty(k, dtype=np.float32)
    hp = np.empty(k, dtype=np.int64)
    for q in range(n_q):
        n = 0
        for j in range(scores.shape[1]):
            if positions[q, j] >= 0:
                n = _heap_push(hs, hp, n, k, scores[q, j], positions[q, j])
        _heap_drain(hs, hp, n, out_s[q], out_p[q])
    return out_s, out_p
