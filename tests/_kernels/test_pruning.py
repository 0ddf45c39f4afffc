"""Pruning kernels against their numpy twins and the exhaustive kernels."""

from __future__ import annotations

import numpy as np
import pytest

from granite_index._kernels import pruning as PK
from granite_index._kernels import sparse_scoring as K
from granite_index.index.sparse import SparseIndex
from tests.sparse_rows import random_csr, topical_csr


def _lists(rng, n_terms=40, n_docs=1000, max_len=60, levels=5):
    lens = rng.integers(0, max_len, n_terms)
    ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    doc = np.concatenate([np.sort(rng.choice(n_docs, n, replace=False)) for n in lens])
    w = rng.integers(1, levels, ptr[-1]).astype(np.float32)  # few levels: ties at the cut
    return ptr, doc.astype(np.uint32), w


def test_forward_rescoring_equals_scoring_by_posting_lists_bit_for_bit():
    rng = np.random.default_rng(3)
    idx = SparseIndex("impact")
    idx.add(np.arange(3000), *random_csr(rng, 3000, 400, impacts=True))
    seg = idx.segments[0]
    fwd = PK.forward_index(seg.term_ids, seg.term_ptr, seg.post_doc, seg.post_w, seg.n_docs)
    # each document's terms come back ascending, with their weights
    d = 17
    terms = fwd[1][fwd[0][d] : fwd[0][d + 1]]
    assert (np.diff(terms.astype(np.int64)) > 0).all()
    q_ptr, q_terms, q_w = idx.prepare(random_csr(rng, 20, 400, max_len=30, impacts=True))[:3]
    pos = rng.integers(-1, 3100, (20, 50)).astype(np.int64)  # padding and outside the segment
    a, b = np.zeros(pos.shape, np.float32), np.zeros(pos.shape, np.float32)
    PK.rescore_forward(q_ptr, q_terms, q_w, *fwd, np.int64(0), np.int64(3000), pos, a)
    K.score_docs(q_ptr, q_terms, q_w, seg.term_ids, seg.term_ptr, seg.post_doc, seg.post_w,
                 np.zeros(1, np.float32), False, np.int64(0), np.int64(3000), pos, b)  # fmt: skip
    np.testing.assert_array_equal(a, b)
    assert (a > 0).mean() > 0.1


def test_term_max_fills_only_the_query_terms():
    ptr, doc, w = _lists(np.random.default_rng(1), n_terms=10)
    term_ids = np.arange(0, 20, 2, dtype=np.uint32)
    tmax, ready = np.zeros(10, np.float32), np.zeros(10, np.uint8)
    PK.term_max(np.array([4, 5, 18], np.uint32), term_ids, ptr, w, tmax, ready)
    assert ready.tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    for i in (2, 9):
        seg_w = w[ptr[i] : ptr[i + 1]]
        assert tmax[i] == (seg_w.max() if len(seg_w) else 0)


@pytest.mark.parametrize("weighting", ["bm25", "impact"])
def test_pruning_skips_the_long_lists_on_topical_text(weighting):
    rng = np.random.default_rng(21)
    indptr, indices, values, topics = topical_csr(rng, impacts=weighting == "impact")
    idx = SparseIndex(weighting)
    idx.add(np.arange(len(indptr) - 1), indptr, indices, values)
    qs = [np.concatenate([rng.choice(topics[t], 3, replace=False), rng.choice(50, 3, replace=False)])
          for t in rng.integers(0, 60, 40)]  # fmt: skip
    q = (np.arange(0, 241, 6), np.concatenate(qs), rng.random(240).astype(np.float32) + 0.1)
    idx.search(q, k=10, strategy="pruned")  # fills the BM25 cache
    seg = idx.segments[0]
    q_ptr, q_terms, q_w = idx.prepare(q)[:3]
    vals = seg.cache if weighting == "bm25" else seg.post_w
    tmax = seg.term_bounds(q_terms, vals)
    s, p, read = PK.pruned_topk(q_ptr, q_terms, q_w, seg, vals, tmax, idx.alive, 10, 1)
    want_s, want_p = K.score_topk(q_ptr, q_terms, q_w, seg, vals, idx.alive, 10, 1)
    np.testing.assert_array_equal(p, want_p)
    np.testing.assert_array_equal(s, want_s)
    i = np.searchsorted(seg.term_ids, q_terms)
    full = np.add.reduceat(np.diff(seg.term_ptr)[i], q_ptr[:-1])
    assert (read < full).mean() > 0.5  # most queries never read some list in full
