"""The bundled model on real SciFact data (a 200-document subset, encoded once per session)."""

from __future__ import annotations

import numpy as np

from granite_index import Collection
from granite_index.eval import evaluate, run_from_result


def test_scifact_subset_quality_and_round_trip(
    tmp_path, bundled_encoder, scifact_subset, scifact_vectors
):
    s = scifact_subset
    col = Collection.create(tmp_path / "scifact", encoder=bundled_encoder, device="cpu")
    col.add(s["doc_ids"], s["texts"], vectors=scifact_vectors)
    qvec = bundled_encoder.encode_queries(s["queries"])
    res = col.search(qvec, k=100)
    scores = evaluate(s["qrels"], run_from_result(res, s["qids"]))
    # all-MiniLM-L6-v2 scores 0.645 nDCG@10 on the full 5,183 docs; 200 docs is easier.
    assert scores["ndcg@10"] > 0.7, scores
    assert scores["recall@100"] > 0.95, scores
    back = Collection.open(tmp_path / "scifact", device="cpu")
    again = back.search(qvec, k=100)
    np.testing.assert_array_equal(again.ids, res.ids)
    np.testing.assert_array_equal(again.scores, res.scores)
    assert again.doc_ids() == res.doc_ids()
    # text queries through the reopened collection's own (lazily loaded) encoder
    text_hits = back.search(s["queries"][:3], k=5).doc_ids()
    assert [row[0] for row in text_hits] == [row[0] for row in res.doc_ids()[:3]]
