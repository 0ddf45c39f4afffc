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


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "auto"])
def test_delete_save_load_round_trip(kind, tmp_path):
    x, q = unit_rows(1200, 32), unit_rows(10, 32, seed=3)
    ids = np.arange(1200, dtype=np.int64)
    idx = DenseIndex(32, kind, device="cpu", ivf_min=1000)
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


def clustered(n: int, dim: int, seed: int = 0, n_clusters: int = 40):
    """Rows around ``n_clusters`` fixed centres (approximate search meets structure, not
    noise); ``seed`` draws the rows, so queries and documents share the centres."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(n_clusters, dim, seed=100)
    x = centres[rng.integers(0, n_clusters, n)] + 0.5 / np.sqrt(dim) * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall_at_10(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)]))


@pytest.mark.parametrize(
    ("kind", "params", "floor"),
    [
        ("ivf", {"nprobe": 8}, 0.9),
        ("hnsw", {"ef_search": 64}, 0.95),
        ("auto", {"approximate_from": 1000}, 0.9),  # past approximate_from: IVF
        ("ivf", {"quantization": "int8", "ivf_min": 10**9, "rescore": 50}, 0.97),
        # sign bits need dimensions: 128 of them here
        ("ivf", {"quantization": "binary", "ivf_min": 10**9, "rescore": 200, "dim": 128}, 0.9),
    ],
)
def test_approximate_settings_have_recall_against_exact(kind, params, floor):
    params = {"ivf_min": 1000, **params}
    dim = params.pop("dim", 32)
    x = clustered(4000, dim)
    q = clustered(60, dim, seed=9)
    ids = np.arange(4000, dtype=np.int64) * 3
    idx = DenseIndex(dim, kind, device="cpu", **params)
    idx.add(ids, x)
    want, _ = exact_knn(ids, x, q, 10)
    got = idx.search(q, 10)
    assert recall_at_10(got.ids, want) >= floor
    # scores are exact inner products of the ids returned
    np.testing.assert_allclose(got.scores, idx.score(q, got.ids), rtol=1e-5, atol=1e-6)
    # exact=True per call gives the exact answer whatever the kind
    np.testing.assert_array_equal(idx.search(q, 10, exact=True).ids, want)


def test_more_probes_never_lose_recall_and_all_probes_are_exact():
    x, q = clustered(3000, 16, seed=2), clustered(40, 16, seed=3)
    ids = np.arange(3000, dtype=np.int64)
    idx = DenseIndex(16, "ivf", device="cpu", ivf_min=500, nlist=50)
    idx.add(ids, x)
    want, _ = exact_knn(ids, x, q, 10)
    recalls = [recall_at_10(idx.search(q, 10, nprobe=p).ids, want) for p in (1, 4, 16, 50)]
    assert recalls == sorted(recalls) and recalls[0] < 1.0
    np.testing.assert_array_equal(idx.search(q, 10, nprobe=50).ids, want)


def test_commits_write_only_the_change(tmp_path):
    """A save after an add writes one new segment; after a delete, one small deletion file;
    earlier segments' files are never rewritten."""
    x = unit_rows(3000, 8)
    idx = DenseIndex(8, "flat", device="cpu", merge_max=100)
    idx.add(np.arange(1000), x[:1000])
    idx.add(np.arange(1000, 2000), x[1000:2000])
    seg_dir = tmp_path / "segments"
    idx.save(tmp_path / "c1", segments_dir=seg_dir)
    before = {p: p.stat().st_mtime_ns for p in seg_dir.rglob("*") if p.is_file()}
    idx.add(np.arange(2000, 2010), x[2000:2010])
    idx.delete([5, 1500])
    idx.save(tmp_path / "c2", segments_dir=seg_dir)
    after = {p: p.stat().st_mtime_ns for p in seg_dir.rglob("*") if p.is_file()}
    assert all(after[p] == t for p, t in before.items())  # nothing rewritten
    new = sorted(str(p.relative_to(seg_dir)) for p in set(after) - set(before))
    dead = [n for n in new if "/dead-" in n]
    assert len(dead) == 2 and all(np.load(seg_dir / n).size == 1 for n in dead)
    assert len({n.split("/")[0] for n in new if "/dead-" not in n}) == 1  # one new segment
    assert DenseIndex.segment_files(tmp_path / "c2") >= {n for n in dead}
    back = DenseIndex.load(tmp_path / "c2", device="cpu")
    assert len(back) == 2008 and 5 not in back and 2009 in back
    np.testing.assert_array_equal(back.search(x[:3], 5).ids, idx.search(x[:3], 5).ids)


def test_small_adds_merge_within_merge_max():
    idx = DenseIndex(4, "flat", device="cpu", merge_max=64)
    for i in range(40):
        idx.add(np.arange(8 * i, 8 * i + 8), unit_rows(8, 4, seed=i))
    sizes = [s.n for s in idx.segments]
    assert max(sizes) <= 64 and len(sizes) <= 40 * 8 // 64 + 6
    idx.optimize()
    assert [s.n for s in idx.segments] == [320]


def test_optimize_makes_segments_of_at_most_segment_max_rows():
    """Past segment_max, optimize makes several merged segments of about equal size, each
    with its own IVF lists; exact results are unchanged and deleted rows are gone."""
    x = clustered(1000, 16, seed=7)
    ids = np.arange(1000, dtype=np.int64)
    idx = DenseIndex(16, "ivf", device="cpu", merge_max=10, ivf_min=150, segment_max=300)
    for start in range(0, 1000, 100):
        idx.add(ids[start : start + 100], x[start : start + 100])
    idx.delete(np.arange(0, 1000, 10))  # 100 deleted, spread over every segment
    assert len(idx.segments) == 10
    q = clustered(8, 16, seed=8)
    before = idx.search(q, 10, exact=True)
    idx.optimize()
    sizes = [s.n for s in idx.segments]
    assert sum(sizes) == 900 and max(sizes) <= 300 and len(sizes) == 4
    assert max(sizes) - min(sizes) <= 100  # about equal: groups of whole 90-row segments
    assert all(s.has_ivf and s.n_dead == 0 for s in idx.segments)
    after = idx.search(q, 10, exact=True)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.scores, before.scores)
    names = [s.name for s in idx.segments]
    idx.optimize()  # nothing left to do: the segments stay
    assert [s.name for s in idx.segments] == names
    one = DenseIndex(16, "flat", device="cpu", merge_max=10)
    one.add(ids, x)
    one.optimize()
    assert [s.n for s in one.segments] == [1000]  # under segment_max: one segment


def test_size_groups_are_few_and_within_the_cap():
    from types import SimpleNamespace

    from granite_index.index.dense import size_groups

    def sizes(live, cap):
        segs = [SimpleNamespace(n_live=n) for n in live]
        return [sum(s.n_live for s in g) for g in size_groups(segs, cap)]

    assert sizes([100] * 100, 2000) == [2000] * 5
    # large segments just under the cap, then small ones: the small ones go together
    assert sizes([1994] * 5 + [20, 10], 2000) == [1994] * 5 + [30]
    assert sizes([5000, 10, 10, 0, 3000], 2000) == [5000, 20, 3000]  # too big: alone; 0: dropped
    assert sizes([], 10) == []


def test_optimize_spills_each_merged_segment_to_disk(tmp_path):
    """With spill_to, each merged segment is written there at once and memory-mapped; the next
    save into that folder rewrites none of them, and a load gives the same answers."""
    x = clustered(900, 16, seed=11)
    idx = DenseIndex(16, "flat", device="cpu", merge_max=10, segment_max=300)
    for start in range(0, 900, 100):
        idx.add(np.arange(start, start + 100), x[start : start + 100])
    idx.optimize(spill_to=tmp_path / "segments")
    assert len(idx.segments) == 3
    assert all(isinstance(s.vectors, np.memmap) for s in idx.segments)
    spilled = {p: p.stat().st_mtime_ns for p in (tmp_path / "segments").rglob("*.npy")}
    assert {p.parent.name for p in spilled} == {s.name for s in idx.segments}
    idx.save(tmp_path / "index", segments_dir=tmp_path / "segments")
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "segments").rglob("*.npy")} == spilled
    q = clustered(5, 16, seed=12)
    back = DenseIndex.load(tmp_path / "index", device="cpu")
    np.testing.assert_array_equal(back.search(q, 10).ids, idx.search(q, 10).ids)


def test_rewriting_one_ivf_segment_keeps_its_lists():
    """optimize() of a lone IVF segment with deletions drops the rows from their lists and
    keeps the centroids (no k-means): each list holds its old rows, less the deleted ones."""
    x = clustered(2000, 16, seed=9)
    idx = DenseIndex(16, "ivf", device="cpu", ivf_min=500)
    idx.add(np.arange(2000), x)
    old = idx.segments[0]
    ptr = np.asarray(old.list_ptr)
    lists = [np.asarray(old.keys)[ptr[j] : ptr[j + 1]] for j in range(len(ptr) - 1)]
    gone = np.arange(0, 2000, 3)
    idx.delete(gone)
    q = clustered(10, 16, seed=10)
    before = idx.search(q, 10, nprobe=5)
    idx.optimize()
    new = idx.segments[0]
    assert new.name != old.name and new.n == 2000 - len(gone) and new.n_dead == 0
    np.testing.assert_array_equal(new.centroids, old.centroids)
    ptr = np.asarray(new.list_ptr)
    for j, keys in enumerate(lists):
        want = keys[~np.isin(keys, gone)]
        np.testing.assert_array_equal(np.asarray(new.keys)[ptr[j] : ptr[j + 1]], want)
    after = idx.search(q, 10, nprobe=5)  # the same lists probed: the same answers
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_allclose(after.scores, before.scores, rtol=1e-6)  # BLAS blocking: 1 ulp
    assert not np.isin(idx.search(q, 10, exact=True).ids, gone).any()


def test_reads_a_format_1_index(tmp_path):
    """A dense index saved by an earlier version (one FAISS file) opens and searches alike."""
    import json

    import faiss

    x = unit_rows(50, 8)
    flat = faiss.IndexFlatIP(8)
    flat.add(x)
    faiss.write_index(flat, str(tmp_path / "index.faiss"))
    alive = np.ones(50, bool)
    alive[3] = False
    np.save(tmp_path / "ids.npy", np.arange(50, dtype=np.int64) + 100)
    np.save(tmp_path / "alive.npy", alive)
    config = {
        "dim": 8,
        "kind": "flat",
        "hnsw_m": 32,
        "ef_construction": 200,
        "ef_search": 128,
        "nlist": None,
        "pq_m": None,
        "nprobe": 16,
        "format_version": 1,
    }
    meta = {"config": config, "trained": True, "dead_in_faiss": 1}
    (tmp_path / "config.json").write_text(json.dumps(meta))
    idx = DenseIndex.load(tmp_path, device="cpu")
    assert len(idx) == 49 and 103 not in idx and 104 in idx and idx.config.kind == "flat"
    live = np.flatnonzero(alive)
    want, _ = exact_knn(live + 100, x[live], x[:4], 5)
    np.testing.assert_array_equal(idx.search(x[:4], 5).ids, want)


def test_compaction_after_many_deletes_keeps_results_exact():
    x, q = unit_rows(300, 16), unit_rows(5, 16, seed=4)
    ids = np.arange(300, dtype=np.int64)
    idx = DenseIndex(16, device="cpu")
    idx.add(ids, x)
    idx.delete(ids[::2])
    assert idx.n_stored == 300 and len(idx) == 150  # deletions are recorded, not rewritten
    idx.compact()
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
    with pytest.raises(ValueError, match="quantization"):
        DenseIndex(8, quantization="int4")
    with pytest.raises(TypeError, match="unknown dense index options"):
        DenseIndex(8, nprobes=3)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="segment_max must be a positive int"):
            DenseIndex(8, segment_max=bad)


def test_newer_format_is_refused(tmp_path):
    import json

    from granite_index.errors import FormatVersionError

    idx = DenseIndex(4, device="cpu")
    idx.add([1], unit_rows(1, 4))
    idx.save(tmp_path)
    meta = json.loads((tmp_path / "index.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "index.json").write_text(json.dumps(meta))
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


def test_maintain_merges_small_runs_and_mostly_deleted_segments_only():
    idx = DenseIndex(4, "ivf", device="cpu", merge_max=16, ivf_min=200)
    idx.add(np.arange(400), unit_rows(400, 4))  # one large segment with IVF lists
    big = idx.segments[0].name
    for i in range(12):  # twelve small adds: binary merges stop at merge_max=16
        idx.add(np.arange(1000 + 10 * i, 1010 + 10 * i), unit_rows(10, 4, seed=i))
    assert len(idx.segments) > 8
    before = idx.search(unit_rows(3, 4, seed=50), 20, exact=True)
    idx.maintain()
    assert idx.segments[0].name == big  # untouched
    assert len(idx.segments) == 2 and idx.segments[1].n == 120
    np.testing.assert_array_equal(
        idx.search(unit_rows(3, 4, seed=50), 20, exact=True).ids, before.ids
    )
    idx.delete(np.arange(0, 300))  # 75 % of the large segment
    idx.maintain()
    assert idx.segments[0].name != big and idx.n_stored == len(idx) == 220


def test_ivf_over_many_segments_probes_them_jointly():
    """Segments past ivf_min each get lists; a search picks the nearest lists across all of
    them, with recall like one segment's, and every probe budget is exact at the top."""
    x, q = clustered(6000, 32, seed=4), clustered(40, 32, seed=5)
    ids = np.arange(6000, dtype=np.int64)
    idx = DenseIndex(32, "ivf", device="cpu", ivf_min=1000, merge_max=10)
    for start in range(0, 6000, 1500):
        idx.add(ids[start : start + 1500], x[start : start + 1500])
    assert len(idx.segments) == 4 and all(s.has_ivf for s in idx.segments)
    want, _ = exact_knn(ids, x, q, 10)
    assert recall_at_10(idx.search(q, 10).ids, want) >= 0.9
    lists = sum(len(s.centroids) for s in idx.segments)
    np.testing.assert_array_equal(idx.search(q, 10, nprobe=lists).ids, want)
    one = DenseIndex(32, "ivf", device="cpu", ivf_min=1000)
    one.add(ids, x)
    assert (
        abs(
            recall_at_10(idx.search(q, 10, nprobe=4).ids, want)
            - recall_at_10(one.search(q, 10, nprobe=8).ids, want)
        )
        < 0.15
    )


@pytest.mark.parametrize("share", [0.004, 0.1, 0.5])
def test_filtered_search_over_many_ivf_segments(share):
    """allow= keeps only allowed ids, always gives min(k, allowed) hits, and the approximate
    path (joint probes with masks, exact fallback) agrees with the exact one."""
    x, q = clustered(6000, 32, seed=6), clustered(30, 32, seed=7)
    ids = np.arange(6000, dtype=np.int64)
    idx = DenseIndex(32, "ivf", device="cpu", ivf_min=1000, merge_max=10, nprobe=4)
    for start in range(0, 6000, 1500):
        idx.add(ids[start : start + 1500], x[start : start + 1500])
    rng = np.random.default_rng(8)
    allow = np.sort(rng.choice(ids, int(6000 * share), replace=False))
    exact = idx.search(q, 10, allow=allow, exact=True)
    approx = idx.search(q, 10, allow=allow)
    want, _ = exact_knn(allow, x[allow], q, 10)
    np.testing.assert_array_equal(exact.ids[:, : want.shape[1]], want)
    assert np.isin(approx.ids[approx.ids >= 0], allow).all()
    assert ((approx.ids >= 0).sum(axis=1) == min(10, len(allow))).all()
    assert recall_at_10(approx.ids, exact.ids) >= 0.9
