from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from granite_index import DenseIndex
from granite_index.errors import DuplicateIdError, UnknownIdError
from granite_index.index.gpu import GpuFlatSearcher
from tests.conftest import unit_rows


def exact_knn(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int):
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return ids[order], np.take_along_axis(scores, order, axis=1)


def test_flat_equals_exact_numpy_knn():
    x, q = unit_rows(500, 16), unit_rows(20, 16, seed=1)
    ids = np.arange(500, dtype=np.int64) * 7 + 3
    idx = DenseIndex(16, device="cpu")
    idx.add(ids, x)
    res = idx.search(q, k=10)
    want_ids, want_scores = exact_knn(ids, x, q, 10)
    np.testing.assert_array_equal(res.ids, want_ids)
    np.testing.assert_allclose(res.scores, want_scores, rtol=1e-5, atol=1e-6)
    assert res.ids.dtype == np.int64 and res.scores.dtype == np.float32


def test_k_larger_than_index_pads():
    idx = DenseIndex(8, device="cpu")
    idx.add([10, 20], unit_rows(2, 8))
    res = idx.search(unit_rows(3, 8, seed=2), k=5)
    assert res.ids.shape == (3, 5)
    assert (res.ids[:, 2:] == -1).all() and np.isneginf(res.scores[:, 2:]).all()
    assert set(res.ids[0, :2]) == {10, 20}


def test_empty_index_returns_padding():
    res = DenseIndex(8, device="cpu").search(unit_rows(2, 8), k=3)
    assert (res.ids == -1).all()


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_delete_save_load_round_trip(kind, tmp_path):
    x, q = unit_rows(1200, 32), unit_rows(10, 32, seed=3)
    ids = np.arange(1200, dtype=np.int64)
    idx = DenseIndex(32, kind, device="cpu", pq_m=8)
    idx.add(ids, x)
    idx.delete(ids[:100])  # below the compaction threshold: tombstones
    res = idx.search(q, 20)
    assert not np.isin(res.ids, ids[:100]).any()
    idx.save(tmp_path / "i")
    back = DenseIndex.load(tmp_path / "i", device="cpu")
    again = back.search(q, 20)
    np.testing.assert_array_equal(again.ids, res.ids)
    np.testing.assert_array_equal(again.scores, res.scores)
    assert len(back) == 1100 and 5 not in back and 500 in back


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_kinds_have_useful_recall(kind):
    x = unit_rows(3000, 32)
    q = x[:50] + 0.05 * unit_rows(50, 32, seed=9)
    ids = np.arange(3000, dtype=np.int64)
    idx = DenseIndex(32, kind, device="cpu", pq_m=8, nprobe=32)
    idx.add(ids, x)
    want, _ = exact_knn(ids, x, q, 10)
    got = idx.search(q, 10).ids
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)])
    assert recall >= (0.9 if kind == "hnsw" else 0.4)


def test_compaction_after_many_deletes_keeps_results_exact():
    x, q = unit_rows(300, 16), unit_rows(5, 16, seed=4)
    ids = np.arange(300, dtype=np.int64)
    idx = DenseIndex(16, device="cpu")
    idx.add(ids, x)
    idx.delete(ids[::2])  # 50 % > COMPACT_AT: rebuilt
    assert idx.n_stored == len(idx) == 150
    want, _ = exact_knn(ids[1::2], x[1::2], q, 10)
    np.testing.assert_array_equal(idx.search(q, 10).ids, want)
    idx.add([1000], x[:1])
    assert idx.search(x[:1], 1).ids[0, 0] == 1000


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(1, 40)), min_size=1, max_size=12),
    st.sampled_from(["flat", "hnsw"]),
)
def test_any_add_delete_sequence_equals_brute_force(ops, kind):
    """After any adds and deletes, search equals exact kNN over the surviving vectors."""
    rng = np.random.default_rng(len(ops))
    idx = DenseIndex(8, kind, device="cpu", ef_search=512)
    live: dict[int, np.ndarray] = {}
    next_id = 0
    for is_add, n in ops:
        if is_add or not live:
            v = unit_rows(n, 8, seed=next_id)
            new = np.arange(next_id, next_id + n, dtype=np.int64)
            idx.add(new, v)
            live.update(zip(new.tolist(), v))
            next_id += n
        else:
            gone = rng.choice(sorted(live), size=min(n, len(live)), replace=False)
            idx.delete(gone)
            for g in gone.tolist():
                del live[g]
    q = unit_rows(4, 8, seed=99)
    assert len(idx) == len(live)
    if not live:
        assert (idx.search(q, 3).ids == -1).all()
        return
    ids = np.array(sorted(live), dtype=np.int64)
    want_ids, want_scores = exact_knn(ids, np.stack([live[i] for i in ids]), q, min(5, len(ids)))
    res = idx.search(q, 5)
    np.testing.assert_allclose(
        res.scores[:, : want_scores.shape[1]], want_scores, rtol=1e-4, atol=1e-5
    )
    scanned = idx.scan_search(q, 5)
    if kind != "flat":
        assert scanned is None  # only a flat index scans
        return
    s_ids, s_scores, lookup = scanned
    kk = want_scores.shape[1]
    np.testing.assert_array_equal(s_ids[:, :kk], want_ids)  # random vectors: no ties
    np.testing.assert_allclose(s_scores[:, :kk], want_scores, rtol=1e-5, atol=1e-6)
    assert (s_ids[:, kk:] == -1).all() and (s_scores[:, kk:] == -np.inf).all()
    # the lookup gives every live id's score, NaN for padding, deleted and unknown ids
    probe = np.tile(np.concatenate([ids, [-1, next_id + 5]]), (len(q), 1))
    got = lookup(probe)
    want = idx.score(q, probe)[:, : len(ids)]
    np.testing.assert_allclose(got[:, : len(ids)], want, rtol=1e-5, atol=1e-6)
    assert np.isnan(got[:, len(ids) :]).all()


def test_torch_flat_searcher_equals_exact():
    x, q = unit_rows(200, 16), unit_rows(7, 16, seed=5)
    alive = np.ones(200, dtype=bool)
    alive[::3] = False
    scores, pos = GpuFlatSearcher(x, alive, device="cpu").search(q, 5)
    live = np.flatnonzero(alive)
    want_pos, want_scores = exact_knn(live, x[live], q, 5)
    np.testing.assert_array_equal(pos, want_pos)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)


def test_bad_input():
    idx = DenseIndex(8, device="cpu")
    idx.add([1, 2], unit_rows(2, 8))
    with pytest.raises(ValueError, match="dimension 7, but the index has dimension 8"):
        idx.search(np.zeros((1, 7), np.float32), 1)
    with pytest.raises(ValueError, match="k must be positive"):
        idx.search(unit_rows(1, 8), 0)
    with pytest.raises(TypeError, match="k must be an int"):
        idx.search(unit_rows(1, 8), 2.5)
    with pytest.raises(ValueError, match="NaN"):
        idx.search(np.full((1, 8), np.nan, np.float32), 1)
    with pytest.raises(DuplicateIdError, match="already in the index"):
        idx.add([2], unit_rows(1, 8))
    with pytest.raises(DuplicateIdError):
        idx.add([5, 5], unit_rows(2, 8))
    with pytest.raises(UnknownIdError, match="99"):
        idx.delete([1, 99])
    assert len(idx) == 2  # nothing was deleted
    with pytest.raises(ValueError, match="3 ids but 2 vectors"):
        idx.add([7, 8, 9], unit_rows(2, 8))
    with pytest.raises(ValueError, match="kind"):
        DenseIndex(8, "lsh")
    with pytest.raises(ValueError, match="at least 256"):
        DenseIndex(8, "ivfpq", pq_m=2).add(np.arange(10), unit_rows(10, 8))


def test_newer_format_is_refused(tmp_path):
    import json

    from granite_index.errors import FormatVersionError

    idx = DenseIndex(4, device="cpu")
    idx.add([1], unit_rows(1, 4))
    idx.save(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"]["format_version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(FormatVersionError, match="Upgrade"):
        DenseIndex.load(tmp_path)


def test_scan_search_limits():
    idx = DenseIndex(8, "flat", device="cpu")
    idx.add(np.arange(10), unit_rows(10, 8))
    q = unit_rows(3, 8, seed=5)
    assert idx.scan_search(q, 4, max_cells=29) is None  # 3 x 10 cells > 29
    assert idx.scan_search(q, 4, max_cells=30) is not None
    with pytest.raises(ValueError, match="k"):
        idx.scan_search(q, 0)
