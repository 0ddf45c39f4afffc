"""Sparse scoring kernels against numpy (the scoring paths themselves are compared with their
numpy twin through :class:`SparseIndex` in ``tests/index/test_sparse_index.py``)."""

from __future__ import annotations

import numpy as np

from granite_index._kernels import sparse_scoring as K
from granite_index.index.sparse import SparseIndex
from tests.sparse_rows import random_csr


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


def test_kept_scores_are_the_numpy_scores_and_the_top_k_the_twins():
    rng = np.random.default_rng(8)
    idx = SparseIndex("impact")
    idx.add(np.arange(600), *random_csr(rng, 600, 30, max_len=8, impacts=True))
    idx.delete(np.arange(0, 600, 5))
    seg = idx.segments[0]
    q_ptr, q_terms, q_w = idx.prepare(random_csr(rng, 7, 30, max_len=5, impacts=True))[:3]
    for k in (1, 10, 700):
        accs = np.zeros((7, 600), np.float32)
        got = K.score_keep_topk(q_ptr, q_terms, q_w, seg, seg.post_w, idx.alive, k, 1, accs)
        norm = np.zeros(1, np.float32)
        want = K.score_topk_numpy(q_ptr, q_terms, q_w, seg, norm, idx.alive, k, False)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        # every document's score, the dead ones' too, summed in the query's order
        for q in range(7):
            by_hand = np.zeros(600, np.float32)
            for j in range(q_ptr[q], q_ptr[q + 1]):
                i = np.searchsorted(seg.term_ids, q_terms[j])
                if i < len(seg.term_ids) and seg.term_ids[i] == q_terms[j]:
                    sl = slice(seg.term_ptr[i], seg.term_ptr[i + 1])
                    by_hand[seg.post_doc[sl]] += q_w[j] * seg.post_w[sl]
            np.testing.assert_array_equal(accs[q], by_hand)
