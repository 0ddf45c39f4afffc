"""Numba kernel counting term ids per row (the BM25 analyzer's term frequencies)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def count_terms(indptr, flat, n_vocab):
    """Rows of term ids with repeats → CSR of (ascending unique term id, count) per row.

    Numpy twin: :func:`granite_index.encoders.analyzer.counts_csr`.
    """
    n = len(indptr) - 1
    last = np.full(n_vocab, -1, dtype=np.int64)
    slot = np.empty(n_vocab, dtype=np.int64)
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    out_t = np.empty(len(flat), dtype=np.uint32)
    out_c = np.empty(len(flat), dtype=np.float32)
    w = 0
    for r in range(n):
        start = w
        for j in range(indptr[r], indptr[r + 1]):
            t = flat[j]
            if last[t] != r:
                last[t] = r
                slot[t] = w
                out_t[w] = t
                out_c[w] = 1
                w += 1
            else:
                out_c[slot[t]] += 1
        if w - start > 1:
            order = np.argsort(out_t[start:w])
            out_t[start:w] = out_t[start:w][order]
            out_c[start:w] = out_c[start:w][order]
        out_ptr[r + 1] = w
    return out_ptr, out_t[:w].copy(), out_c[:w].copy()
