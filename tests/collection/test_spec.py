"""Collections made from leg specs and injected encoders (hashing encoders: no model, no torch),
the one ingest loop, and the deprecated names."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from granite_index import Bm25Spec, Collection, DenseSpec, SpladeSpec
from granite_index.collection import Batch, index_corpus, ingest
from granite_index.search import LEG_NAMES
from tests.hashing import DOCS, QUERIES, HashingEncoder, HashingSparseEncoder

IDS = [f"d{i}" for i in range(len(DOCS))]


def _three_legs(path, **kw):
    specs = [
        DenseSpec(encoder=HashingEncoder()),
        Bm25Spec("en"),
        SpladeSpec(encoder=HashingSparseEncoder()),
    ]
    return Collection.create(path, specs, **kw)


def test_specs_equal_the_keyword_shorthand(tmp_path):
    a = _three_legs(tmp_path / "a")
    b = Collection.create(
        tmp_path / "b",
        encoder=HashingEncoder(),
        sparse=["bm25", "splade"],
        sparse_encoder=HashingSparseEncoder(),
    )
    for col in (a, b):
        col.add(IDS, DOCS)
    assert a.modes == b.modes == [*LEG_NAMES, "hybrid"]
    ma, mb = a.manifest, b.manifest
    assert (ma.encoder, ma.dense_index, ma.sparse_index, ma.splade_index) == (
        mb.encoder,
        mb.dense_index,
        mb.sparse_index,
        mb.splade_index,
    )
    for mode in (*LEG_NAMES, "hybrid"):
        ra, rb = a.search(QUERIES, k=4, mode=mode), b.search(QUERIES, k=4, mode=mode)
        np.testing.assert_array_equal(ra.ids, rb.ids)
        np.testing.assert_array_equal(ra.scores, rb.scores)


def test_bm25_spec_parameters_reach_the_index(tmp_path):
    col = Collection.create(
        tmp_path / "c", [Bm25Spec("en", k1=0.9, b=0.4, analyzer={"stem": False})]
    )
    assert (col.bm25_index.k1, col.bm25_index.b) == (0.9, 0.4)
    assert col.manifest.sparse_index["analyzer"]["stem"] is False


def test_spec_errors(tmp_path):
    with pytest.raises(TypeError, match="legs or the shorthand options, not both"):
        Collection.create(tmp_path / "a", [Bm25Spec()], dense=False)
    with pytest.raises(ValueError, match="needs an index"):
        Collection.create(tmp_path / "b", [])
    with pytest.raises(ValueError, match="repeat a kind"):
        Collection.create(tmp_path / "c", [Bm25Spec(), Bm25Spec("de")])
    with pytest.raises(TypeError, match="list of specs"):
        Collection.create(tmp_path / "d", Bm25Spec())
    with pytest.raises(TypeError, match="give DenseSpec"):
        Collection.create(tmp_path / "e", ["bm25"])
    with pytest.raises(TypeError, match="unexpected keyword"):
        Collection.create(tmp_path / "f", dense=False, sparse="bm25", langauge="en")
    assert not any((tmp_path / n).exists() for n in "abcdef")


def test_open_with_injected_encoders_searches_as_before(tmp_path):
    col = _three_legs(tmp_path / "c")
    col.add(IDS, DOCS)
    before = col.search(QUERIES, k=5, mode="hybrid")
    again = Collection.open(
        tmp_path / "c", encoder=HashingEncoder(), sparse_encoder=HashingSparseEncoder()
    )
    after = again.search(QUERIES, k=5, mode="hybrid")
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_array_equal(before.scores, after.scores)
    assert after.doc_ids() == before.doc_ids()
    assert Collection.exists(tmp_path / "c") and not Collection.exists(tmp_path / "nope")
    with pytest.raises(ValueError, match="was built with 'hashing'"):
        Collection.open(tmp_path / "c", encoder=HashingSparseEncoder())
    lexical = Collection.create(tmp_path / "lex", dense=False, sparse="bm25")
    with pytest.raises(ValueError, match="no leg that uses one"):
        Collection.open(lexical.path, encoder=HashingEncoder())


def test_legs_property_and_renamed_indexes(tmp_path):
    col = _three_legs(tmp_path / "c")
    col.add(IDS, DOCS)
    assert list(col.legs) == list(LEG_NAMES)
    assert col.legs["bm25"].index is col.bm25_index
    assert col.legs["sparse"].index is col.splade_index
    assert col.legs["dense"].index is col.dense_index
    with pytest.warns(DeprecationWarning, match="renamed bm25_index"):
        assert col.sparse_index is col.bm25_index


def test_index_corpus_resumes_and_counts_progress(tmp_path):
    col = Collection.create(tmp_path / "c", encoder=HashingEncoder(), sparse="bm25")
    assert index_corpus(col, IDS[:5], DOCS[:5], chunk_size=2, show_progress=False) == 5
    commit = col.manifest.commit
    assert index_corpus(col, IDS, DOCS, chunk_size=4, show_progress=False) == len(DOCS) - 5
    assert len(col) == len(DOCS)
    assert col.manifest.commit == commit + 2  # 7 new documents in chunks of 4: two commits
    assert index_corpus(col, IDS, DOCS, show_progress=False) == 0


def test_ingest_takes_precomputed_vectors_and_skips_present_ids(tmp_path):
    enc, spl = HashingEncoder(), HashingSparseEncoder()
    col = Collection.create(tmp_path / "c", [DenseSpec(encoder=enc), SpladeSpec(encoder=spl)])
    col.add(IDS[:2], DOCS[:2])
    batch = Batch(
        IDS, DOCS, None, enc.encode_documents(DOCS), spl.encode_documents(DOCS)
    )  # the first two are already in
    assert ingest(col, [batch], total=len(IDS), show_progress=False) == len(DOCS) - 2
    np.testing.assert_allclose(col.vectors(IDS), enc.encode_documents(DOCS), atol=1e-6)
    ref = Collection.create(tmp_path / "r", [DenseSpec(encoder=enc), SpladeSpec(encoder=spl)])
    ref.add(IDS, DOCS)
    for mode in ("dense", "sparse"):
        np.testing.assert_array_equal(
            col.search(QUERIES, k=3, mode=mode).doc_ids(),
            ref.search(QUERIES, k=3, mode=mode).doc_ids(),
        )


def test_batch_take_keeps_every_column_aligned():
    enc, spl = HashingEncoder(), HashingSparseEncoder()
    meta = [{"n": i} for i in range(len(DOCS))]
    batch = Batch(IDS, DOCS, meta, enc.encode_documents(DOCS), spl.encode_documents(DOCS))
    part = batch.take([5, 1])
    assert part.ids == [IDS[5], IDS[1]] and part.metadata == [meta[5], meta[1]]
    np.testing.assert_array_equal(part.vectors, batch.vectors[[5, 1]])
    want = spl.encode_documents([DOCS[5], DOCS[1]])
    for name in ("indptr", "indices", "values"):
        np.testing.assert_array_equal(getattr(part.sparse_vectors, name), getattr(want, name))


def test_a_collection_runs_without_torch(tmp_path):
    code = (
        "import sys\n"
        "from granite_index import Bm25Spec, Collection, DenseSpec\n"
        "from tests.hashing import DOCS, QUERIES, HashingEncoder\n"
        f"col = Collection.create({str(tmp_path / 'c')!r}, "
        "[DenseSpec(encoder=HashingEncoder()), Bm25Spec()])\n"
        "col.add([str(i) for i in range(len(DOCS))], DOCS)\n"
        "for mode in ('bm25', 'dense', 'hybrid'):\n"
        "    assert (col.search(QUERIES, k=3, mode=mode).ids >= 0).all()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(_repo()))


def _repo():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
