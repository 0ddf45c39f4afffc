"""Streaming sources (``read_batches``) and ``add_source``: every kind of source round-trips into
a collection (hashing encoder and BM25: no model), metadata comes through, errors name the source
and the record, and a stopped run resumes with only the missing documents."""

from __future__ import annotations

import gzip
import json

import lance
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from granite_index import Bm25Spec, Collection, DenseSpec
from granite_index.collection import Batch, add_source, ingest, read_batches
from granite_index.collection.sources import count_rows
from tests.hashing import DOCS, QUERIES, HashingEncoder

IDS = [f"d{i}" for i in range(len(DOCS))]
RECORDS = [
    {
        "id": doc_id,
        "title": f"Title {i}" if i % 2 else None,
        "text": text,
        "lang": "en" if i % 3 else None,
        "n": i,
    }
    for i, (doc_id, text) in enumerate(zip(IDS, DOCS))
]


def _text(rec):
    return f"{rec['title'] or ''} {rec['text']}".strip()


def _meta(rec, fields=("title", "lang", "n")):
    meta = {k: rec[k] for k in fields if rec.get(k) is not None}
    return meta or None


def _jsonl(path, records, opener=open):
    with opener(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    return path


def _table(records=RECORDS):
    return pa.Table.from_pylist(records)


def _source(kind, tmp_path):
    """RECORDS as a source of ``kind``."""
    if kind == "jsonl":
        return _jsonl(tmp_path / "docs.jsonl", RECORDS)
    if kind == "jsonl.gz":
        return _jsonl(tmp_path / "docs.jsonl.gz", RECORDS, gzip.open)
    if kind == "parquet":
        pq.write_table(_table(), tmp_path / "docs.parquet", row_group_size=5)
        return tmp_path / "docs.parquet"
    if kind == "parquet folder":
        (tmp_path / "pq").mkdir()
        pq.write_table(_table(RECORDS[:7]), tmp_path / "pq" / "part-0.parquet")
        pq.write_table(_table(RECORDS[7:]), tmp_path / "pq" / "part-1.parquet")
        return tmp_path / "pq"
    if kind == "lance":
        lance.write_dataset(_table(), tmp_path / "docs.lance")
        return tmp_path / "docs.lance"
    if kind == "table":
        return _table()
    if kind == "record batch":
        return _table().combine_chunks().to_batches()[0]
    if kind == "reader":
        table = _table()
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=4))
    if kind == "dataframe":
        return pd.DataFrame(RECORDS)
    if kind == "dicts":
        return iter(RECORDS)
    raise AssertionError(kind)


KINDS = [
    "jsonl",
    "jsonl.gz",
    "parquet",
    "parquet folder",
    "lance",
    "table",
    "record batch",
    "reader",
    "dataframe",
    "dicts",
]


def _bm25(path):
    return Collection.create(path, [Bm25Spec("en")])


def _stored(col, ids):
    table = col.get(ids)
    meta = [None if m is None else json.loads(m) for m in table.column("metadata").to_pylist()]
    return table.column("text").to_pylist(), meta


@pytest.mark.parametrize("kind", KINDS)
def test_every_source_kind_round_trips(kind, tmp_path):
    source = _source(kind, tmp_path)
    batches = list(read_batches(source, batch_size=5))
    assert [len(b.ids) for b in batches] == [5, 5, 2]
    assert [i for b in batches for i in b.ids] == IDS
    assert [t for b in batches for t in b.texts] == [_text(r) for r in RECORDS]
    assert [m for b in batches for m in b.metadata] == [_meta(r) for r in RECORDS]

    col = _bm25(tmp_path / "col")
    (tmp_path / "again").mkdir()  # a fresh source: an iterator or reader is read once
    assert add_source(col, _source(kind, tmp_path / "again"), batch_size=5, show_progress=False)
    assert len(col) == len(DOCS) and col.manifest.commit == 3  # one commit per batch
    texts, meta = _stored(col, IDS)
    assert texts == [_text(r) for r in RECORDS] and meta == [_meta(r) for r in RECORDS]


def test_dense_and_bm25_search_like_a_plain_add(tmp_path):
    path = _jsonl(tmp_path / "docs.jsonl", RECORDS)
    specs = [DenseSpec(encoder=HashingEncoder()), Bm25Spec("en")]
    col = Collection.create(tmp_path / "a", specs)
    assert col.add_from(path, batch_size=4, show_progress=False) == len(DOCS)
    assert col.add_from(path, batch_size=4, show_progress=False) == 0  # all there: resumes
    ref = Collection.create(tmp_path / "b", specs)
    ref.add(IDS, [_text(r) for r in RECORDS], [_meta(r) for r in RECORDS])
    for mode in ("dense", "bm25", "hybrid"):
        got, want = col.search(QUERIES, k=5, mode=mode), ref.search(QUERIES, k=5, mode=mode)
        assert got.doc_ids() == want.doc_ids()
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)


def test_fields_metadata_fields_and_vectors(tmp_path):
    enc = HashingEncoder()
    texts = [_text(r) for r in RECORDS]
    rows = [
        {"key": i, "body": r["text"], "name": r["title"], "lang": r["lang"], "emb": v.tolist()}
        for i, (r, v) in enumerate(zip(RECORDS, enc.encode_documents(texts)))
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "docs.parquet")
    fields = dict(id_field="key", text_field="body", title_field="name", vector_field="emb")
    (batch,) = read_batches(tmp_path / "docs.parquet", metadata_fields=["lang"], **fields)
    assert batch.ids == list(range(len(DOCS))) and batch.texts == texts
    assert batch.metadata == [_meta(r, ("lang",)) for r in RECORDS]
    assert batch.vectors.dtype == np.float32 and batch.vectors.shape == (len(DOCS), enc.dim)

    col = Collection.create(tmp_path / "c", [DenseSpec(encoder=enc)])
    add_source(col, tmp_path / "docs.parquet", show_progress=False, **fields)
    np.testing.assert_allclose(col.vectors(list(range(len(DOCS)))), batch.vectors, atol=1e-6)
    assert json.loads(col.get([1]).column("metadata")[0].as_py()) == {
        "name": "Title 1",
        "lang": "en",
    }


def test_beir_folder_needs_only_its_corpus_and_reads_as_load_beir(tmp_path):
    beir = tmp_path / "beir"
    beir.mkdir()
    _jsonl(
        beir / "corpus.jsonl",
        [
            {"_id": 7, "title": "T", "text": "seven", "metadata": {"year": 2020}},
            {"_id": "e", "title": "", "text": " "},  # no text: left out, as index_beir does
            {"_id": "x", "text": "ex", "metadata": {}},
        ],
    )
    (batch,) = read_batches(beir)
    assert batch.ids == ["7", "x"] and batch.texts == ["T seven", "ex"]
    assert batch.metadata == [{"year": 2020, "title": "T"}, None]
    assert count_rows(beir) is None


def test_iterables_of_batches_pass_through_and_reading_is_lazy(tmp_path):
    batches = [Batch(IDS[:3], DOCS[:3]), Batch(IDS[3:], DOCS[3:])]
    assert list(read_batches(iter(batches), batch_size=1)) == batches
    assert list(read_batches([])) == []

    pulled = []

    def records():
        for rec in RECORDS:
            pulled.append(rec["id"])
            yield rec

    it = read_batches(records(), batch_size=4)
    assert len(next(it).ids) == 4 and len(pulled) <= 5  # no more than a batch ahead


def test_count_rows(tmp_path):
    assert count_rows(_source("parquet folder", tmp_path)) == len(DOCS)
    assert count_rows(_source("lance", tmp_path)) == len(DOCS)
    assert count_rows(_table()) == count_rows(pd.DataFrame(RECORDS)) == len(DOCS)
    assert count_rows(_source("jsonl", tmp_path)) is None and count_rows(iter([])) is None


def test_resuming_adds_only_the_missing_documents(tmp_path):
    path = _jsonl(tmp_path / "docs.jsonl", RECORDS)
    col = _bm25(tmp_path / "col")
    first = next(read_batches(path, batch_size=5))  # a run stopped after its first commit
    assert ingest(col, [first], show_progress=False) == 5
    commit = col.manifest.commit
    assert add_source(col, path, batch_size=5, show_progress=False) == len(DOCS) - 5
    assert len(col) == len(DOCS) and col.manifest.commit == commit + 2
    assert add_source(col, path, batch_size=5, show_progress=False) == 0
    assert col.manifest.commit == commit + 2
    assert _stored(col, IDS)[0] == [_text(r) for r in RECORDS]


def test_an_error_keeps_the_batches_before_it(tmp_path):
    bad = [*RECORDS[:6], {"id": "z", "text": ""}]
    path = _jsonl(tmp_path / "docs.jsonl", bad)
    col = _bm25(tmp_path / "col")
    with pytest.raises(ValueError, match=r"docs\.jsonl: line 7: empty text"):
        add_source(col, path, batch_size=3, show_progress=False)
    assert len(col) == 6


def test_source_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl does not exist"):
        read_batches(tmp_path / "nope.jsonl")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"notes\.txt: unknown file type"):
        read_batches(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: a folder must be a BEIR folder"):
        read_batches(tmp_path / "empty")
    pq.write_table(pa.table({"id": [1], "body": ["x"]}), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t\.parquet has no 'text' column \(text_field\)"):
        read_batches(tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"has no '_id' or 'id' column"):
        read_batches(pa.table({"key": [1], "text": ["x"]}))
    with pytest.raises(ValueError, match=r"no 'nope' column \(metadata_fields\)"):
        read_batches(_table(), metadata_fields=["lang", "nope"])
    with pytest.raises(TypeError, match="single dict"):
        read_batches({"id": 1, "text": "x"})
    with pytest.raises(TypeError, match="first item is a str"):
        read_batches(["a", "b"])
    with pytest.raises(TypeError, match="source must be a path"):
        read_batches(42)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        read_batches(_table(), batch_size=0)


@pytest.mark.parametrize(
    ("lines", "error", "message"),
    [
        (['{"id": 1, "text": "a"}', "", '{"id": 2, "text": "  "}'], ValueError, "line 3: empty"),
        (['{"id": 1, "text": "a"}', "{not json"], ValueError, "line 2: not valid JSON"),
        (['{"text": "a"}'], ValueError, "line 1: no id"),
        (['{"id": 1, "body": "a"}'], ValueError, "line 1: no 'text' field"),
        (['{"id": 1, "text": 5}'], TypeError, "line 1: 'text' is a int, not a string"),
        (['{"id": 1.5, "text": "a"}'], TypeError, "line 1: id 1.5 is a float"),
        (['{"id": 1, "text": "a"}', '{"id": "b", "text": "b"}'], TypeError, "line 2: id 'b'"),
        (["[1, 2]"], TypeError, "line 1: expected an object"),
    ],
)
def test_bad_records_name_their_line(tmp_path, lines, error, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(error, match=f"bad.jsonl: {message}"):
        list(read_batches(path))


def test_bad_rows_name_their_row():
    table = pa.table({"id": ["a", None], "text": ["x", "y"]})
    with pytest.raises(ValueError, match="the Arrow table: row 2: no id"):
        list(read_batches(table))
