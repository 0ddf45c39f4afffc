"""optimize(): one commit that compacts Lance fragments, sparse segments and dead vectors, then
removes history no retained commit needs; results are unchanged."""

from __future__ import annotations

import lance
import numpy as np

from granite_index import Bm25Spec, Collection, DenseSpec, SpladeSpec
from granite_index.collection import store, writing
from tests.hashing import DOCS, QUERIES, HashingEncoder, HashingSparseEncoder


def _three(path):
    specs = [
        DenseSpec(encoder=HashingEncoder()),
        Bm25Spec(),
        SpladeSpec(encoder=HashingSparseEncoder()),
    ]
    return Collection.create(path, specs)


def _docs(col):
    return lance.dataset(col.path / "docs.lance")


def _results(col):
    return {
        mode: col.search(QUERIES, k=5, mode=mode) for mode in ("bm25", "sparse", "dense", "hybrid")
    }


def test_optimize_compacts_and_keeps_every_result(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "READER_GRACE_SECONDS", 0.0)  # no reader: history goes at once
    col = _three(tmp_path / "c")
    for i, text in enumerate(DOCS):
        col.add([f"d{i}"], [text])
    col.delete(["d3", "d7"])
    before = _results(col)
    assert len(_docs(col).get_fragments()) > 5 and col.dense_index.n_stored > len(col.dense_index)
    (tmp_path / "c" / "dense" / ".tmp-leftover").mkdir()
    (tmp_path / "c" / ".manifest.json.tmp").write_text("{}")
    col.optimize()
    for c in (
        col,
        Collection.open(
            tmp_path / "c", encoder=HashingEncoder(), sparse_encoder=HashingSparseEncoder()
        ),
    ):
        after = _results(c)
        for mode in before:
            assert after[mode].doc_ids() == before[mode].doc_ids(), mode
            np.testing.assert_allclose(after[mode].scores, before[mode].scores, rtol=1e-6)
        assert len(c) == len(DOCS) - 2
    assert len(_docs(col).get_fragments()) == 1
    assert len(col.bm25_index.segments) == len(col.splade_index.segments) == 1
    assert col.dense_index.n_stored == len(col.dense_index)
    assert len(_docs(col).versions()) <= 2  # history older than the newest commit is gone
    assert not (tmp_path / "c" / "dense" / ".tmp-leftover").exists()
    assert not (tmp_path / "c" / ".manifest.json.tmp").exists()


def test_a_reader_of_the_commit_before_optimize_still_reads_its_documents(tmp_path):
    col = Collection.create(tmp_path / "c", dense=False, sparse="bm25")
    for i in range(6):
        col.add([f"d{i}"], [f"text number {i}"])
    reader = Collection.open(tmp_path / "c")
    col.delete(["d0"])
    col.optimize()  # compacts the documents; the reader's Lance version stays for the grace
    assert reader.get(["d0", "d5"]).column("text").to_pylist() == ["text number 0", "text number 5"]
    assert reader.search("text", k=6).to_pandas().shape[0] == 6


def test_retained_commits_survive_optimize(tmp_path):
    col = Collection.create(tmp_path / "c", dense=False, sparse="bm25")
    col.set_retention(keep_commits=3)
    for i in range(5):
        col.add([f"d{i}"], [f"text number {i}"])
    col.optimize()
    old = [v["commit"] for v in col.versions()][0]
    back = Collection.open(tmp_path / "c", version=old)
    assert len(back) == back.manifest.n_docs and back.search("text", k=10).ids.shape == (1, 10)


def test_many_small_writes_optimize_themselves(tmp_path, monkeypatch):
    monkeypatch.setattr(writing, "AUTO_OPTIMIZE_WRITES", 5)
    col = Collection.create(tmp_path / "c", dense=False, sparse="bm25")
    for i in range(7):
        col.add([f"d{i}"], [f"text number {i}"])
    assert col.manifest.extra["writes_since_optimize"] == 2
    assert len(_docs(col).get_fragments()) == 3  # one compacted, then two small ones
    assert sorted(col.search("text", k=10).doc_ids()[0]) == [f"d{i}" for i in range(7)]
