"""Tiny deterministic encoders for tests that need no model and no torch.

:class:`HashingEncoder` is a dense encoder (word counts hashed into ``dim`` buckets, L2
normalised); :class:`HashingSparseEncoder` a learned-sparse stand-in (hashed term ids, weight
``1 + log(count)``). Both follow the encoders' interface as a collection uses it: ``config``
(with ``to_dict``), ``dim`` / ``vocab_size``, ``encode_documents`` (which advances a progress
bar it is given) and ``encode_queries``.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from granite_index.types import SparseVectors

_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _bucket(word: str, n: int) -> int:
    return zlib.crc32(word.encode("utf-8")) % n


@dataclass(frozen=True)
class HashingConfig:
    model: str
    revision: str
    dim: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _advance(show_progress: Any, n: int) -> None:
    if hasattr(show_progress, "update"):
        show_progress.update(n)


class HashingEncoder:
    """Dense: hashed word counts, L2 normalised, float32 (n, dim)."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.config = HashingConfig("hashing", "test", dim)

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for word, c in Counter(_words(text)).items():
                out[i, _bucket(word, self.dim)] += c
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def encode_documents(self, texts: list[str], show_progress: Any = False) -> np.ndarray:
        out = self._encode(list(texts))
        _advance(show_progress, len(texts))
        return out

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts))


class HashingSparseEncoder:
    """Learned-sparse stand-in: term id = hashed word, weight = 1 + log(count)."""

    def __init__(self, vocab_size: int = 4096) -> None:
        self.vocab_size = vocab_size
        self.config = HashingConfig("hashing-sparse", "test", vocab_size)

    def _encode(self, texts: list[str]) -> SparseVectors:
        indptr, indices, values = [0], [], []
        for text in texts:
            counts = Counter(_bucket(w, self.vocab_size) for w in _words(text))
            for term in sorted(counts):
                indices.append(term)
                values.append(1.0 + np.log(counts[term]))
            indptr.append(len(indices))
        return SparseVectors(
            np.asarray(indptr, np.int64),
            np.asarray(indices, np.uint32),
            np.asarray(values, np.float32),
            self.vocab_size,
        )

    def encode_documents(self, texts: list[str], show_progress: Any = False) -> SparseVectors:
        out = self._encode(list(texts))
        _advance(show_progress, len(texts))
        return out

    def encode_queries(self, texts: list[str]) -> SparseVectors:
        return self._encode(list(texts))


#: a small corpus with topical overlap, so the legs disagree in interesting ways
DOCS = [
    "BM25 ranks documents by term frequency and inverse document frequency",
    "dense retrieval encodes queries and documents as vectors",
    "FAISS searches dense vectors with inner product",
    "SPLADE learns sparse term weights from a masked language model",
    "hybrid search fuses lexical and dense scores",
    "reciprocal rank fusion combines ranked lists",
    "an inverted index maps terms to postings lists",
    "vectors are normalised so inner product equals cosine similarity",
    "term weights from SPLADE go into an inverted index",
    "documents and queries share one vocabulary of terms",
    "ranking functions score documents for a query",
    "the collection stores documents vectors and indexes in one folder",
]
QUERIES = [
    "how are documents ranked",
    "dense vectors inner product",
    "sparse term weights inverted index",
    "fusion of ranked lists",
]
