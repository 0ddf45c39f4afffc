"""The Leg protocol and the hybrid searcher, on indexes built with hashing encoders (no model,
no torch, no collection)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from granite_index.fusion import RRF, Candidates, ConvexFusion
from granite_index.index import DenseIndex, SparseIndex
from granite_index.search import (
    DEFAULT_DEPTH,
    LEG_NAMES,
    Bm25Leg,
    DenseLeg,
    EncodedQueries,
    HybridSearcher,
    Leg,
    SpladeLeg,
    check_depth,
    check_leg_names,
    encode_queries,
)
from tests.hashing import DOCS, QUERIES, HashingEncoder, HashingSparseEncoder


def assert_same_ranking(ids_a, scores_a, ids_b, scores_b):
    """Equal scores, and equal ids except among hits tied with the last one kept (a cut through
    a tie may keep any of its members)."""
    np.testing.assert_allclose(scores_a, scores_b, rtol=1e-5, atol=1e-6)
    for ia, sa, ib in zip(ids_a, scores_a, ids_b):
        above = sa > sa[-1] + 1e-6
        np.testing.assert_array_equal(ia[above], ib[above])


@pytest.fixture(scope="module")
def legs() -> dict[str, Leg]:
    keys = np.arange(100, 100 + len(DOCS), dtype=np.int64)
    bm25 = SparseIndex.bm25("en")
    bm25.add_texts(keys, DOCS)
    splade_enc, dense_enc = HashingSparseEncoder(), HashingEncoder()
    splade = SparseIndex("impact")
    rows = splade_enc.encode_documents(DOCS)
    splade.add(keys, rows.indptr, rows.indices, rows.values)
    dense = DenseIndex(dense_enc.dim, "flat", device="cpu")
    dense.add(keys, dense_enc.encode_documents(DOCS))
    return {
        "bm25": Bm25Leg(bm25),
        "sparse": SpladeLeg(splade, splade_enc.encode_queries),
        "dense": DenseLeg(dense, dense_enc.encode_queries),
    }


def test_the_legs_follow_the_protocol(legs):
    assert tuple(legs) == LEG_NAMES
    for name, leg in legs.items():
        assert isinstance(leg, Leg) and leg.name == name


@pytest.mark.parametrize("name", LEG_NAMES)
def test_retrieve_equals_search_and_lookups_equal_scores(legs, name):
    leg = legs[name]
    q = leg.encode_queries(QUERIES)
    hits = leg.retrieve(q, 8)
    res = leg.search(q, 8)
    assert_same_ranking(hits.ids, hits.scores, res.ids, res.scores)
    found = hits.ids >= 0
    looked = hits.lookup(hits.ids)
    np.testing.assert_allclose(looked[found], hits.scores[found], rtol=1e-5, atol=1e-6)
    assert np.isnan(looked[~found]).all()
    direct = leg.score(q, hits.ids)
    np.testing.assert_allclose(direct[found], hits.scores[found], rtol=1e-5, atol=1e-6)
    # an id no leg holds scores NaN
    assert np.isnan(hits.lookup(np.full((len(QUERIES), 1), 999_999, np.int64))).all()


def test_hybrid_search_equals_the_numpy_fusion_of_its_candidates(legs):
    enc = encode_queries(QUERIES, legs)
    for fusion in (ConvexFusion({n: 1.0 for n in legs}, "minmax"), RRF(10)):
        searcher = HybridSearcher(legs, fusion)
        ids, scores = searcher.search(enc, 5, depth=8)
        want_ids, want_scores = fusion.fuse(searcher.candidates(enc, 8), 5)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5)


def test_all_weight_on_one_leg_ranks_like_that_leg(legs):
    enc = encode_queries(QUERIES, legs)
    for name in legs:
        fusion = ConvexFusion({n: float(n == name) for n in legs}, "minmax")
        ids, fused = HybridSearcher(legs, fusion).search(enc, 3, depth=len(DOCS))
        alone = legs[name].search(enc.get(name), 3)
        # same order as the leg's own (min-max scaling is monotone); ties aside
        for row_ids, row_fused, want in zip(ids, fused, alone.ids):
            above = row_fused > row_fused[-1] + 1e-6
            np.testing.assert_array_equal(row_ids[above], want[above])


def test_candidates_hold_every_legs_true_score(legs):
    enc = encode_queries(QUERIES, legs)
    c = HybridSearcher(legs).candidates(enc, 3)
    assert isinstance(c, Candidates) and c.legs == LEG_NAMES
    for li, name in enumerate(c.legs):
        want = legs[name].score(enc.get(name), c.ids)
        ok = c.ids >= 0
        # a leg scoring 0 (no shared term) is a true score too; NaN only for padding
        np.testing.assert_allclose(c.scores[li][ok], want[ok], rtol=1e-5, atol=1e-6)


def test_a_mapping_of_inputs_works_like_encoded_queries(legs):
    enc = encode_queries(QUERIES, legs)
    inputs = {name: enc.get(name) for name in legs}
    a = HybridSearcher(legs).search(enc, 4, depth=6)
    b = HybridSearcher(legs).search(inputs, 4, depth=6)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="not encoded for the 'dense' leg"):
        HybridSearcher(legs).search({"bm25": QUERIES, "sparse": inputs["sparse"]}, 4, depth=6)


def test_encoded_queries_take_slices_every_leg_alike(legs):
    enc = encode_queries(QUERIES, legs)
    rows = [3, 0]
    sub = enc.take(rows)
    again = encode_queries([QUERIES[i] for i in rows], legs)
    assert sub.n == 2 and sub.texts == again.texts
    np.testing.assert_array_equal(sub.dense, again.dense)
    for name in ("indptr", "indices", "values"):
        np.testing.assert_array_equal(getattr(sub.sparse, name), getattr(again.sparse, name))
    with pytest.raises(ValueError, match="not encoded for the 'dense' leg"):
        EncodedQueries(n=1, texts=["a"]).get("dense")


def test_query_checks(legs):
    with pytest.raises(TypeError, match="queries must be a str or a non-empty list of str"):
        encode_queries([], legs)
    with pytest.raises(ValueError, match="a query is empty"):
        encode_queries(["ok", "  "], legs)
    with pytest.raises(ValueError, match="unknown leg"):
        encode_queries(["ok"], {"colbert": legs["bm25"]})


def test_leg_name_and_depth_checks():
    have = ["bm25", "dense"]
    assert check_leg_names(None, have) == ("bm25", "dense")
    with pytest.raises(TypeError, match="sequence of leg names"):
        check_leg_names("bm25", have)
    with pytest.raises(ValueError, match="unknown leg 'colbert'"):
        check_leg_names(["bm25", "colbert"], have)
    with pytest.raises(ValueError, match="has no 'sparse' leg"):
        check_leg_names(["bm25", "sparse"], have)
    with pytest.raises(ValueError, match="repeat"):
        check_leg_names(["bm25", "bm25"], have)
    with pytest.raises(ValueError, match="at least two"):
        check_leg_names(["bm25"], have)
    assert check_depth(None, 10) == DEFAULT_DEPTH and check_depth(None, 500) == 500
    with pytest.raises(ValueError, match="must be >= k"):
        check_depth(5, 10)
    with pytest.raises(TypeError, match="depth must be an int"):
        check_depth(7.5, 1)


def test_search_layer_runs_without_torch():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from granite_index.index import SparseIndex\n"
        "from granite_index.search import Bm25Leg, HybridSearcher, encode_queries\n"
        "a, b = SparseIndex.bm25('en'), SparseIndex.bm25('en', k1=2.0)\n"
        "for idx in (a, b):\n"
        "    idx.add_texts(np.arange(3), ['red apple', 'green pear', 'red pear'])\n"
        "legs = {'bm25': Bm25Leg(a), 'sparse': Bm25Leg(b)}\n"
        "ids, _ = HybridSearcher(legs).search(encode_queries(['red'], legs), 2, 10)\n"
        "assert sorted(ids[0].tolist()) == [0, 2], ids\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
