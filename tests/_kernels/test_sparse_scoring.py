"""Sparse scoring kernels against numpy (the scoring paths themselves are compared with their
numpy twin through :class:`SparseIndex` in ``tests/index/test_sparse_index.py``)."""

from __future__ import annotations

import numpy as np

from granite_index._kernels import sparse_scoring as K


def test_heap_merge_kernel_matches_sort():
    rng = np.random.default_rng(5)
    s = rng.integers(0, 5, (4, 30)).astype(np.float32)
    p = rng.permutation(120).reshape(4, 30).astype(np.int64)
    p[0, :10] = -1
    out_s, out_p = K.merge_topk(s, p, 7)
    for q in range(4):
        ok = p[q] >= 0
        order = np.lexsort((p[q][ok], -s[q][ok]))[:7]
        np.testing.assert_array_equal(out_p[q], p[q][ok][order])
