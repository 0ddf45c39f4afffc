"""Query input of the sparse index: CSR term weights checked once, and queries prepared by one
index (:meth:`SparseIndex.prepare`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class PreparedQueries(NamedTuple):
    """Queries analysed and weighted by one index (:meth:`SparseIndex.prepare`): CSR of term ids
    (uint32) and weights (float32) in the canonical scoring order. Valid until the index changes."""

    ptr: np.ndarray
    terms: np.ndarray
    weights: np.ndarray
    index_id: int
    version: int
    #: BM25: the average document length the documents are scored with (None: the index's own)
    avgdl: float | None = None


class Bm25Stats(NamedTuple):
    """Corpus-wide BM25 statistics, for scoring one part of a corpus (a shard) exactly as the
    whole corpus would score it: live documents, their total length, and the live document
    frequency of index terms (analysed term strings; a term absent counts 0). Gather them with
    :meth:`SparseIndex.bm25_stats` on every part and :meth:`merge`."""

    n_docs: int
    total_len: float
    df: dict[str, int]

    @property
    def avgdl(self) -> float:
        return self.total_len / self.n_docs if self.n_docs else 0.0

    @classmethod
    def merge(cls, parts: list[Bm25Stats]) -> Bm25Stats:
        """The statistics of the union of disjoint parts."""
        df: dict[str, int] = {}
        for part in parts:
            for term, n in part.df.items():
                df[term] = df.get(term, 0) + n
        n = sum(p.n_docs for p in parts)
        return cls(n, float(sum(p.total_len for p in parts)), df)


def query_csr(queries: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A scipy.sparse matrix or an ``(indptr, indices, values)`` tuple → checked CSR arrays:
    indptr int64, term ids int64, weights float32 (finite, >= 0)."""
    if hasattr(queries, "tocsr"):  # scipy.sparse
        m = queries.tocsr()
        m.sum_duplicates()
        queries = (m.indptr, m.indices, m.data)
    if isinstance(queries, tuple) and len(queries) == 3:
        indptr, indices, values = (np.asarray(a).ravel() for a in queries)
        indptr = indptr.astype(np.int64)
        if len(indptr) < 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            raise ValueError("query indptr must start at 0 and be non-decreasing")
        if len(indices) != indptr[-1] or len(values) != indptr[-1]:
            raise ValueError("query indices / values must have indptr[-1] entries")
        if len(indices) and indices.min() < 0:
            raise ValueError("query term ids must be >= 0")
        values = values.astype(np.float32)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("query values must be finite and >= 0")
        return indptr, indices.astype(np.int64), values
    raise TypeError(
        "queries must be a str, a list of str (with an analyzer), a scipy.sparse matrix or "
        "an (indptr, indices, values) tuple"
    )


def ptr_from_mask(q_ptr: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """CSR indptr after dropping entries where ``keep`` is False."""
    kept = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    return kept[q_ptr]
