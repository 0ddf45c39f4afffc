from __future__ import annotations

import math

import pytest

from granite_index.eval import evaluate, load_beir
from tests.conftest import BEIR


def _write_beir(root, *, qrels="query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td2\t2\r\n"):
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "T1", "text": "one"}\n{"_id": "d2", "title": "", "text": "two"}\n'
        '{"_id": "d3", "text": "three"}\n'
    )
    (root / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "first"}\n{"_id": "q2", "text": "second"}\n'
    )
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


def test_load_beir_handles_crlf_and_titles(tmp_path):
    data = load_beir(_write_beir(tmp_path / "ds"))
    assert data.doc_ids == ["d1", "d2", "d3"]
    assert data.documents() == ["T1 one", "two", "three"]
    assert data.qrels == {"q1": {"d1": 1, "d2": 2}}
    assert data.eval_queries() == (["q1"], ["first"])


def test_ndcg_recall_mrr_against_hand_computed_values():
    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}}
    run = {"q1": {"x": 3.0, "b": 2.0, "a": 1.0}, "q2": {"y": 1.0}}
    got = evaluate(qrels, run, ("ndcg@10", "recall@100", "mrr@10", "ndcg@1"))
    dcg = 2 / math.log2(3) + 1 / math.log2(4)  # trec_eval (and BEIR) use linear gain = grade
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert got["ndcg@10"] == pytest.approx((dcg / ideal + 0.0) / 2)
    assert got["recall@100"] == pytest.approx((1.0 + 0.0) / 2)
    assert got["mrr@10"] == pytest.approx((1 / 2 + 0.0) / 2)
    assert got["ndcg@1"] == 0.0


def test_queries_missing_from_the_run_count_as_zero():
    got = evaluate({"q1": {"a": 1}, "q2": {"b": 1}}, {"q1": {"a": 1.0}})
    assert got["ndcg@10"] == pytest.approx(0.5)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus.jsonl is missing"):
        load_beir(tmp_path)
    root = _write_beir(tmp_path / "ds")
    with pytest.raises(FileNotFoundError, match="splits: \\['test'\\]"):
        load_beir(root, split="dev")
    bad = _write_beir(tmp_path / "bad", qrels="q9\td1\t1\n")
    with pytest.raises(ValueError, match="missing from queries.jsonl"):
        load_beir(bad)
    broken = _write_beir(tmp_path / "broken")
    with open(broken / "corpus.jsonl", "a") as fh:
        fh.write("{not json\n")
    with pytest.raises(ValueError, match="corpus.jsonl:4: not valid JSON"):
        load_beir(broken)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate({"q": {"a": 1}}, {}, ("bleu@4",))


@pytest.mark.parametrize(
    ("name", "n_docs", "n_queries"),
    [("scifact", 5183, 300), ("cisi", 1460, 76), ("med", 1033, 30), ("cacm", 3204, 52)],
)
def test_shared_datasets_load(name, n_docs, n_queries):
    data = load_beir(BEIR / name)
    assert len(data.doc_ids) == n_docs and len(data.qrels) == n_queries
    assert all(d.strip() for d in data.documents())
