"""The bundled SPLADE-tiny against sentence-transformers' SparseEncoder on real SciFact text."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from granite_index.encoders.hf import cpu_has_bf16
from granite_index.encoders.resolve import DEFAULT_SPARSE_MODEL
from granite_index.encoders.sparse import SparseEncoder
from tests.conftest import BEIR

TOP = 20  # terms compared by rank


def _read(name: str, n: int) -> list[dict]:
    path = BEIR / "scifact" / name
    if not path.is_file():
        pytest.fail(f"shared data missing: {path}")
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in itertools.islice(fh, n)]


@pytest.fixture(scope="module")
def scifact_texts() -> dict[str, list[str]]:
    docs = [f"{d['title']} {d['text']}".strip() for d in _read("corpus.jsonl", 20)]
    return {"documents": docs, "queries": [q["text"] for q in _read("queries.jsonl", 10)]}


@pytest.fixture(scope="module")
def st_vectors(scifact_texts) -> dict[str, np.ndarray]:
    """sentence-transformers' weights, special tokens dropped (ours never returns them)."""
    from sentence_transformers import SparseEncoder as STSparseEncoder

    enc = SparseEncoder(screen=False)
    st = STSparseEncoder(str(enc.source.path), device="cpu")
    out = {
        "documents": st.encode_document(scifact_texts["documents"], convert_to_tensor=True),
        "queries": st.encode_query(scifact_texts["queries"], convert_to_tensor=True),
    }
    special = enc.tokenizer.all_special_ids
    out = {k: v.to_dense().numpy() for k, v in out.items()}
    for v in out.values():
        v[:, special] = 0
    return out


@pytest.mark.parametrize(
    "screen",
    [False, pytest.param(True, marks=pytest.mark.skipif(not cpu_has_bf16(), reason="no bf16"))],
)
def test_bundled_matches_sentence_transformers(scifact_texts, st_vectors, screen):
    enc = SparseEncoder(screen=screen)
    assert enc.source.name == DEFAULT_SPARSE_MODEL and enc.vocab_size == 30522
    assert enc.config.max_length == 512
    ours = {
        "documents": enc.encode_documents(scifact_texts["documents"]).tocsr().toarray(),
        "queries": enc.encode_queries(scifact_texts["queries"]).tocsr().toarray(),
    }
    for kind, theirs in st_vectors.items():
        mine = ours[kind]
        assert ((mine > 0) == (theirs > 0)).all(), kind  # the same terms
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=2e-5, err_msg=kind)
        for a, b in zip(mine, theirs):  # the same top terms, in the same order
            assert (
                np.argsort(-a, kind="stable")[:TOP] == np.argsort(-b, kind="stable")[:TOP]
            ).all()


def test_splade_tiny_is_sparse_and_decodes(scifact_texts):
    enc = SparseEncoder()
    docs = enc.encode_documents(scifact_texts["documents"])
    queries = enc.encode_queries(scifact_texts["queries"])
    assert 100 < np.diff(docs.indptr).mean() < 1000
    assert np.diff(queries.indptr).mean() < np.diff(docs.indptr).mean()
    words = [t for t, _ in enc.decode(queries, 0)[:10]]  # "0-dimensional biomaterials lack ..."
    assert {"bio", "lack", "dimensions"} <= set(words)
