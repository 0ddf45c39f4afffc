"""Hybrid search through a Collection: three legs (BM25, SPLADE-tiny, MiniLM) on a SciFact subset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from granite_index import Collection
from granite_index.cli import main
from granite_index.fusion import RRF, ConvexFusion
from granite_index.search import EncodedQueries


@pytest.fixture(scope="module")
def splade():
    from granite_index.encoders.sparse import SparseEncoder

    return SparseEncoder()


@pytest.fixture(scope="module")
def three_legs(tmp_path_factory, scifact_subset, scifact_vectors, bundled_encoder, splade):
    path = tmp_path_factory.mktemp("hybrid") / "col"
    col = Collection.create(
        path, encoder=bundled_encoder, sparse=["bm25", "splade"], sparse_encoder=splade
    )
    sub = scifact_subset
    col.add(sub["doc_ids"], sub["texts"], vectors=scifact_vectors)
    return col


def test_modes_and_single_legs(three_legs, scifact_subset):
    col = three_legs
    assert col.modes == ["bm25", "sparse", "dense", "hybrid"]
    q = scifact_subset["queries"][:5]
    for mode in ("bm25", "sparse", "dense"):
        res = col.search(q, k=10, mode=mode)
        assert res.ids.shape == (5, 10) and (res.ids >= 0).all()
        assert (np.diff(res.scores, axis=1) <= 0).all()


def test_lookups_are_each_legs_own_scores(three_legs, scifact_subset):
    # the score a leg gives a document it did not return is the one it would have returned
    col = three_legs
    enc = col.encode_queries(scifact_subset["queries"][:8])
    for leg in ("bm25", "sparse", "dense"):
        deep = col.legs[leg].search(enc.get(leg), 200)
        looked = col.legs[leg].score(enc.get(leg), deep.ids)
        hit = deep.ids >= 0
        if leg == "dense":
            np.testing.assert_allclose(looked[hit], deep.scores[hit], rtol=1e-5, atol=1e-6)
        else:  # bit-identical: same terms, same order of addition
            np.testing.assert_array_equal(looked[hit], deep.scores[hit])


def test_hybrid_fuses_the_legs(three_legs, scifact_subset):
    col = three_legs
    q = scifact_subset["queries"][:10]
    enc = col.encode_queries(q)
    res = col.search(enc, k=10, mode="hybrid")
    assert res.ids.shape == (10, 10)
    for row in res.ids:
        assert len(set(row.tolist())) == 10
    # the text path encodes the same queries
    np.testing.assert_array_equal(col.search(q, k=10, mode="hybrid").ids, res.ids)
    # a convex fusion with all weight on one leg ranks like that leg
    only = ConvexFusion({"bm25": 1.0, "sparse": 0.0, "dense": 0.0})
    fused = col.search(enc, k=10, mode="hybrid", fusion=only)
    np.testing.assert_array_equal(fused.ids, col.search(q, k=10, mode="bm25").ids)
    # two legs, RRF given as a dict, as a manifest stores it
    two = col.search(enc, k=5, mode="hybrid", legs=["bm25", "dense"], fusion=RRF(60).to_dict())
    assert two.ids.shape == (10, 5)


def test_hybrid_bad_input(three_legs):
    col = three_legs
    cases = [
        (dict(mode="hybrid", legs=["bm25"]), ValueError, "at least two legs"),
        (dict(mode="hybrid", legs=["bm25", "colbert"]), ValueError, "unknown leg"),
        (dict(mode="hybrid", legs="bm25"), TypeError, "sequence"),
        (dict(mode="hybrid", legs=["bm25", "bm25"]), ValueError, "repeat"),
        (dict(mode="hybrid", depth=3), ValueError, "depth"),
        (dict(mode="hybrid", fusion="rrf"), TypeError, "fusion must be"),
        (dict(mode="hybrid", fusion={"kind": "convex", "weights": {"x": 1.0}}), ValueError, "'x'"),
        (dict(mode="bm25", legs=["bm25", "dense"]), ValueError, "mode='hybrid'"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            col.search("vitamin d", k=5, **kwargs)
    with pytest.raises(TypeError, match="only dense search takes vectors"):
        col.search(np.ones((1, 384), np.float32), mode="hybrid")
    with pytest.raises(ValueError, match="not encoded for the 'sparse' leg"):
        col.search(col.encode_queries(["a query"], ["bm25", "dense"]), mode="hybrid")
    with pytest.raises(ValueError, match="empty"):
        col.encode_queries(["ok", "  "])


def test_fit_saves_the_fusion_and_reopen_uses_it(three_legs, scifact_subset, tmp_path):
    col = three_legs
    sub = scifact_subset
    train_q, train_ids = sub["queries"][:20], sub["qids"][:20]
    fit = col.fit_fusion(train_q, sub["qrels"], train_ids, legs=["bm25", "dense"])
    assert 0 < fit.score <= 1 and len(fit.table) > 20
    saved = col.manifest.fusion
    assert saved["legs"] == ["bm25", "dense"] and saved["fusion"] == fit.fusion.to_dict()
    again = Collection.open(col.path)
    q = sub["queries"][20:]
    want = again.search(q, k=10, mode="hybrid", legs=["bm25", "dense"], fusion=fit.fusion)
    got = again.search(q, k=10, mode="hybrid", legs=["dense", "bm25"])  # the saved fusion
    np.testing.assert_array_equal(got.ids, want.ids)
    # three legs have no saved fusion: the default (equal-weight min-max convex) answers
    default = again.search(q, k=10, mode="hybrid")
    explicit = again.search(
        q, k=10, mode="hybrid", fusion=ConvexFusion({"bm25": 1, "sparse": 1, "dense": 1})
    )
    np.testing.assert_array_equal(default.ids, explicit.ids)


def test_splade_leg_add_delete_reopen(tmp_path, splade):
    col = Collection.create(tmp_path / "sp", dense=False, sparse="splade", sparse_encoder=splade)
    col.add(["a", "b", "c"], ["vitamin d and bone health", "cats sleep", "granite is a rock"])
    assert col.modes == ["sparse"]
    assert col.search("vitamin", k=1).doc_ids() == [["a"]]  # default mode: the sparse leg
    col.delete(["a"])
    again = Collection.open(tmp_path / "sp")
    assert "a" not in again.search("vitamin", k=3).doc_ids()[0]
    assert again.info()["splade_index"]["weighting"] == "impact"
    enc = again.encode_queries(["vitamin"])
    assert isinstance(enc, EncodedQueries) and enc.sparse.nnz > 0 and enc.dense is None
    with pytest.raises(ValueError, match="not in sparse"):
        Collection.create(tmp_path / "x", dense=False, sparse="bm25", sparse_model="m")


def test_cli_eval_hybrid_fit_on_train(tmp_path, tiny_bert):
    root = tmp_path / "ds"
    (root / "qrels").mkdir(parents=True)
    corpus = [
        ("d1", "BM25 ranks documents using term statistics."),
        ("d2", "Dense retrieval embeds queries and passages."),
        ("d3", "Cats sleep most of the day."),
        ("d4", "Columnar formats store data by column."),
    ]
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": x}) + "\n" for i, x in corpus)
    )
    queries = {"1": "sleeping cats", "2": "term statistics", "3": "column storage", "4": "cat"}
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries.items())
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td3\t1\n2\td1\t1\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n3\td4\t1\n4\td3\t1\n")
    runner = CliRunner()
    args = ["eval", str(root), "--mode", "hybrid", "--legs", "bm25,dense", "--json"]
    res = runner.invoke(main, [*args, "--model", str(tiny_bert), "--fit-on", "train"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["legs"] == ["bm25", "dense"] and report["fit_on"] == "train"
    assert report["fusion"]["kind"] in ("convex", "rrf", "dbsf")
    assert 0 <= report["ndcg@10"] <= 1
    bad = runner.invoke(main, [*args, "--fit-on", "test"])
    assert bad.exit_code == 2 and "--fit-on" in bad.output
    one = runner.invoke(main, ["eval", str(root), "--mode", "hybrid", "--legs", "bm25"])
    assert one.exit_code == 2 and "--legs" in one.output


def test_share_makes_the_learned_sparse_leg_approximate_with_exact_scores(
    three_legs, scifact_subset
):
    col = three_legs
    enc = col.encode_queries(scifact_subset["queries"][:20])
    exact = col.search(enc, k=10, mode="sparse")
    full = col.search(enc, k=10, mode="sparse", share=1.0)
    np.testing.assert_array_equal(full.ids, exact.ids)
    approx = col.search(enc, k=10, mode="sparse", share=0.5)
    hits = approx.ids >= 0
    # what it returns carries the leg's exact scores, and most of the exact top 10
    looked = col.legs["sparse"].score(enc.get("sparse"), approx.ids)
    np.testing.assert_array_equal(looked[hits], approx.scores[hits])
    found = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.ids, exact.ids)])
    assert found >= 0.8
    # hybrid passes it to the learned-sparse leg only
    hybrid = col.search(enc, k=10, mode="hybrid", share=0.5)
    assert hybrid.ids.shape == (20, 10) and (hybrid.ids >= 0).all()
    bm25_only = Collection.create(three_legs.path.parent / "bm25-only", sparse="bm25")
    with pytest.raises(ValueError, match="share"):
        bm25_only.search(["x"], mode="bm25", share=0.5)
