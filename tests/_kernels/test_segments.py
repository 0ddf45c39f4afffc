"""Segment-building kernels against scipy and plain numpy."""

from __future__ import annotations

import numpy as np
import pytest

from granite_index._kernels import segments as SK
from tests.sparse_rows import random_csr


def test_csr_to_csc_matches_scipy():
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(6)
    indptr, indices, values = random_csr(rng, 70, 25, impacts=True)
    term_ids, term_ptr, post_doc, post_w = SK.csr_to_csc(
        indptr, indices.astype(np.uint32), values, 25
    )
    csc = sp.csr_matrix((values, indices, indptr), shape=(70, 25)).tocsc()
    csc.sort_indices()
    present = np.nonzero(np.diff(csc.indptr))[0]
    np.testing.assert_array_equal(term_ids, present)
    np.testing.assert_array_equal(np.diff(term_ptr), np.diff(csc.indptr)[present])
    np.testing.assert_array_equal(post_doc, csc.indices)
    np.testing.assert_array_equal(post_w, csc.data)


def test_dead_postings_and_renumber_match_numpy():
    rng = np.random.default_rng(7)
    indptr, indices, values = random_csr(rng, 60, 20)
    term_ids, term_ptr, post_doc, _ = SK.csr_to_csc(indptr, indices.astype(np.uint32), values, 20)
    base = 5
    alive = np.ones(base + 60, np.uint8)
    alive[base + rng.choice(60, 17, replace=False)] = 0
    asked = np.array([term_ids[3], 25, term_ids[0], term_ids[-1]], np.int64)  # 25: not there
    got = SK.dead_postings(asked, term_ids, term_ptr, post_doc, base, alive)
    want = []
    for t in asked:
        i = np.searchsorted(term_ids, t)
        found = i < len(term_ids) and term_ids[i] == t
        want.append(
            (1 - alive[base + post_doc[term_ptr[i] : term_ptr[i + 1]]]).sum() if found else 0
        )
    np.testing.assert_array_equal(got, want)
    assert got[1] == 0 and got.sum() > 0
    remap = np.cumsum(alive) - 1
    np.testing.assert_array_equal(SK.renumber(post_doc, base, 2, remap), remap[base + post_doc] - 2)


def test_merge_segments_matches_concatenation():
    rng = np.random.default_rng(8)
    a = random_csr(rng, 30, 15)
    b = random_csr(rng, 20, 15)
    alive = (rng.random(50) > 0.3).astype(np.uint8)
    sa = SK.csr_to_csc(a[0], a[1].astype(np.uint32), a[2], 15)
    sb = SK.csr_to_csc(b[0], b[1].astype(np.uint32), b[2], 15)
    term_ids, term_ptr, post_doc, post_w = SK.merge_segments(*sa, 0, *sb, 30, alive)
    # numpy twin: triples (term, doc, weight) of live documents, sorted by term then doc
    trip = []
    for (t_ids, t_ptr, p_doc, p_w), base in ((sa, 0), (sb, 30)):
        for i, t in enumerate(t_ids):
            for p in range(t_ptr[i], t_ptr[i + 1]):
                if alive[base + p_doc[p]]:
                    trip.append((int(t), base + int(p_doc[p]), float(p_w[p])))
    trip.sort()
    got = [
        (int(t), int(post_doc[p]), float(post_w[p]))
        for i, t in enumerate(term_ids)
        for p in range(term_ptr[i], term_ptr[i + 1])
    ]
    assert got == trip
