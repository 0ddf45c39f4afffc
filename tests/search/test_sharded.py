"""A leg over shards answers as one index of all their documents: every leg, lookups, filters and
hybrid fusion, over 1, 2 and 4 shards routed by id, under adds and deletes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from granite_index.fusion import RRF, ConvexFusion
from granite_index.index import DenseIndex, SparseIndex
from granite_index.search import Bm25Leg, DenseLeg, HybridSearcher, Leg, SpladeLeg
from granite_index.search.sharded import ShardedLeg
from tests.hashing import HashingEncoder, HashingSparseEncoder
from tests.search.test_legs import assert_same_ranking

WORDS = [f"w{i}" for i in range(80)] + ["protein", "cell", "gene", "virus", "tumor"]
DENSE, SPARSE = HashingEncoder(), HashingSparseEncoder()


def _legs(keys: np.ndarray, texts: list[str]) -> dict[str, Leg]:
    bm25 = SparseIndex.bm25("en")
    splade = SparseIndex("impact")
    dense = DenseIndex(DENSE.dim, "flat", device="cpu")
    _add(bm25, splade, dense, keys, texts)
    return {
        "bm25": Bm25Leg(bm25),
        "sparse": SpladeLeg(splade, SPARSE.encode_queries),
        "dense": DenseLeg(dense, DENSE.encode_queries),
    }


def _add(bm25, splade, dense, keys, texts):
    if len(keys) == 0:
        return
    bm25.add_texts(keys, texts)
    rows = SPARSE.encode_documents(texts)
    splade.add(keys, rows.indptr, rows.indices, rows.values)
    dense.add(keys, DENSE.encode_documents(texts))


def _delete(legs, keys):
    if len(keys):
        for leg in legs.values():
            leg.index.delete(keys)


@pytest.mark.parametrize("n_shards", [1, 2, 4])
def test_sharded_legs_answer_as_one_index(n_shards):
    rng = np.random.default_rng(40 + n_shards)
    texts = [" ".join(rng.choice(WORDS, rng.integers(2, 30))) for _ in range(400)]
    queries = [" ".join(rng.choice(WORDS, rng.integers(1, 6))) for _ in range(30)]
    one = _legs(np.zeros(0, np.int64), [])
    shards = [_legs(np.zeros(0, np.int64), []) for _ in range(n_shards)]
    live: list[int] = []
    for step in range(3):  # adds and deletes
        ids = np.arange(step * 130, (step + 1) * 130)
        batch = [texts[i] for i in ids]
        _add(*(one[n].index for n in ("bm25", "sparse", "dense")), ids, batch)
        for s, legs in enumerate(shards):
            mine = ids[ids % n_shards == s]
            _add(
                *(legs[n].index for n in ("bm25", "sparse", "dense")),
                mine // n_shards,
                [texts[i] for i in mine],
            )
        live += ids.tolist()
        gone = rng.choice(live, 15, replace=False)
        live = sorted(set(live) - set(gone.tolist()))
        _delete(one, gone)
        for s, legs in enumerate(shards):
            _delete(legs, gone[gone % n_shards == s] // n_shards)
    sharded = {name: ShardedLeg([legs[name] for legs in shards]) for name in one}
    enc = {name: leg.encode_queries(queries) for name, leg in one.items()}
    probe = np.tile(np.array(live[::5] + [10**6]), (len(queries), 1))  # + an unknown id
    for name in one:
        want = one[name].search(enc[name], 20)
        got = sharded[name].search(enc[name], 20)
        assert_same_ranking(want.ids, want.scores, got.ids, got.scores)
        a, b = one[name].score(enc[name], probe), sharded[name].score(enc[name], probe)
        np.testing.assert_allclose(a, b, rtol=1e-6, equal_nan=True)
        assert np.isnan(b[:, -1]).all()
        hits = sharded[name].retrieve(enc[name], 20)
        # (the dense leg's lookups come from its scan's matrix product: equal to rounding)
        np.testing.assert_allclose(hits.lookup(probe), b, rtol=1e-6, equal_nan=True)
        allow = np.array(live[::3])
        want = one[name].search(enc[name], 10, allow=allow)
        got = sharded[name].search(enc[name], 10, allow=allow)
        assert np.isin(got.ids, np.append(allow, -1)).all()
        assert_same_ranking(want.ids, want.scores, got.ids, got.scores)
    # BM25 scores are bit-identical to one index's with its own statistics passed alike
    stats = sharded["bm25"].bm25_stats(queries)
    own = one["bm25"].index
    np.testing.assert_array_equal(
        sharded["bm25"].score(queries, probe),
        own.score(queries, probe, stats=own.bm25_stats(set(stats.df))),
    )
    for fusion in (ConvexFusion({n: 1.0 for n in one}, "minmax"), RRF(k=60)):
        want = HybridSearcher(one, fusion).search(enc, 10, 50)
        got = HybridSearcher(sharded, fusion).search(enc, 10, 50)
        assert_same_ranking(want[0], want[1], got[0], got[1])
        assert (got[0] >= 0).all()


def test_a_sharded_leg_checks_its_shards():
    with pytest.raises(ValueError, match="at least one shard"):
        ShardedLeg([])
    a = _legs(np.arange(3), ["a b", "b c", "c d"])
    with pytest.raises(ValueError, match="one kind"):
        ShardedLeg([a["bm25"], a["dense"]])
    leg = ShardedLeg([a["bm25"], a["bm25"]])
    assert leg.name == "bm25" and isinstance(leg, Leg)
    np.testing.assert_array_equal(leg.global_ids(1, np.array([0, -1, 2])), [1, -1, 5])
    keys = leg.split(np.array([[0, 1, 5, -1]]))
    np.testing.assert_array_equal(keys[0], [[0, -1, -1, -1]])
    np.testing.assert_array_equal(keys[1], [[-1, 0, 2, -1]])


OPS = st.lists(
    st.tuples(st.integers(1, 40), st.floats(0.0, 0.5)),  # (documents added, share deleted)
    min_size=1,
    max_size=4,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, n_shards=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**16))
def test_any_adds_and_deletes_keep_sharded_legs_equal_to_one_index(ops, n_shards, seed):
    rng = np.random.default_rng(seed)
    one = _legs(np.zeros(0, np.int64), [])
    shards = [_legs(np.zeros(0, np.int64), []) for _ in range(n_shards)]
    live: list[int] = []
    next_id = 0
    for n_add, share in ops:
        ids = np.arange(next_id, next_id + n_add)
        next_id += n_add
        texts = [" ".join(rng.choice(WORDS[:30], rng.integers(1, 12))) for _ in ids]
        _add(*(one[n].index for n in ("bm25", "sparse", "dense")), ids, texts)
        for s, legs in enumerate(shards):
            mine = ids % n_shards == s
            _add(
                *(legs[n].index for n in ("bm25", "sparse", "dense")),
                ids[mine] // n_shards,
                [t for t, m in zip(texts, mine) if m],
            )
        live += ids.tolist()
        gone = rng.choice(live, int(share * len(live)), replace=False)
        live = sorted(set(live) - set(gone.tolist()))
        _delete(one, gone)
        for s, legs in enumerate(shards):
            _delete(legs, gone[gone % n_shards == s] // n_shards)
    queries = [" ".join(rng.choice(WORDS[:30], rng.integers(1, 4))) for _ in range(5)]
    sharded = {name: ShardedLeg([legs[name] for legs in shards]) for name in one}
    enc = {name: leg.encode_queries(queries) for name, leg in one.items()}
    for name in one:
        want = one[name].search(enc[name], 8)
        got = sharded[name].search(enc[name], 8)
        assert_same_ranking(want.ids, want.scores, got.ids, got.scores)
        assert set(got.ids.ravel()) - {-1} <= set(live)
    fusion = ConvexFusion({n: 1.0 for n in one}, "minmax")
    want = HybridSearcher(one, fusion).search(enc, 5, 20)
    got = HybridSearcher(sharded, fusion).search(enc, 5, 20)
    assert_same_ranking(want[0], want[1], got[0], got[1])
