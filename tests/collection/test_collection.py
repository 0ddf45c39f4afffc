from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from granite_index import (
    Collection,
    DuplicateIdError,
    FormatVersionError,
    NotACollectionError,
    UnknownIdError,
    UnsupportedPathError,
)
from granite_index.index import SparseIndex
from tests.conftest import unit_rows

DOCS = {
    "d1": "BM25 ranks documents by term frequency and inverse document frequency.",
    "d2": "FAISS performs fast nearest neighbour search over dense vectors.",
    "d3": "Cats sleep for most of the day and hunt at night.",
    "d4": "The Lance format stores columnar data with versions.",
}


@pytest.fixture()
def col(tmp_path, tiny_encoder):
    c = Collection.create(tmp_path / "col", encoder=tiny_encoder, device="cpu")
    c.add(list(DOCS), list(DOCS.values()), [{"n": i} for i in range(len(DOCS))])
    return c


def test_search_equals_exact_knn_over_stored_vectors(col, tiny_encoder):
    queries = ["nearest neighbour vectors", "sleeping cats", "columnar storage"]
    res = col.search(queries, k=4)
    doc_vecs = tiny_encoder.encode_documents(list(DOCS.values()))
    scores = tiny_encoder.encode_queries(queries) @ doc_vecs.T
    want = [[list(DOCS)[j] for j in np.argsort(-row)] for row in scores]
    assert res.doc_ids() == want
    np.testing.assert_allclose(res.scores, -np.sort(-scores, axis=1), rtol=1e-5)
    np.testing.assert_allclose(col.vectors(["d3", "d1"]), doc_vecs[[2, 0]], atol=1e-6)


def test_reopen_restores_identical_results(col, tmp_path):
    queries = ["dense vectors", "night hunting"]
    before = col.search(queries, k=3)
    top = before.doc_ids()[0][0]
    col.delete([top])
    after_delete = col.search(queries, k=3)
    back = Collection.open(tmp_path / "col", device="cpu", precision="fp32")
    again = back.search(queries, k=3)
    np.testing.assert_array_equal(again.ids, after_delete.ids)
    np.testing.assert_array_equal(again.scores, after_delete.scores)
    assert top not in back and len(back) == 3
    assert all(len(row) == 3 and top not in row for row in after_delete.doc_ids())
    assert back.info()["commit"] == 2 and back.info()["n_docs"] == 3


def test_hits_table_and_documents(col):
    res = col.search("cats", k=2)
    table = res.to_arrow()
    assert table.column_names == ["query", "rank", "id", "score", "text", "metadata"]
    assert table.column("rank").to_pylist() == [1, 2]
    first = table.column("id")[0].as_py()
    assert table.column("text")[0].as_py() == DOCS[first]
    df = res.to_pandas()
    assert df.loc[0, "metadata"] == {"n": list(DOCS).index(first)}
    got = col.get(["d4", "d1"])
    assert got.column("id").to_pylist() == ["d4", "d1"]
    assert json.loads(got.column("metadata")[1].as_py()) == {"n": 0}


def test_add_accepts_pandas_and_arrow(tmp_path, tiny_encoder):
    c = Collection.create(tmp_path / "c", encoder=tiny_encoder, device="cpu")
    c.add(pd.DataFrame({"id": [1, 2], "text": ["alpha text", "beta text"], "lang": ["en", "de"]}))
    c.add(pa.table({"id": [3], "text": ["gamma text"], "year": [2024]}))
    c.add(pd.Series([4]), pd.Series(["delta text"]), pd.DataFrame({"src": ["x"]}))
    assert len(c) == 4 and c.manifest.id_type == "int"
    meta = [json.loads(m) for m in c.get([1, 3, 4]).column("metadata").to_pylist()]
    assert meta == [{"lang": "en"}, {"year": 2024}, {"src": "x"}]


def test_precomputed_vectors(tmp_path, tiny_encoder):
    c = Collection.create(tmp_path / "c", encoder=tiny_encoder, device="cpu")
    v = unit_rows(3, 32)
    c.add(["a", "b", "c"], ["t a", "t b", "t c"], vectors=v)
    assert c.search(v[1], k=1).doc_ids() == [["b"]]
    with pytest.raises(ValueError, match="dimension 5"):
        c.add(["z"], ["t z"], vectors=np.ones((1, 5), np.float32))


def test_bad_input_is_reported_and_nothing_changes(col, tmp_path):
    commit = col.manifest.commit
    cases = [
        (lambda: col.add(["x"], [""]), ValueError, "empty"),
        (lambda: col.add(["x"], [42]), TypeError, "must be a str"),
        (lambda: col.add(["x", "x"], ["a", "b"]), DuplicateIdError, "duplicates"),
        (lambda: col.add(["d1"], ["again"]), DuplicateIdError, "already in the collection"),
        (lambda: col.add([7], ["int id"]), TypeError, "ids are str"),
        (lambda: col.add(["x", "y"], ["only one"]), ValueError, "2 ids but 1 texts"),
        (lambda: col.add(["x"], ["t"], [{"f": object()}]), TypeError, "not JSON-serialisable"),
        (lambda: col.add(["x"], ["t"], [1]), TypeError, "must be a dict"),
        (lambda: col.delete(["nope"]), UnknownIdError, "nope"),
        (lambda: col.search(np.ones((1, 7), np.float32)), ValueError, "dimension 7"),
        (lambda: col.search("q", k=0), ValueError, "k must be positive"),
        (lambda: col.search("q", mode="bm25"), ValueError, "no bm25 mode"),
        (lambda: col.search("q", mode="splade"), ValueError, "mode must be"),
        (lambda: col.add(pd.DataFrame({"id": [1]})), ValueError, "no 'text' column"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
    assert col.manifest.commit == commit and len(col) == 4


def test_delete_twice_is_an_error(col):
    col.delete(["d1"])
    with pytest.raises(UnknownIdError):
        col.delete(["d1"])


def test_k_beyond_size_pads(col):
    res = col.search("cats", k=10)
    assert (res.ids[0, 4:] == -1).all() and len(res.doc_ids()[0]) == 4


def test_create_refuses_existing_content(tmp_path, tiny_encoder):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    with pytest.raises(FileExistsError):
        Collection.create(tmp_path / "busy", encoder=tiny_encoder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # no temp folders left


def test_open_errors(tmp_path, col):
    with pytest.raises(NotACollectionError, match="does not exist"):
        Collection.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotACollectionError, match="has no manifest.json"):
        Collection.open(tmp_path / "plain")
    manifest = tmp_path / "col" / "manifest.json"
    raw = json.loads(manifest.read_text())
    raw["format_version"] = 99
    manifest.write_text(json.dumps(raw))
    with pytest.raises(FormatVersionError, match="newer granite-index"):
        Collection.open(tmp_path / "col")


@pytest.mark.parametrize("uri", ["s3://bucket/c", "gs://b/c", "az://container/c", "S3://b/c"])
def test_object_storage_uris_are_refused_not_made_local_folders(tmp_path, monkeypatch, uri):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsupportedPathError, match=r"local folders; .*:// URIs are not supported"):
        Collection.create(uri, dense=False, sparse="bm25")
    with pytest.raises(UnsupportedPathError):
        Collection.open(uri)
    with pytest.raises(UnsupportedPathError):
        Collection.exists(uri)
    assert list(tmp_path.iterdir()) == []  # no ./s3:/bucket/c
    with pytest.raises(UnsupportedPathError, match="use the local path itself"):
        Collection.create(f"file://{tmp_path}/c", dense=False, sparse="bm25")
    # a colon elsewhere is an ordinary folder name
    Collection.create(tmp_path / "a:b", dense=False, sparse="bm25")
    assert Collection.exists(tmp_path / "a:b")


def test_failed_commit_rolls_back_in_memory_state(col, monkeypatch):
    from granite_index.collection import store

    def boom(self, manifest):
        raise OSError("disk full")

    before = col.search("cats", k=4)
    monkeypatch.setattr(store.Store, "commit", boom)
    with pytest.raises(OSError, match="disk full"):
        col.add(["new"], ["a new document about cats"])
    monkeypatch.undo()
    assert "new" not in col and len(col) == 4
    np.testing.assert_array_equal(col.search("cats", k=4).ids, before.ids)
    col.add(["new"], ["a new document about cats"])  # the next writer rolls Lance back first
    assert len(col) == 5 and col.get(["new"]).num_rows == 1


def test_failed_create_leaves_nothing(tmp_path, tiny_encoder, monkeypatch):
    from granite_index.index import dense as dense_index

    def boom(self, path, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(dense_index.DenseIndex, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        Collection.create(tmp_path / "c", encoder=tiny_encoder)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- BM25 collections
def test_bm25_only_collection_round_trip(tmp_path):
    from granite_index import SparseIndex

    texts = ["the cat sat on the mat", "dogs chase cats", "a mat of straw", "bananas are yellow"]
    col = Collection.create(tmp_path / "lex", dense=False, sparse="bm25")
    assert col.modes == ["bm25"] and col.manifest.encoder is None
    col.add(["a", "b", "c", "d"], texts, metadata=[{"n": i} for i in range(4)])
    res = col.search(["cat on a mat", "yellow"], k=3)  # default mode: bm25
    ref = SparseIndex.bm25("en")
    ref.add_texts([0, 1, 2, 3], texts)
    want = ref.search(["cat on a mat", "yellow"], k=3)
    np.testing.assert_array_equal(res.ids, want.ids)
    np.testing.assert_array_equal(res.scores, want.scores)
    assert res.doc_ids() == [["a", "c", "b"], ["d"]]
    assert res.to_pandas()["metadata"][0] == {"n": 0}
    col.delete(["a"])
    again = Collection.open(tmp_path / "lex")
    assert again.search("cat mat", k=3).doc_ids() == [["c", "b"]]
    assert again.info()["sparse_index"]["weighting"] == "bm25"
    with pytest.raises(ValueError, match="no dense mode"):
        again.search("cat", mode="dense")
    with pytest.raises(ValueError, match="no dense index"):
        again.vectors(["b"])
    with pytest.raises(TypeError, match="query texts"):
        again.search(np.ones((1, 4), np.float32), mode="bm25")
    with pytest.raises(ValueError, match="empty"):
        again.search("   ")


def test_bm25_old_segments_are_cleaned_up(tmp_path):
    col = Collection.create(tmp_path / "lex", dense=False, sparse="bm25")
    for i in range(6):
        col.add([f"d{i}"], [f"document number {i} words"])
    seg_dir = tmp_path / "lex" / "sparse" / "segments"
    on_disk = {p.name for p in seg_dir.iterdir()}
    # exactly what the last commit names: its postings segments and its chunks of per-document
    # arrays (one per commit, each written once)
    assert on_disk == SparseIndex.segment_names(col.path / "sparse" / f"{col.manifest.commit:08d}")
    assert {s.name for s in col.bm25_index.segments} <= on_disk
    assert len({n for n in on_disk if n.startswith("pos-")}) == 2  # 6 = 4 + 2: binary merges
    assert sorted(p.name for p in (tmp_path / "lex" / "sparse").iterdir()) == [
        f"{col.manifest.commit:08d}",
        "segments",
    ]
    assert [p.name for p in (tmp_path / "lex" / "versions").iterdir()] == [
        f"{col.manifest.commit:08d}.json"
    ]


def test_create_needs_an_index(tmp_path):
    with pytest.raises(ValueError, match="needs an index"):
        Collection.create(tmp_path / "none", dense=False)
    with pytest.raises(ValueError, match="sparse must be"):
        Collection.create(tmp_path / "none", dense=False, sparse="colbert")
    with pytest.raises(ValueError, match="repeats"):
        Collection.create(tmp_path / "none", dense=False, sparse=["bm25", "bm25"])
    assert not (tmp_path / "none").exists()


def test_dense_and_bm25_in_one_collection(tmp_path, tiny_encoder):
    col = Collection.create(tmp_path / "both", encoder=tiny_encoder, sparse="bm25", language="en")
    col.add(["x", "y"], ["granite is a rock", "embedding models encode text"])
    assert col.modes == ["bm25", "dense", "hybrid"]
    assert col.search("rock", k=1, mode="bm25").doc_ids() == [["x"]]
    assert col.search("rock", k=2, mode="dense").ids.shape == (1, 2)


def test_bm25_after_deletes_scores_as_a_collection_of_the_survivors(tmp_path):
    texts = [f"river stone w{i % 5} bird{i % 4} tree w{i % 9}" for i in range(80)]
    ids = [f"d{i}" for i in range(80)]
    a = Collection.create(tmp_path / "a", dense=False, sparse="bm25")
    a.add(ids[:40], texts[:40])
    a.add(ids[40:], texts[40:])
    gone = {f"d{i}" for i in range(0, 80, 3)}
    a.delete(sorted(gone))
    a.upsert(["d1"], ["river w2 bird3"])
    keep = [i for i in range(80) if ids[i] not in gone]
    b = Collection.create(tmp_path / "b", dense=False, sparse="bm25")
    b.add([ids[i] for i in keep], [texts[i] for i in keep])
    b.upsert(["d1"], ["river w2 bird3"])
    for q in ("river w2", "bird3 tree", "w4 w8 stone"):
        ra, rb = a.search(q, k=20), b.search(q, k=20)
        np.testing.assert_allclose(ra.scores, rb.scores, rtol=1e-6)
        assert sorted(map(sorted, ra.doc_ids())) == sorted(map(sorted, rb.doc_ids()))


def test_a_bulk_add_indexes_the_keys_and_deletes_read_through_it(tmp_path, monkeypatch):
    import lance

    from granite_index.collection import writing

    monkeypatch.setattr(writing, "KEY_INDEX_ROWS", 5)
    col = Collection.create(tmp_path / "c", dense=False, sparse="bm25")
    col.add([f"d{i}" for i in range(8)], [f"word{i} shared text" for i in range(8)])
    indices = lance.dataset(tmp_path / "c" / "docs.lance").list_indices()
    assert [i["fields"] for i in indices] == [["_key"]]
    col.add(["x"], ["shared"])  # a small add: not indexed until the next pass, still found
    col.delete(["d3", "x"])
    assert len(col) == 7 and col.search("word3", k=3).doc_ids() == [[]]
    again = Collection.open(tmp_path / "c")
    assert again.get(["d4"]).column("text")[0].as_py() == "word4 shared text"
