from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from granite_index import Collection
from granite_index.cli import main

CORPUS = [
    ("d1", "Search engines", "BM25 ranks documents using term statistics."),
    ("d2", "Vectors", "Dense retrieval embeds queries and passages."),
    ("d3", "Cats", "Cats sleep most of the day."),
    ("d4", "Storage", "Columnar formats store data by column."),
]


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "tinyds"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in CORPUS)
    )
    (root / "queries.jsonl").write_text(
        '{"_id": "1", "text": "sleeping cats"}\n{"_id": "2", "text": "term statistics"}\n'
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td3\t1\n2\td1\t1\n")
    return root


def test_help_for_every_command():
    runner = CliRunner()
    for cmd in ([], ["index"], ["search"], ["eval"], ["info"]):
        res = runner.invoke(main, [*cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output


def test_index_resume_search_info(dataset, tmp_path, tiny_bert):
    runner = CliRunner()
    out = tmp_path / "col"
    res = runner.invoke(
        main, ["index", str(dataset), "--out", str(out), "--model", str(tiny_bert), "--chunk", "3"]
    )
    assert res.exit_code == 0, res.output
    assert "indexed 4 new documents (4 in all)" in res.output
    assert Collection.open(out).manifest.commit == 2  # two chunks, two commits
    again = runner.invoke(
        main, ["index", str(dataset), "--out", str(out), "--model", str(tiny_bert)]
    )
    assert "indexed 0 new documents (4 in all)" in again.output
    hits = runner.invoke(main, ["search", str(out), "cats", "-k", "2", "--json"])
    assert hits.exit_code == 0, hits.output
    rows = [json.loads(line) for line in hits.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2] and all(
        r["id"] in {"d1", "d2", "d3", "d4"} for r in rows
    )
    info = json.loads(runner.invoke(main, ["info", str(out)]).stdout)
    assert info["n_docs"] == 4 and info["encoder"]["model"] == str(tiny_bert)


def test_eval_json(dataset, tiny_bert):
    res = CliRunner().invoke(
        main, ["eval", str(dataset), "--model", str(tiny_bert), "--json", "-k", "4"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["mode"] == "dense" and report["n_queries"] == 2 and report["n_docs"] == 4
    assert 0.0 < report["ndcg@10"] <= 1.0 and report["recall@100"] == 1.0  # 4 docs, depth 4


def test_errors_are_one_line_messages(tmp_path, dataset):
    runner = CliRunner()
    res = runner.invoke(main, ["search", str(tmp_path / "nope"), "q"])
    assert (
        res.exit_code == 1 and "NotACollectionError" in res.output and "Traceback" not in res.output
    )
    res = runner.invoke(main, ["eval", str(dataset), "--split", "dev", "--model", "./no-model"])
    assert res.exit_code == 1 and "splits: ['test']" in res.output
    res = runner.invoke(
        main, ["index", str(dataset), "--out", str(tmp_path / "o"), "--model", "./no-model"]
    )
    assert res.exit_code == 1 and "ModelNotFoundError" in res.output


def test_eval_bm25_json_needs_no_model(dataset):
    res = CliRunner().invoke(main, ["eval", str(dataset), "--mode", "bm25", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["mode"] == "bm25" and report["model"] is None and report["language"] == "en"
    assert report["ndcg@10"] == 1.0  # each query's relevant document shares its stemmed terms


def test_index_bm25_only_then_search(dataset, tmp_path):
    runner = CliRunner()
    out = tmp_path / "lex"
    res = runner.invoke(main, ["index", str(dataset), "--out", str(out), "--no-dense", "--bm25"])
    assert res.exit_code == 0, res.output
    hits = runner.invoke(main, ["search", str(out), "column storage", "--json"])
    assert hits.exit_code == 0, hits.output
    assert json.loads(hits.stdout.splitlines()[0])["id"] == "d4"
    wrong = runner.invoke(main, ["search", str(out), "x", "--mode", "dense"])
    assert wrong.exit_code == 1 and "no dense mode" in wrong.output
    none = runner.invoke(main, ["index", str(dataset), "--out", str(tmp_path / "n"), "--no-dense"])
    assert none.exit_code == 2 and "nothing to build" in none.output
    dense_col = runner.invoke(
        main, ["eval", str(dataset), "--mode", "dense", "--collection", str(out)]
    )
    assert dense_col.exit_code != 0 and "has no dense index" in dense_col.output


def test_index_plain_jsonl_and_parquet_corpus_then_search(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    runner = CliRunner()
    records = [{"id": i, "title": t, "text": x, "source": "wiki"} for i, t, x in CORPUS]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "from-jsonl"
    args = ["index", str(jsonl), "--out", str(out), "--no-dense", "--bm25", "--chunk", "3"]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "indexed 4 new documents (4 in all)" in res.output
    assert Collection.open(out).manifest.commit == 2  # --chunk 3: two commits
    assert "indexed 0 new documents (4 in all)" in runner.invoke(main, args).output
    hits = runner.invoke(main, ["search", str(out), "column storage", "--json"])
    assert hits.exit_code == 0, hits.output
    top = json.loads(hits.stdout.splitlines()[0])
    assert top["id"] == "d4" and top["text"] == "Storage Columnar formats store data by column."
    assert top["metadata"] == {"title": "Storage", "source": "wiki"}

    table = pa.table({"doc_id": [r["id"] for r in records], "body": [r["text"] for r in records]})
    pq.write_table(table, tmp_path / "docs.parquet")
    out = tmp_path / "from-parquet"
    res = runner.invoke(
        main,
        ["index", str(tmp_path / "docs.parquet"), "--out", str(out), "--no-dense", "--bm25"]
        + ["--id-field", "doc_id", "--text-field", "body"],
    )
    assert res.exit_code == 0, res.output
    hits = runner.invoke(main, ["search", str(out), "sleeping cats", "-k", "1", "--json"])
    assert json.loads(hits.stdout)["id"] == "d3"


def test_index_beir_folder_needs_only_its_corpus(dataset, tmp_path):
    (dataset / "queries.jsonl").unlink()
    res = CliRunner().invoke(
        main, ["index", str(dataset), "--out", str(tmp_path / "c"), "--no-dense", "--bm25"]
    )
    assert res.exit_code == 0, res.output
    assert "indexed 4 new documents (4 in all)" in res.output


def test_index_input_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    runner = CliRunner()
    out = tmp_path / "col"
    lex = ["--out", str(out), "--no-dense", "--bm25"]
    res = runner.invoke(main, ["index", str(tmp_path / "nope.jsonl"), *lex])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "notes.txt").write_text("hello")
    res = runner.invoke(main, ["index", str(tmp_path / "notes.txt"), *lex])
    assert res.exit_code == 2 and "unknown file type" in res.output
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), tmp_path / "t.parquet")
    res = runner.invoke(main, ["index", str(tmp_path / "t.parquet"), *lex])
    assert res.exit_code == 2 and "no 'text' column" in res.output
    assert not out.exists()  # checked before a collection is made
    res = runner.invoke(main, ["index", *lex])
    assert res.exit_code == 2 and "give CORPUS" in res.output
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": ""}\n')
    res = runner.invoke(main, ["index", str(tmp_path / "bad.jsonl"), *lex])
    assert res.exit_code == 1 and "bad.jsonl: line 2: empty text" in res.output
    assert "Traceback" not in res.output
