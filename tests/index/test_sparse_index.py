"""SparseIndex: BM25 by hand, kernels vs their numpy twins, incremental = rebuilt, persistence, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from granite_index.errors import DuplicateIdError, UnknownIdError
from granite_index.index import Bm25Stats
from granite_index.index.sparse import SparseIndex
from tests.sparse_rows import random_csr, topical_csr


def _bm25_by_hand(docs: dict[int, dict[int, int]], query: list[int], k1=1.2, b=0.75):
    n = len(docs)
    avgdl = sum(sum(d.values()) for d in docs.values()) / n
    scores = {}
    for key, d in docs.items():
        dl = sum(d.values())
        s, hit = 0.0, False
        for t in query:
            if t in d:
                hit = True
                df = sum(1 for x in docs.values() if t in x)
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                s += idf * d[t] / (d[t] + k1 * (1 - b + b * dl / avgdl))
        if hit:
            scores[key] = s
    return scores


def test_bm25_matches_the_formula_by_hand():
    docs = {10: {0: 2, 1: 1}, 11: {1: 3}, 12: {2: 1, 0: 1, 3: 5}, 13: {3: 1}}
    idx = SparseIndex("bm25")
    keys = list(docs)
    indptr = np.cumsum([0] + [len(docs[k]) for k in keys])
    indices = [t for k in keys for t in docs[k]]
    values = [c for k in keys for c in docs[k].values()]
    idx.add(keys, indptr, indices, values)
    for query in ([0], [1, 3], [0, 1, 2, 3]):
        want = _bm25_by_hand(docs, query)
        res = idx.search((np.array([0, len(query)]), np.array(query), np.ones(len(query))), k=4)
        got = {int(i): float(s) for i, s in zip(res.ids[0], res.scores[0]) if i >= 0}
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-6)
        assert list(res.scores[0][: len(got)]) == sorted(got.values(), reverse=True)


def test_ties_go_to_the_lower_position():
    idx = SparseIndex("impact")
    idx.add([5, 3, 9], [0, 1, 2, 3], [0, 0, 0], [1.0, 1.0, 1.0])
    res = idx.search((np.array([0, 1]), np.array([0]), np.array([1.0])), k=3)
    assert res.ids.tolist() == [[5, 3, 9]]


@pytest.mark.parametrize("weighting", ["bm25", "impact"])
@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_equal_their_numpy_twins(weighting, threads):
    rng = np.random.default_rng(1)
    idx = SparseIndex(weighting)
    for start in (0, 300, 420):  # several segments
        indptr, indices, values = random_csr(rng, 120, 50, impacts=weighting == "impact")
        idx.add(np.arange(start, start + 120), indptr, indices, values)
    idx.delete(np.concatenate([np.arange(0, 120, 7), np.arange(300, 540, 5)]))
    q = random_csr(rng, 25, 60, max_len=6, impacts=True)  # some terms unknown to the index
    for k in (1, 10, 1000):
        fast = idx.search(q, k=k, threads=threads)
        slow = idx.search(q, k=k, oracle=True)
        np.testing.assert_array_equal(fast.ids, slow.ids)
        np.testing.assert_allclose(fast.scores, slow.scores, rtol=1e-6)


@pytest.mark.parametrize("weighting", ["bm25", "impact"])
def test_large_k_key_buffer_compactions_equal_the_twin(weighting):
    # k >= 64 on the dense path: a buffer of 4k keys is compacted many times per query
    rng = np.random.default_rng(7)
    idx = SparseIndex(weighting)
    idx.add(np.arange(4000), *random_csr(rng, 4000, 30, impacts=weighting == "impact"))
    idx.delete(np.arange(0, 4000, 9))
    q = random_csr(rng, 8, 30, max_len=8, impacts=True)
    for k in (64, 150, 900):
        fast, slow = idx.search(q, k=k), idx.search(q, k=k, oracle=True)
        np.testing.assert_array_equal(fast.ids, slow.ids)
        np.testing.assert_allclose(fast.scores, slow.scores, rtol=1e-6)
    # the sparse path (postings < n_docs / DENSE_DIV) with more touched documents than
    # the buffer: offered in first-touch order
    big = SparseIndex(weighting)
    big.add(np.arange(20000), *random_csr(rng, 20000, 400, impacts=weighting == "impact"))
    q = random_csr(rng, 6, 400, max_len=4, impacts=True)
    for k in (64, 100):
        fast, slow = big.search(q, k=k), big.search(q, k=k, oracle=True)
        np.testing.assert_array_equal(fast.ids, slow.ids)
        np.testing.assert_allclose(fast.scores, slow.scores, rtol=1e-6)


@pytest.mark.parametrize("dead", [False, True])
@pytest.mark.parametrize("k", [64, 300])
def test_large_k_block_floor_equals_the_twin(dead, k):
    # k >= 64 on the dense path starts from the k-th largest block maximum. Over many blocks
    # (n not a multiple of the block size), with ties, and with the best documents deleted:
    # a floor taken from dead documents would lie above every alive score and lose results.
    n = 100_001
    rng = np.random.default_rng(11)
    w = rng.integers(1, 40, n).astype(np.float32)  # few distinct values: many ties
    best = rng.choice(n, 1000, replace=False)
    w[best] = 100.0 + rng.integers(0, 3, 1000)
    indptr = np.arange(n + 1)
    idx = SparseIndex("impact")
    idx.add(rng.permutation(n), indptr, np.zeros(n, np.int64), w)
    if dead:
        idx.delete(idx.keys[best])
    q = (np.array([0, 1]), np.array([0]), np.array([1.0], np.float32))
    fast, slow = idx.search(q, k=k), idx.search(q, k=k, oracle=True)
    np.testing.assert_array_equal(fast.ids, slow.ids)
    np.testing.assert_array_equal(fast.scores, slow.scores)
    assert (fast.scores[0] >= 100).all() != dead


@pytest.mark.parametrize("k", [1, 10, 63, 64, 100, 1000])
def test_dense_scan_keeps_ties_in_position_order(k):
    # every document matches (the dense path) and most tie: the probe floor and the blocked
    # scan (k < 64), or the key buffer and its compactions (k >= 64), must still return the
    # lowest positions among equal scores, as the numpy twin does
    n = 3000
    idx = SparseIndex("impact")
    rng = np.random.default_rng(5)
    heavy = rng.random(n) < 0.02
    indptr = np.cumsum([0] + [1 + int(h) for h in heavy])
    indices = np.concatenate([[0, 1] if h else [0] for h in heavy]).astype(np.int64)
    values = np.ones(len(indices), np.float32)
    idx.add(rng.permutation(n) + 100, indptr, indices, values)
    idx.delete(idx.keys[np.nonzero(heavy)[0][:3]])  # dead documents among the best
    q = (np.array([0, 2]), np.array([0, 1]), np.array([1.0, 0.5], np.float32))
    fast, slow = idx.search(q, k=k), idx.search(q, k=k, oracle=True)
    np.testing.assert_array_equal(fast.ids, slow.ids)
    np.testing.assert_array_equal(fast.scores, slow.scores)


@pytest.mark.parametrize("weighting", ["bm25", "impact"])
@pytest.mark.parametrize("forward", [True, False])
def test_score_equals_the_search_score_bit_for_bit(weighting, forward, monkeypatch):
    if not forward:  # impact lookups by binary search, as for segments too big for the copy
        monkeypatch.setattr("granite_index.index.segment.FORWARD_MAX", 0)
    rng = np.random.default_rng(4)
    idx = SparseIndex(weighting)
    for start in (0, 200, 500):
        idx.add(np.arange(start, start + 150), *random_csr(rng, 150, 40, impacts=True))
    idx.delete(np.arange(0, 150, 4))
    q = random_csr(rng, 12, 45, max_len=6, impacts=True)
    res = idx.search(q, k=50)
    got = idx.score(q, res.ids)
    hits = res.ids >= 0
    np.testing.assert_array_equal(got[hits], res.scores[hits])
    assert np.isnan(got[~hits]).all()
    # unknown and deleted keys are NaN; a document sharing no term with the query scores 0
    probe = np.tile(np.array([[4, 99999, 201]]), (12, 1))
    out = idx.score(q, probe)
    assert np.isnan(out[:, :2]).all()
    assert out.dtype == np.float32 and out.shape == (12, 3)
    with pytest.raises(ValueError, match="n_queries"):
        idx.score(q, np.zeros((3, 2), np.int64))
    small = SparseIndex(weighting)
    small.add([1, 2], [0, 1, 2], [0, 1], [2.0, 3.0])
    one = (np.array([0, 1]), np.array([0]), np.array([1.0], np.float32))
    s = small.score(one, [[1, 2]])
    assert s[0, 0] > 0 and s[0, 1] == 0


@pytest.mark.parametrize("weighting", ["bm25", "impact"])
@pytest.mark.parametrize("kept", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_retrieve_equals_search_and_its_lookup_equals_score(weighting, kept, threads, monkeypatch):
    if not kept:  # an index too big to keep every score: the lookup scores the ids it gets
        monkeypatch.setattr("granite_index.index.sparse.KEEP_POSITIONS", 0)
    rng = np.random.default_rng(14)
    idx = SparseIndex(weighting)
    for start in (0, 300, 700):  # several segments
        idx.add(np.arange(start, start + 200), *random_csr(rng, 200, 50, impacts=True))
    idx.delete(np.arange(0, 200, 3))
    q = random_csr(rng, 9, 55, max_len=8, impacts=True)
    for allow in (None, np.arange(100, 800, 2)):
        res, lookup = idx.retrieve(q, 30, threads=threads, allow=allow)
        want = idx.search(q, k=30, threads=threads, allow=allow)
        np.testing.assert_array_equal(res.ids, want.ids)
        np.testing.assert_array_equal(res.scores, want.scores)
        # every key: live, deleted (NaN), unknown (NaN), padding (NaN); filtered-out keys too
        probe = np.tile(np.append(np.arange(-1, 910, 7), [99999]), (9, 1))
        np.testing.assert_array_equal(lookup(probe), idx.score(q, probe))
        assert (lookup(probe)[:, 1:-1] > 0).any()
    with pytest.raises(ValueError, match="n_queries"):
        lookup(np.zeros((2, 3), np.int64))
    idx.add([5000], [0, 1], [3], [1.0])
    with pytest.raises(ValueError, match="changed"):
        lookup(probe)


def test_retrieve_with_share_scores_the_cut_queries_consistently():
    rng = np.random.default_rng(15)
    idx = SparseIndex("impact")
    idx.add(np.arange(500), *random_csr(rng, 500, 60, max_len=20, impacts=True))
    q = random_csr(rng, 6, 60, max_len=25, impacts=True)
    res, lookup = idx.retrieve(q, 20, share=0.5)
    # the cut query by hand: each query's heaviest terms carrying half its weight
    ptr, terms, vals = [0], [], []
    for i in range(6):
        t, v = q[1][q[0][i] : q[0][i + 1]], q[2][q[0][i] : q[0][i + 1]]
        o = np.lexsort((t, -v))
        before = np.cumsum(v[o]) - v[o]
        keep = o[before < 0.5 * v.sum()]
        terms.extend(t[keep])
        vals.extend(v[keep])
        ptr.append(len(terms))
    cut = (np.array(ptr), np.array(terms, np.int64), np.array(vals, np.float32))
    assert len(terms) < len(q[1])
    want = idx.search(cut, k=20)
    np.testing.assert_array_equal(res.ids, want.ids)
    np.testing.assert_array_equal(res.scores, want.scores)
    probe = np.tile(np.arange(-1, 500, 3), (6, 1))
    np.testing.assert_array_equal(lookup(probe), idx.score(cut, probe))
    full = idx.retrieve(q, 20, share=1.0)[0]
    np.testing.assert_array_equal(full.ids, idx.search(q, k=20).ids)
    with pytest.raises(ValueError, match="BM25"):
        SparseIndex("bm25").retrieve(q, 5, share=0.5)


def _corpus_stats(parts, queries):
    terms = {t for q in queries for t in parts[0].analyzer.tokens(q)}
    return Bm25Stats.merge([p.bm25_stats(terms) for p in parts])


@pytest.mark.parametrize("n_parts", [1, 2, 3])
def test_parts_score_as_the_whole_with_corpus_statistics(n_parts):
    rng = np.random.default_rng(30 + n_parts)
    words = [f"w{i}" for i in range(60)] + ["alpha", "beta"]
    texts = [" ".join(rng.choice(words, rng.integers(1, 25))) for _ in range(600)]
    queries = [" ".join(rng.choice(words, rng.integers(1, 6))) for _ in range(25)]
    queries.append("alpha beta unseen")
    whole = SparseIndex.bm25("en")
    parts = [SparseIndex.bm25("en") for _ in range(n_parts)]
    keys = np.arange(len(texts))
    owner = (keys * 2654435761 % 2**32) % n_parts  # routed by a hash of the key
    live: set[int] = set()
    for step in range(4):  # adds and deletes, several segments per part
        batch = keys[step * 150 : (step + 1) * 150]
        live |= set(batch.tolist())
        whole.add_texts(batch, [texts[i] for i in batch])
        for p, part in enumerate(parts):
            mine = batch[owner[batch] == p]
            part.add_texts(mine, [texts[i] for i in mine])
        gone = rng.choice(sorted(live), 20, replace=False)
        live -= set(gone.tolist())
        whole.delete(gone)
        for p, part in enumerate(parts):
            part.delete(gone[owner[gone] == p])
        stats = _corpus_stats(parts, queries)
        own = _corpus_stats([whole], queries)
        assert (stats.n_docs, stats.total_len, stats.df) == (own.n_docs, own.total_len, own.df)
        probe = np.tile(np.array(sorted(live))[::7], (len(queries), 1))
        want = whole.score(queries, probe, stats=own)
        got = np.full(probe.shape, np.nan, np.float32)
        for p, part in enumerate(parts):
            mask = owner[probe] == p
            s = part.score(queries, np.where(mask, probe, -1), stats=stats)
            got[mask] = s[mask]
        np.testing.assert_array_equal(got, want)  # bit for bit
        assert (want > 0).mean() > 0.3
        # a global top-k merged from the parts' top-k equals the whole's
        ref = whole.search(queries, k=10, stats=own)
        hits = [part.search(queries, k=10, stats=stats) for part in parts]
        for q in range(len(queries)):
            merged = sorted(
                (float(s), int(i)) for h in hits for i, s in zip(h.ids[q], h.scores[q]) if i >= 0
            )
            top = sorted(merged, key=lambda x: -x[0])[:10]
            assert [s for s, _ in top] == ref.scores[q][ref.ids[q] >= 0].tolist()
        # the part's retrieve (kept scores) agrees with its search and score
        res, lookup = parts[0].retrieve(queries, 10, stats=stats)
        np.testing.assert_array_equal(
            res.scores, parts[0].search(queries, k=10, stats=stats).scores
        )
        np.testing.assert_array_equal(lookup(probe), parts[0].score(queries, probe, stats=stats))
    # without stats each part scores with its own statistics: different from the whole's
    if n_parts > 1:
        alone = parts[0].score(queries, np.where(owner[probe] == 0, probe, -1))
        assert not np.array_equal(alone[owner[probe] == 0], want[owner[probe] == 0])


def test_corpus_statistics_are_for_bm25_texts(small):
    stats = small.bm25_stats(["cat", "dog", "zebra"])
    assert stats.n_docs == 2 and stats.df == {"cat": 1, "dog": 1}
    assert stats.avgdl == small.avgdl
    with pytest.raises(ValueError, match="BM25"):
        SparseIndex("impact").bm25_stats(["x"])
    with pytest.raises(ValueError, match="BM25 index of texts"):
        SparseIndex("impact").search(([0, 1], [0], [1.0]), stats=stats)
    with pytest.raises(ValueError, match="not both"):
        SparseIndex("impact").search(([0, 1], [0], [1.0]), stats=stats, share=0.5)
    prepared = small.prepare(["cat"], stats)
    with pytest.raises(ValueError, match="not with PreparedQueries"):
        small.prepare(prepared, stats)
    # an unseen-here term with a corpus-wide df still has its corpus idf (and matches nothing)
    wide = Bm25Stats(100, 300.0, {"cat": 10, "dog": 50})
    s = small.score(["cat dog"], [[1, 2]], stats=wide)
    assert s[0, 0] > s[0, 1] > 0  # rarer "cat" weighs more corpus-wide


def test_prepared_queries_give_the_same_results_and_go_stale_on_change():
    rng = np.random.default_rng(6)
    idx = SparseIndex("bm25")
    idx.add(np.arange(300), *random_csr(rng, 300, 50))
    q = random_csr(rng, 5, 55, max_len=4)
    prepared = idx.prepare(q)
    a, b = idx.search(q, k=20), idx.search(prepared, k=20)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(idx.score(q, a.ids), idx.score(prepared, a.ids))
    other = SparseIndex("bm25")
    other.add(np.arange(300), *random_csr(rng, 300, 50))
    with pytest.raises(ValueError, match="another index"):
        other.search(prepared, k=5)
    idx.delete([0])  # idf and avgdl change: the prepared weights are stale
    with pytest.raises(ValueError, match="prepare them again"):
        idx.search(prepared, k=5)
    with pytest.raises(ValueError, match="prepare them again"):
        idx.score(prepared, a.ids)


def test_impact_scores_are_dot_products():
    rng = np.random.default_rng(2)
    indptr, indices, values = random_csr(rng, 80, 30, impacts=True)
    idx = SparseIndex("impact")
    idx.add(np.arange(80), indptr, indices, values)
    dense = np.zeros((80, 30), np.float32)
    for i in range(80):
        dense[i, indices[indptr[i] : indptr[i + 1]]] = values[indptr[i] : indptr[i + 1]]
    qp, qi, qv = random_csr(rng, 5, 30, max_len=5, impacts=True)
    qdense = np.zeros((5, 30), np.float32)
    for i in range(5):
        qdense[i, qi[qp[i] : qp[i + 1]]] = qv[qp[i] : qp[i + 1]]
    res = idx.search((qp, qi, qv), k=80)
    exact = qdense @ dense.T
    for q in range(5):
        hits = res.ids[q] >= 0
        np.testing.assert_allclose(res.scores[q][hits], exact[q, res.ids[q][hits]], rtol=1e-5)
        assert set(res.ids[q][hits]) == set(np.nonzero(exact[q] > 0)[0])


def _from_scratch(live: dict[int, tuple], weighting: str) -> SparseIndex:
    idx = SparseIndex(weighting)
    keys = sorted(live)
    if keys:
        rows = [live[k] for k in keys]
        indptr = np.cumsum([0] + [len(r[0]) for r in rows])
        idx.add(
            keys,
            indptr,
            np.concatenate([r[0] for r in rows]).astype(np.int64),
            np.concatenate([r[1] for r in rows]),
        )
    return idx


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["add", "delete", "compact"]), st.integers(1, 30), st.integers(0, 2**31)
        ),
        min_size=1,
        max_size=12,
    ),
    weighting=st.sampled_from(["bm25", "impact"]),
)
def test_any_adds_and_deletes_equal_a_rebuild(ops, weighting):
    rng = np.random.default_rng(0)
    idx = SparseIndex(weighting)
    live: dict[int, tuple] = {}
    next_key = 0
    for op, n, seed in ops:
        r = np.random.default_rng(seed)
        if op == "add":
            indptr, indices, values = random_csr(r, n, 40, impacts=weighting == "impact")
            keys = np.arange(next_key, next_key + n) * 3 + 1  # not positions
            next_key += n
            idx.add(keys, indptr, indices, values)
            for i, key in enumerate(keys):
                sl = slice(indptr[i], indptr[i + 1])
                live[int(key)] = (indices[sl], values[sl])
        elif op == "delete" and live:
            gone = r.choice(sorted(live), size=min(n, len(live)), replace=False)
            idx.delete(gone)
            for key in gone:
                del live[int(key)]
        elif op == "compact":
            idx.compact()
    ref = _from_scratch(live, weighting)
    assert len(idx) == len(live)
    queries = random_csr(rng, 20, 45, max_len=5, impacts=True)
    for k in (3, 50):
        want = ref.search(queries, k=k)
        for strategy in ("exhaustive", "pruned"):
            got = idx.search(queries, k=k, strategy=strategy)
            np.testing.assert_array_equal(got.ids, want.ids)
            np.testing.assert_array_equal(got.scores, want.scores)  # bit-identical statistics


def test_segments_stay_logarithmic():
    idx = SparseIndex("bm25")
    rng = np.random.default_rng(3)
    for i in range(64):
        indptr, indices, values = random_csr(rng, 10, 100)
        idx.add(np.arange(i * 10, i * 10 + 10), indptr, indices, values)
    assert len(idx.segments) <= 8


def test_save_load_round_trip_memory_mapped(tmp_path):
    idx = SparseIndex.bm25("en")
    idx.add_texts([1, 2, 3], ["apples and oranges", "oranges are orange", "bananas"])
    idx.delete([2])
    idx.save(tmp_path / "sp")
    back = SparseIndex.load(tmp_path / "sp")
    assert isinstance(back.segments[0].post_doc, np.memmap)
    for q in (["orange"], ["apples bananas"], ["nothing here"]):
        a, b = idx.search(q, k=3), back.search(q, k=3)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
    back.add_texts([4], ["orange juice"])  # a loaded (read-only) index still takes writes
    back.delete([1])
    assert len(back) == 2
    assert back.search(["orange"], k=3).ids[0, :1].tolist() == [4]
    assert back.search(["bananas"], k=3).ids.tolist() == [[3, -1, -1]]


def test_mapped_term_frequencies_are_released_once_cached(tmp_path, monkeypatch):
    # terms with thousands of postings: their tf pages leave the resident set once the BM25 cache
    # holds them, and results stay those of the in-memory index, before and after a change
    import granite_index.index.segment as sp

    rng = np.random.default_rng(3)
    idx = SparseIndex("bm25")
    idx.add(np.arange(20000), *random_csr(rng, 20000, 12, max_len=8))
    idx.save(tmp_path / "sp")
    back = SparseIndex.load(tmp_path / "sp")
    released = []
    real = sp.release_pages
    monkeypatch.setattr(sp, "release_pages", lambda *a: released.append(real(*a)) or released[-1])
    q = (np.array([0, 2, 5]), np.array([0, 1, 2, 3, 4]), np.ones(5, np.float32))
    for _ in range(2):  # the second search finds the terms cached: nothing more to release
        a, b = idx.search(q, k=20), back.search(q, k=20)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
    # 5 terms, in both indexes: the one saved reads its postings from the files it wrote
    assert len(released) == 10 and all(r > 0 for r in released)
    new = random_csr(rng, 50, 12, max_len=8)
    idx.add(np.arange(20000, 20050), *new)
    back.add(np.arange(20000, 20050), *new)  # statistics change: the cache refills from the file
    a, b = idx.search(q, k=20), back.search(q, k=20)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_release_pages(tmp_path):
    from granite_index.index.pages import release_pages

    def rss_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20

    data = np.arange(12_000_000, dtype=np.float32)  # 48 MB
    np.save(tmp_path / "a.npy", data)
    arr = np.load(tmp_path / "a.npy", mmap_mode="r")
    total = float(arr.sum(dtype=np.float64))  # every page resident
    before = rss_mb()
    assert release_pages(arr, 0, len(arr)) > 40 * 2**20
    assert rss_mb() < before - 40
    assert float(arr.sum(dtype=np.float64)) == total  # read again from the file
    assert release_pages(arr, 5, 10) == 0  # less than a page
    assert release_pages(data, 0, len(data)) == 0  # not a map


def test_save_again_writes_only_the_change(tmp_path):
    """A save after an add writes one postings segment and one chunk of per-position arrays;
    after a delete, one chunk of deleted positions; nothing written before is rewritten."""
    idx = SparseIndex.bm25("en")
    idx.add_texts(list(range(100)), [f"word{i} common" for i in range(100)])
    idx.save(tmp_path / "sp")
    seg = tmp_path / "sp" / "segments"
    first = {p: p.stat().st_mtime_ns for p in seg.rglob("*.npy")}
    idx.add_texts([1000], ["other"])
    idx.save(tmp_path / "sp")
    now = {p.parent.name for p in seg.rglob("*.npy")} - {p.parent.name for p in first}
    # a postings segment, a chunk of keys and lengths, and a vocabulary segment of its new term
    assert len(now) == 3 and sum(n.startswith("pos-") for n in now) == 1
    assert not (tmp_path / "sp" / "vocab.arrow").exists()
    idx.delete([5, 7])
    idx.save(tmp_path / "sp")
    after = {p: p.stat().st_mtime_ns for p in seg.rglob("*.npy")}
    assert all(after[p] == t for p, t in first.items())
    dead = [p for p in after if p.parent.name.startswith("dead-")]
    assert len(dead) == 1 and np.load(dead[0]).size == 2
    back = SparseIndex.load(tmp_path / "sp")
    assert len(back) == 99 and back.search(["word7"], k=3).ids[0, 0] == -1
    np.testing.assert_array_equal(back.search(["common"], k=5).ids, idx.search(["common"], k=5).ids)
    assert SparseIndex.segment_names(tmp_path / "sp") == {p.name for p in seg.iterdir()}


# ---------------------------------------------------------------------------- bad input
@pytest.fixture
def small():
    idx = SparseIndex.bm25("en")
    idx.add_texts([1, 2], ["the cat sat", "a dog ran"])
    return idx


def test_empty_query_is_an_error(small):
    with pytest.raises(ValueError, match="empty"):
        small.search(["  "], k=2)


def test_query_of_unknown_terms_only_returns_nothing(small):
    res = small.search(["zebra quantum"], k=2)
    assert res.ids.tolist() == [[-1, -1]] and np.isneginf(res.scores).all()


def test_stopword_only_query_returns_nothing(small):
    assert small.search(["the a"], k=2).ids.tolist() == [[-1, -1]]


def test_k_larger_than_collection_pads(small):
    res = small.search(["cat"], k=5)
    assert res.ids.tolist() == [[1, -1, -1, -1, -1]]


@pytest.mark.parametrize("k", [0, -3])
def test_k_not_positive(small, k):
    with pytest.raises(ValueError, match="k must be positive"):
        small.search(["cat"], k=k)


def test_delete_twice(small):
    small.delete([1])
    with pytest.raises(UnknownIdError, match="1"):
        small.delete([1])
    assert len(small) == 1


def test_duplicate_keys(small):
    with pytest.raises(DuplicateIdError, match="already"):
        small.add_texts([2], ["again"])
    with pytest.raises(DuplicateIdError, match="repeat"):
        small.add_texts([5, 5], ["x", "y"])
    assert len(small) == 2


def test_bad_arrays():
    idx = SparseIndex("impact")
    with pytest.raises(ValueError, match="repeats a term"):
        idx.add([1], [0, 2], [4, 4], [1.0, 2.0])
    with pytest.raises(ValueError, match=">= 0"):
        idx.add([1], [0, 1], [4], [-1.0])
    with pytest.raises(ValueError, match="indptr"):
        idx.add([1, 2], [0, 1], [4], [1.0])
    with pytest.raises(ValueError, match="analyzer"):
        idx.add_texts([1], ["text"])
    with pytest.raises(ValueError, match="weighting"):
        SparseIndex("tfidf")
    with pytest.raises(ValueError, match="b must"):
        SparseIndex("bm25", b=2)
    assert len(idx) == 0


def test_zero_weights_are_absent_terms():
    idx = SparseIndex("impact")
    idx.add([1, 2, 3], [0, 1, 2, 3], [0, 0, 0], [1.0, 0.0, 2.0])
    q = (np.array([0, 1]), np.array([0]), np.array([1.0]))
    fast, slow = idx.search(q, k=3), idx.search(q, k=3, oracle=True)
    assert fast.ids.tolist() == slow.ids.tolist() == [[3, 1, -1]]
    assert idx.n_postings == 2


def test_negative_query_weights_are_an_error():
    idx = SparseIndex("impact")
    idx.add([1], [0, 1], [0], [1.0])
    with pytest.raises(ValueError, match=">= 0"):
        idx.search((np.array([0, 2]), np.array([0, 5]), np.array([-1.0, 1.0])), k=1)
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(ValueError, match=">= 0"):
        idx.search(sp.csr_matrix(np.array([[-1.0]])), k=1)


def test_deleted_postings_leave_document_frequencies_at_once_and_across_merges(tmp_path):
    """A delete leaves the postings in their segments; idf subtracts them per query term, and
    after later adds (merges drop them), a save and a load, idf equals a fresh index's."""
    texts = [f"alpha beta w{i % 7} w{i % 3} gamma{i}" for i in range(150)]
    idx = SparseIndex.bm25("en")
    idx.add_texts(list(range(30)), texts[:30])
    idx.add_texts(list(range(30, 60)), texts[30:60])
    terms = ["alpha", "w3", "w1", "w2", "gamma31", "gamma5"]
    live = set(range(60))

    def check(index):
        fresh = SparseIndex.bm25("en")
        fresh.add_texts(sorted(live), [texts[i] for i in sorted(live)])
        got = index.idf([index.vocab.get(t) for t in terms])
        want = [fresh.idf([fresh.vocab.get(t)])[0] if t in fresh.vocab else 0.0 for t in terms]
        np.testing.assert_array_equal(got, want)
        for q in (["alpha w3"], ["w1 gamma5"]):
            a, b = index.search(q, k=20), fresh.search(q, k=20)
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.scores, b.scores)

    postings = idx.df.copy()
    idx.delete([3, 31, 40, 59, 5])
    live -= {3, 31, 40, 59, 5}
    np.testing.assert_array_equal(idx.df, postings)  # the postings stay until a merge
    check(idx)
    idx.delete([0, 1, 2])  # a second delete: counts taken again
    live -= {0, 1, 2}
    check(idx)
    assert len(idx.segments) == 1
    before = idx.segments[0].n_postings
    idx.add_texts(list(range(60, 150)), texts[60:])  # merges into it, dropping the deleted
    live |= set(range(60, 150))
    assert len(idx.segments) == 1 and idx.segments[0].n_postings < before + 90 * 5
    check(idx)
    idx.delete([70])
    live -= {70}
    idx.save(tmp_path / "sp")
    back = SparseIndex.load(tmp_path / "sp")
    assert not (tmp_path / "sp" / "df.npy").exists()
    np.testing.assert_array_equal(back.df, idx.df)
    check(back)


def test_format_1_folder_with_live_document_frequencies_loads(tmp_path):
    """Format 1 kept ``df.npy`` (live counts), no ``n_terms`` and its vocabulary whole in
    ``vocab.arrow``: a load counts the postings from the segments, reads only the number of
    terms from ``df.npy``, and takes the terms from ``vocab.arrow``."""
    idx = SparseIndex.bm25("en")
    idx.add_texts(list(range(40)), [f"common w{i % 5} t{i}" for i in range(40)])
    idx.delete([1, 2, 3])
    idx.save(tmp_path / "sp")
    meta = json.loads((tmp_path / "sp" / "index.json").read_text())
    # its values are not read (zeros here would give other scores); one term id past the postings
    np.save(tmp_path / "sp" / "df.npy", np.zeros(len(idx.df) + 1, np.int64))
    meta["format_version"] = 1
    del meta["n_terms"]
    (tmp_path / "sp" / "index.json").write_text(json.dumps(meta))
    terms = idx.vocab.terms
    shutil.rmtree(tmp_path / "sp" / "vocab")
    feather.write_feather(pa.table({"term": terms}), tmp_path / "sp" / "vocab.arrow")
    back = SparseIndex.load(tmp_path / "sp")
    assert back.vocab.terms == terms
    assert len(back.df) == len(idx.df) + 1
    np.testing.assert_array_equal(back.df[:-1], idx.df)
    for q in (["common w1"], ["t7 w2"]):
        a, b = idx.search(q, k=10), back.search(q, k=10)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
    back.add_texts([100], ["common newword"])
    back.save(tmp_path / "sp")  # the next save writes the vocabulary as segments
    assert (tmp_path / "sp" / "vocab" / "index.json").is_file()
    assert SparseIndex.load(tmp_path / "sp").vocab.terms == [*terms, "newword"]


@pytest.mark.parametrize("weighting", ["bm25", "impact"])
@pytest.mark.parametrize("threads", [1, 2])
def test_pruned_search_equals_exhaustive_bit_for_bit(weighting, threads):
    rng = np.random.default_rng(21)
    indptr, indices, values, topics = topical_csr(rng, impacts=weighting == "impact")
    idx = SparseIndex(weighting)
    half = 3000
    idx.add(np.arange(half), indptr[: half + 1], indices[: indptr[half]], values[: indptr[half]])
    idx.add(np.arange(half, 6000), indptr[half:] - indptr[half], indices[indptr[half] :],
            values[indptr[half] :])  # fmt: skip
    idx.delete(np.arange(0, 6000, 13))
    qs = [np.concatenate([rng.choice(topics[t], 3, replace=False), rng.choice(50, 3, replace=False)])
          for t in rng.integers(0, 60, 40)]  # fmt: skip
    q = (
        np.cumsum([0] + [len(x) for x in qs]),
        np.concatenate(qs),
        rng.random(sum(map(len, qs))) + 0.1,
    )
    allow = np.arange(1, 6000, 2)
    for k in (1, 10, 100):
        for extra in ({}, {"allow": allow}):
            a = idx.search(q, k=k, threads=threads, strategy="pruned", **extra)
            b = idx.search(q, k=k, threads=threads, strategy="exhaustive", **extra)
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.scores, b.scores)


def test_approximate_search_is_exact_at_share_1_and_finds_more_as_share_grows():
    rng = np.random.default_rng(8)
    indptr, indices, values, topics = topical_csr(rng, n_docs=8000, impacts=True)
    idx = SparseIndex("impact")
    idx.add(np.arange(8000) * 2, indptr, indices, values)
    idx.delete(np.arange(0, 16000, 22))
    qs = [rng.choice(topics[t], 8, replace=False) for t in rng.integers(0, 60, 50)]
    q = (np.arange(0, 401, 8), np.concatenate(qs), rng.random(400).astype(np.float32) + 0.1)
    exact = idx.search(q, k=10)
    full = idx.search(q, k=10, share=1.0)
    np.testing.assert_array_equal(full.ids, exact.ids)
    np.testing.assert_array_equal(full.scores, exact.scores)
    recalls = []
    for share in (0.3, 0.6, 0.9):
        got = idx.search(q, k=10, share=share)
        recalls.append(np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got.ids, exact.ids)]))
        # returned scores are exact (bit for bit what search and score give)
        np.testing.assert_array_equal(got.scores, idx.score(q, got.ids))
        assert not np.isin(got.ids, np.arange(0, 16000, 22)).any()  # deleted stay gone
    assert recalls[0] <= recalls[1] <= recalls[2] and recalls[2] >= 0.9, recalls
    # a filter holds, and a segment added after an approximate query joins at once
    allow = np.arange(0, 16000, 4)
    assert np.isin(idx.search(q, k=10, share=0.6, allow=allow).ids, np.append(allow, -1)).all()
    idx.add([99999], [0, 8], qs[0], np.full(8, 50.0))
    assert idx.search(q, k=1, share=0.6).ids[0, 0] == 99999


def test_bad_strategy_and_share_are_errors(small):
    with pytest.raises(ValueError, match="strategy"):
        small.search(["x"], strategy="fast")
    with pytest.raises(ValueError, match="impact"):
        small.search(["x"], share=0.5)  # BM25 is always exact
    idx = SparseIndex("impact")
    idx.add([1], [0, 1], [3], [1.0])
    for bad in (0, 1.5, "half", True):
        with pytest.raises(ValueError, match="share"):
            idx.search(([0, 1], [3], [1.0]), share=bad)
