from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from granite_index.eval import evaluate
from granite_index.fusion import (
    DBSF,
    RRF,
    Candidates,
    ConvexFusion,
    LegStats,
    fusion_from_dict,
)
from granite_index.fusion.fit import FitResult, default_grid, fit_fusion
from tests.strategies import leg_lists

NINF = -np.inf


def _legs():
    """One query. bm25 retrieves 3, 1, 2 (scores 9, 5, 1); dense retrieves 2, 4 (0.75, 0.25).

    Union (sorted by id): 1, 2, 3, 4.
    bm25 list: min 1, max 9, mean 5, population std sqrt(32/3), sample std 4.
    dense list: min 0.25, max 0.75, mean 0.5, population std 0.25, sample std 0.25*sqrt(2).
    """
    return {
        "bm25": (np.array([[3, 1, 2]]), np.array([[9.0, 5.0, 1.0]], np.float32)),
        "dense": (np.array([[2, 4, -1]]), np.array([[0.75, 0.25, NINF]], np.float32)),
    }


@pytest.fixture
def cands():
    return Candidates.from_legs(_legs())


# --------------------------------------------------------------------------- Candidates


def test_from_legs_builds_union_scores_ranks_and_stats(cands):
    assert cands.legs == ("bm25", "dense")
    np.testing.assert_array_equal(cands.ids, [[1, 2, 3, 4]])
    np.testing.assert_array_equal(cands.scores[0], [[5, 1, 9, np.nan]])
    np.testing.assert_array_equal(cands.scores[1], [[np.nan, 0.75, np.nan, 0.25]])
    np.testing.assert_array_equal(cands.ranks, [[[2, 3, 1, 0]], [[0, 1, 0, 2]]])
    assert cands.scores.dtype == np.float32 and cands.ranks.dtype == np.int32
    s = cands.stats
    np.testing.assert_allclose(s.min, [[1], [0.25]])
    np.testing.assert_allclose(s.max, [[9], [0.75]])
    np.testing.assert_allclose(s.mean, [[5], [0.5]])
    np.testing.assert_allclose(s.std, [[math.sqrt(32 / 3)], [0.25]])
    np.testing.assert_array_equal(s.count, [[3], [2]])


def test_from_legs_pads_rows_and_handles_empty_lists():
    c = Candidates.from_legs(
        {
            "a": (np.array([[5, 7], [-1, -1], [2, -1]]), np.array([[2, 1], [NINF] * 2, [1, NINF]])),
            "b": (np.array([[7], [-1], [9]]), np.array([[0.5], [NINF], [0.1]])),
        }
    )
    np.testing.assert_array_equal(c.ids, [[5, 7], [-1, -1], [2, 9]])
    assert np.isnan(c.stats.min[:, 1]).all() and (c.stats.count[:, 1] == 0).all()
    ids, scores = RRF().fuse(c, 3)
    np.testing.assert_array_equal(ids[1], [-1, -1, -1])
    assert np.isneginf(scores[1]).all() and ids[0, 2] == -1 and np.isneginf(scores[0, 2])


def test_a_valid_id_with_minus_inf_score_is_padding():
    c = Candidates.from_legs({"a": (np.array([[1, 2]]), np.array([[1.0, NINF]]))})
    np.testing.assert_array_equal(c.ids, [[1]])


def test_lookup_fills_only_missing_entries_and_leaves_stats_and_ranks(cands):
    seen = {}

    def bm25_lookup(ids):
        seen["bm25"] = ids.copy()
        return np.where(ids == 4, 3.0, np.nan).astype(np.float32)

    def dense_lookup(ids):
        seen["dense"] = ids.copy()
        return np.where(ids == 1, 0.5, NINF).astype(np.float32)  # -inf: unknown

    c = Candidates.from_legs(_legs(), lookup={"bm25": bm25_lookup, "dense": dense_lookup})
    np.testing.assert_array_equal(seen["bm25"], [[-1, -1, -1, 4]])
    np.testing.assert_array_equal(seen["dense"], [[1, -1, 3, -1]])
    np.testing.assert_array_equal(c.scores[0], [[5, 1, 9, 3]])
    np.testing.assert_array_equal(c.scores[1], [[0.5, 0.75, np.nan, 0.25]])
    np.testing.assert_array_equal(c.ranks, cands.ranks)
    for f in ("min", "max", "mean", "std", "count"):
        np.testing.assert_array_equal(getattr(c.stats, f), getattr(cands.stats, f))
    # minmax: bm25 id 4 -> (3 - 1) / 8 = 0.25; dense id 1 -> (0.5 - 0.25) / 0.5 = 0.5
    ids, scores = ConvexFusion({"bm25": 1, "dense": 1}).fuse(c, 4)
    # id1 0.5 + 0.5 = 1; id2 0 + 1 = 1; id3 1 + 0 = 1; id4 0.25 + 0 = 0.25
    np.testing.assert_array_equal(ids, [[1, 2, 3, 4]])
    np.testing.assert_allclose(scores, [[1, 1, 1, 0.25]])
    # RRF ignores looked-up scores: only own-list ranks count
    np.testing.assert_array_equal(RRF().fuse(c, 4)[0], RRF().fuse(cands, 4)[0])


def test_looked_up_scores_below_the_list_min_are_clipped_to_the_missing_floor():
    lookup = {"bm25": lambda ids: np.where(ids >= 0, -100.0, np.nan).astype(np.float32)}
    c = Candidates.from_legs(_legs(), lookup=lookup)
    base = Candidates.from_legs(_legs())
    for norm in ("minmax", "zscore", "theoretical"):
        f = ConvexFusion({"bm25": 1, "dense": 1}, norm)
        np.testing.assert_array_equal(f.fuse(c, 4)[1], f.fuse(base, 4)[1])
    np.testing.assert_array_equal(DBSF().fuse(c, 4)[1], DBSF().fuse(base, 4)[1])


# --------------------------------------------------------------------------- strategies


def test_minmax_by_hand_with_missing_scores_and_tie_break(cands):
    # bm25 (s - 1) / 8: id1 0.5, id2 0, id3 1, id4 missing -> 0
    # dense (s - 0.25) / 0.5: id2 1, id4 0, id1 and id3 missing -> 0
    # 0.5 * each: id1 0.25, id2 0.5, id3 0.5, id4 0; id2 and id3 tie -> smaller id first
    ids, scores = ConvexFusion({"bm25": 0.5, "dense": 0.5}, "minmax").fuse(cands, 6)
    np.testing.assert_array_equal(ids, [[2, 3, 1, 4, -1, -1]])
    np.testing.assert_allclose(scores, [[0.5, 0.5, 0.25, 0, NINF, NINF]])
    assert ids.dtype == np.int64 and scores.dtype == np.float32


def test_zscore_by_hand(cands):
    # bm25 z with sd = sqrt(32/3), a = 4/sd = 1.2247: id1 0, id2 -a, id3 +a, id4 missing -> min z = -a
    # dense z: id2 +1, id4 -1, missing -> -1
    # sums: id1 -1, id2 1 - a = -0.2247, id3 a - 1 = 0.2247, id4 -a - 1
    a = 4 / math.sqrt(32 / 3)
    ids, scores = ConvexFusion({"bm25": 1, "dense": 1}, "zscore").fuse(cands, 4)
    np.testing.assert_array_equal(ids, [[3, 2, 1, 4]])
    np.testing.assert_allclose(scores, [[a - 1, 1 - a, -1, -a - 1]], rtol=1e-6)


def test_theoretical_minmax_by_hand(cands):
    # bm25 (s - 0) / 9: id1 5/9, id2 1/9, id3 1, id4 missing -> 0
    # dense (s + 1) / 1.75: id2 1, id4 1.25/1.75 = 5/7, missing -> 0
    # sums: id1 5/9, id2 10/9, id3 1, id4 5/7
    ids, scores = ConvexFusion({"bm25": 1, "dense": 1}, "theoretical").fuse(cands, 4)
    np.testing.assert_array_equal(ids, [[2, 3, 4, 1]])
    np.testing.assert_allclose(scores, [[10 / 9, 1, 5 / 7, 5 / 9]], rtol=1e-6)
    f = ConvexFusion({"bm25": 1, "dense": 1}, "theoretical", {"bm25": 0, "dense": 0})
    # dense with tmin 0: id2 1, id4 1/3 -> id4 (1/3) < id1 (5/9)
    assert f.fuse(cands, 4)[0].tolist() == [[2, 3, 1, 4]]


def test_rrf_by_hand_with_tie_break(cands):
    # id1 bm25 rank 2 -> 1/62; id2 1/63 + 1/61; id3 1/61; id4 dense rank 2 -> 1/62 (ties id1)
    ids, scores = RRF(60).fuse(cands, 4)
    np.testing.assert_array_equal(ids, [[2, 3, 1, 4]])
    np.testing.assert_allclose(scores, [[1 / 63 + 1 / 61, 1 / 61, 1 / 62, 1 / 62]], rtol=1e-6)
    # weighted, k=0: id1 2/2 = 1, id2 2/3 + 1, id3 2, id4 1/2
    ids, scores = RRF(0, {"bm25": 2, "dense": 1}).fuse(cands, 4)
    np.testing.assert_array_equal(ids, [[3, 2, 1, 4]])
    np.testing.assert_allclose(scores, [[2, 5 / 3, 1, 0.5]], rtol=1e-6)


def test_dbsf_by_hand(cands):
    # 0.5 + (s - mean) / (6 sd), sample sd: bm25 sd 4 -> id1 0.5, id2 1/3, id3 2/3, id4 missing 0
    # dense sd 0.25*sqrt(2): id2 0.5 + 1/(6 sqrt 2), id4 0.5 - 1/(6 sqrt 2), missing 0
    e = 1 / (6 * math.sqrt(2))
    ids, scores = DBSF().fuse(cands, 4)
    np.testing.assert_array_equal(ids, [[2, 3, 1, 4]])
    np.testing.assert_allclose(scores, [[1 / 3 + 0.5 + e, 2 / 3, 0.5, 0.5 - e]], rtol=1e-6)
    ids, scores = DBSF({"bm25": 1}).fuse(cands, 2)  # dense weight 0
    np.testing.assert_array_equal(ids, [[3, 1]])


def test_degenerate_lists():
    # one hit per leg: max == min, std == 0
    c = Candidates.from_legs(
        {
            "bm25": (np.array([[1]]), np.array([[3.0]])),
            "dense": (np.array([[2]]), np.array([[0.0]])),
        }
    )
    assert ConvexFusion({"bm25": 1, "dense": 1}).fuse(c, 2)[1].tolist() == [[1, 1]]
    assert ConvexFusion({"bm25": 1, "dense": 1}, "zscore").fuse(c, 2)[1].tolist() == [[0, 0]]
    assert DBSF().fuse(c, 2)[1].tolist() == [[0.5, 0.5]]  # as Qdrant
    # theoretical: bm25 3/3 = 1; dense (0 + 1) / (0 + 1) = 1
    assert ConvexFusion({"bm25": 1, "dense": 2}, "theoretical").fuse(c, 2)[0].tolist() == [[2, 1]]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "weights, exc, match",
    [
        ({"bm25": -0.1, "dense": 1}, ValueError, "bm25"),
        ({"bm25": float("nan")}, ValueError, "bm25"),
        ({"bm25": float("inf")}, ValueError, "bm25"),
        ({"bm25": 0, "dense": 0.0}, ValueError, "all zero"),
        ({}, ValueError, "at least one leg"),
        ([("bm25", 1.0)], TypeError, "mapping"),
        ({"bm25": "1"}, TypeError, "bm25"),
        ({"bm25": True}, TypeError, "bm25"),
    ],
)
def test_bad_weights(weights, exc, match):
    for make in (ConvexFusion, lambda w: RRF(60, w), DBSF):
        with pytest.raises(exc, match=match):
            make(weights)


def test_weights_naming_an_unknown_leg(cands):
    for f in (ConvexFusion({"bm25": 1, "splade": 1}), RRF(weights={"splade": 1}), DBSF({"x": 1})):
        with pytest.raises(ValueError, match="'(splade|x)'"):
            f.fuse(cands, 3)


def test_bad_arguments(cands):
    with pytest.raises(ValueError, match="k must be"):
        RRF().fuse(cands, 0)
    with pytest.raises(TypeError, match="k must be"):
        RRF().fuse(cands, 2.0)
    with pytest.raises(ValueError, match="k must be"):
        RRF(-1)
    with pytest.raises(ValueError, match="normalization"):
        ConvexFusion({"bm25": 1}, "softmax")
    with pytest.raises(ValueError, match="theoretical_min has no value for leg 'dense'"):
        ConvexFusion({"bm25": 1}, "theoretical", {"bm25": 0}).fuse(cands, 2)
    with pytest.raises(TypeError, match="Candidates"):
        RRF().fuse(_legs(), 2)


def test_bad_legs():
    legs = _legs()
    with pytest.raises(ValueError, match="scores contain NaN"):
        Candidates.from_legs({**legs, "dense": (np.array([[2]]), np.array([[np.nan]]))})
    with pytest.raises(ValueError, match=r"'dense'\] has 2 queries"):
        Candidates.from_legs({**legs, "dense": (np.array([[2], [3]]), np.ones((2, 1)))})
    with pytest.raises(ValueError, match="'dense'.*both be"):
        Candidates.from_legs({**legs, "dense": (np.array([[2, 3]]), np.ones((1, 3)))})
    with pytest.raises(ValueError, match=r"'dense'\] repeats an id"):
        Candidates.from_legs({**legs, "dense": (np.array([[2, 2]]), np.ones((1, 2)))})
    with pytest.raises(ValueError, match="non-empty"):
        Candidates.from_legs({})
    with pytest.raises(ValueError, match="lookup names leg 'sparse'"):
        Candidates.from_legs(legs, lookup={"sparse": lambda ids: ids})
    with pytest.raises(ValueError, match="returned shape"):
        Candidates.from_legs(legs, lookup={"bm25": lambda ids: np.zeros(3)})
    c = Candidates.from_legs(legs)
    with pytest.raises(ValueError, match="'bm25': scores contain NaN"):
        Candidates(c.ids, np.full_like(c.scores, np.nan), c.ranks, c.legs, c.stats)
    with pytest.raises(ValueError, match="ranks must be"):
        Candidates(c.ids, c.scores, c.ranks[:1], c.legs, c.stats)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "fusion",
    [
        ConvexFusion({"bm25": 0.3, "dense": 0.7}, "zscore"),
        ConvexFusion({"bm25": 1}, "theoretical", {"bm25": 0.0, "dense": -1.0}),
        RRF(20, {"bm25": 2.0, "dense": 1.0}),
        RRF(),
        DBSF(),
        DBSF({"dense": 1.5}),
    ],
)
def test_dict_round_trip(fusion, cands):
    d = json.loads(json.dumps(fusion.to_dict()))
    assert d["kind"] == fusion.kind and d["format_version"] == 1
    back = fusion_from_dict(d)
    assert back == fusion
    for a, b in zip(back.fuse(cands, 3), fusion.fuse(cands, 3)):
        np.testing.assert_array_equal(a, b)


def test_from_dict_errors():
    with pytest.raises(ValueError, match="unknown fusion kind 'linear'"):
        fusion_from_dict({"kind": "linear"})
    with pytest.raises(ValueError, match="format_version 2"):
        fusion_from_dict({"kind": "rrf", "format_version": 2})
    with pytest.raises(ValueError, match="unknown field 'alpha'"):
        fusion_from_dict({"kind": "rrf", "alpha": 1})
    with pytest.raises(ValueError, match="'kind'"):
        fusion_from_dict({"k": 60})


# --------------------------------------------------------------------------- properties


def _own_order(ids, scores):
    keep = ids >= 0
    return [int(i) for _, i in sorted(zip(-scores[keep], ids[keep]))]


@settings(max_examples=60, deadline=None)
@given(leg_lists(), st.sampled_from(["minmax", "zscore", "theoretical"]))
def test_weight_one_on_a_leg_keeps_its_own_ranking(legs, norm):
    c = Candidates.from_legs(legs)
    for leg in c.legs:
        ids, _ = ConvexFusion({leg: 1.0}, norm).fuse(c, max(c.m, 1))
        own_ids, own_scores = legs[leg]
        for q in range(c.n_queries):
            own = set(own_ids[q][own_ids[q] >= 0].tolist())
            got = [int(i) for i in ids[q] if i in own]
            assert got == _own_order(own_ids[q], own_scores[q])


@settings(max_examples=60, deadline=None)
@given(leg_lists(), st.integers(0, 100))
def test_rrf_ignores_monotone_transforms_of_scores(legs, rrf_k):
    moved = {leg: (i, np.exp(s / 10.0) * 3 - 7) for leg, (i, s) in legs.items()}
    a = RRF(rrf_k).fuse(Candidates.from_legs(legs), 5)
    b = RRF(rrf_k).fuse(Candidates.from_legs(moved), 5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@settings(max_examples=60, deadline=None)
@given(leg_lists())
def test_minmax_ignores_affine_transforms_of_a_leg(legs):
    moved = {**legs, "bm25": (legs["bm25"][0], legs["bm25"][1] * 2 + 3)}
    f = ConvexFusion({"bm25": 0.4, "dense": 0.6})
    a = f.fuse(Candidates.from_legs(legs), 6)
    b = f.fuse(Candidates.from_legs(moved), 6)
    np.testing.assert_array_equal(a[0], b[0])


@settings(max_examples=60, deadline=None)
@given(leg_lists(), st.integers(1, 20))
def test_fused_ids_are_unique_sorted_and_from_the_union(legs, k):
    c = Candidates.from_legs(legs)
    grid = [
        ConvexFusion({"bm25": 0.5, "dense": 0.5}, n) for n in ("minmax", "zscore", "theoretical")
    ]
    for f in [*grid, RRF(), DBSF()]:
        ids, scores = f.fuse(c, k)
        assert ids.shape == scores.shape == (c.n_queries, k)
        for q in range(c.n_queries):
            union = set(c.ids[q][c.ids[q] >= 0].tolist())
            hits = ids[q][ids[q] >= 0].tolist()
            assert len(hits) == len(set(hits)) == min(k, len(union))
            assert set(hits) <= union
            assert (ids[q][len(hits) :] == -1).all() and np.isneginf(scores[q][len(hits) :]).all()
            s = scores[q][: len(hits)]
            assert (np.diff(s) <= 0).all()
            for j in range(len(hits) - 1):  # ties go to the smaller id
                assert s[j] > s[j + 1] or hits[j] < hits[j + 1]


# --------------------------------------------------------------------------- fitting


def _synthetic(nq=150, n_docs=400, n=40, seed=0):
    """'good' ranks the relevant docs high (with noise); 'bad' is random."""
    rng = np.random.default_rng(seed)
    qids = [f"q{i}" for i in range(nq)]
    qrels, good_ids, good_s, bad_ids, bad_s = {}, [], [], [], []
    for q in qids:
        docs = rng.choice(n_docs, n, replace=False)
        grades = {int(d): int(g) for d, g in zip(docs[:4], rng.integers(1, 3, 4))}
        qrels[q] = {f"d{d}": g for d, g in grades.items()}
        qrels[q][f"d{docs[-1]}"] = 0  # a judged non-relevant doc
        s = np.array([grades.get(int(d), 0) for d in docs]) + rng.normal(0, 0.7, n)
        o = np.argsort(-s)
        good_ids.append(docs[o])
        good_s.append(s[o])
        other = rng.choice(n_docs, n, replace=False)
        bad_ids.append(other)
        bad_s.append(np.sort(rng.random(n))[::-1])
    legs = {
        "good": (np.array(good_ids), np.array(good_s, np.float32)),
        "bad": (np.array(bad_ids), np.array(bad_s, np.float32)),
    }
    return Candidates.from_legs(legs), qrels, qids, np.array([f"d{i}" for i in range(n_docs)])


def test_fit_prefers_the_better_leg():
    c, qrels, qids, names = _synthetic()
    res = fit_fusion(c, qrels, qids, names, theoretical_min={"good": -10, "bad": 0})
    assert isinstance(res, FitResult) and isinstance(res.fusion, ConvexFusion)
    assert res.fusion.weights["good"] > res.fusion.weights["bad"]
    assert len(res.table) == 21 * 3 + 3
    assert len(fit_fusion(c, qrels, qids, names, k=5).table) == 21 * 2 + 3  # no theoretical
    best = max(r["score"] for r in res.table)
    (bad_only,) = [
        r["score"]
        for r in res.table
        if r["name"] == "convex-minmax" and r["params"]["weights"] == {"good": 0, "bad": 1}
    ]
    assert best > bad_only + 0.2
    assert res.score == pytest.approx(best, abs=1e-9)  # ir-measures == numpy search score
    assert fusion_from_dict(res.fusion.to_dict()) == res.fusion


def _run(ids, qids, names, k):
    return {
        q: {str(names[i]): float(k - j) for j, i in enumerate(row) if i >= 0}
        for q, row in zip(qids, ids)
    }


@pytest.mark.parametrize(
    "metric, k", [("nDCG@10", 10), ("ndcg@5", 10), ("recall@20", 10), ("mrr@10", 10), ("P@5", 8)]
)
def test_numpy_metrics_equal_ir_measures(metric, k):
    c, qrels, qids, names = _synthetic(nq=60, n=25, seed=1)
    qrels = dict(qrels)
    qrels["q3"] = {"d9999": 2}  # relevant doc never retrieved
    qrels["q4"] = {k: 0 for k in qrels["q4"]}  # no relevant doc
    qrels["q5"] = {**qrels["q5"], "d1": -1}  # negative grade
    del qrels["q6"]  # a query without judgements is left out
    grid = [RRF(60), RRF(0), DBSF(), *default_grid(c.legs, {})[::7]]
    res = fit_fusion(
        c, qrels, qids, lambda ids: [names[i] for i in ids], k=k, metric=metric, grid=grid
    )
    keep = [q for q in qids if q in qrels]
    rows = [qids.index(q) for q in keep]
    for fusion, row in zip(grid, res.table):
        ids, _ = fusion.fuse(c, k)
        name = metric.lower()
        ref = evaluate({q: qrels[q] for q in keep}, _run(ids[rows], keep, names, k), (name,))
        assert row["score"] == pytest.approx(ref[name], abs=1e-12), row


def test_fit_with_map_and_errors():
    c, qrels, qids, names = _synthetic(nq=20, n=10)
    res = fit_fusion(c, qrels, qids, names, metric="map@10", grid=[RRF(), DBSF()])
    assert res.metric == "map@10" and [r["name"] for r in res.table] == ["rrf", "dbsf"]
    with pytest.raises(ValueError, match="metric"):
        fit_fusion(c, qrels, qids, names, metric="ndcg")
    with pytest.raises(ValueError, match="query_ids"):
        fit_fusion(c, qrels, qids[:-1], names)
    with pytest.raises(ValueError, match="judgements"):
        fit_fusion(c, {}, qids, names)
    with pytest.raises(ValueError, match="k must be"):
        fit_fusion(c, qrels, qids, names, k=0)


def test_legstats_from_lists_matches_numpy():
    rng = np.random.default_rng(3)
    s = rng.normal(size=(2, 4, 6))
    valid = rng.random((2, 4, 6)) < 0.7
    st_ = LegStats.from_lists(s, valid)
    for li in range(2):
        for q in range(4):
            v = s[li, q][valid[li, q]]
            if v.size:
                assert st_.std[li, q] == pytest.approx(v.std())
                assert st_.min[li, q] == v.min() and st_.max[li, q] == v.max()


def test_top_k_equals_a_lexsort_twin():
    from granite_index.fusion.strategies import top_k_positions

    rng = np.random.default_rng(4)
    for m, k in ((30, 7), (30, 30), (5, 9)):
        ids = np.stack([rng.choice(10**12, m, replace=False) for _ in range(20)])
        ids[:, -3:] = -1
        fused = rng.integers(-3, 3, (20, m)) * rng.choice([1.0, 1e-30, 1e30], (20, m))
        fused[rng.random((20, m)) < 0.1] = -0.0
        c = Candidates(ids, np.zeros((1, 20, m)), np.zeros((1, 20, m)), ("a",), _stats(1, 20))
        order, f = top_k_positions(c, fused, k)
        f32 = np.where(ids >= 0, fused, NINF).astype(np.float32)
        np.testing.assert_array_equal(order, np.lexsort((ids, -f32), axis=-1)[:, :k])


def _stats(n_legs, nq):
    z = np.zeros((n_legs, nq))
    return LegStats(z, z, z, z, z.astype(np.int64))


def test_search_results_and_zero_queries_are_accepted():
    from granite_index.types import SearchResult

    legs = {leg: SearchResult(np.asarray(i), np.asarray(s)) for leg, (i, s) in _legs().items()}
    c = Candidates.from_legs(legs)
    np.testing.assert_array_equal(c.ids, [[1, 2, 3, 4]])
    empty = Candidates.from_legs({"a": (np.zeros((0, 3), np.int64), np.zeros((0, 3)))})
    ids, scores = RRF().fuse(empty, 4)
    assert ids.shape == scores.shape == (0, 4)


_STRATEGIES = [
    ConvexFusion({"bm25": 0.3, "sparse": 1.0, "dense": 0.7}, "minmax"),
    ConvexFusion({"bm25": 1.0, "dense": 2.0}, "zscore"),
    ConvexFusion({"bm25": 0.5, "sparse": 0.5, "dense": 1.0}, "theoretical"),
    RRF(),
    RRF(k=3, weights={"bm25": 2.0, "sparse": 0.0, "dense": 1.0}),
    DBSF(),
    DBSF({"bm25": 0.2, "dense": 1.0}),
]


@settings(max_examples=80, deadline=None)
@given(leg_lists(legs=("bm25", "sparse", "dense")), st.integers(1, 12), st.booleans())
def test_compiled_fusion_equals_the_numpy_path(legs, k, with_lookup):
    """fuse_results (one compiled pass, what hybrid search runs) gives the ids and scores of
    Fusion.fuse on Candidates.from_legs; integer scores make the lists' statistics exact in
    any summation order, so even ties must break alike."""
    from granite_index.fusion import fuse_results

    def lookup(leg):
        def f(ids):  # a deterministic score per (leg, id); unknown (NaN) for some ids
            out = ((ids * (3 + len(leg))) % 23).astype(np.float32)
            out[ids % 5 == 0] = np.nan
            out[ids < 0] = np.nan
            return out

        return f

    lookups = {leg: lookup(leg) for leg in ("bm25", "dense")} if with_lookup else None
    c = Candidates.from_legs(legs, lookup=lookups)
    for fusion in _STRATEGIES:
        want_ids, want_scores = fusion.fuse(c, k)
        got_ids, got_scores = fuse_results(fusion, legs, k, lookups)
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_array_equal(got_scores, want_scores)


def test_compiled_fusion_errors():
    from granite_index.fusion import fuse_results

    with pytest.raises(TypeError, match="fusion must be"):
        fuse_results("rrf", _legs(), 10)
    with pytest.raises(ValueError, match="k must be"):
        fuse_results(RRF(), _legs(), 0)
    with pytest.raises(ValueError, match="not in candidates"):
        fuse_results(RRF(weights={"sparse": 1.0}), _legs(), 3)
    with pytest.raises(ValueError, match="theoretical_min has no value"):
        fuse_results(
            ConvexFusion({"x": 1.0}, "theoretical", {"bm25": 0.0}), {"x": _legs()["bm25"]}, 3
        )
