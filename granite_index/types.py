"""The types every layer shares, free of torch: :class:`SearchResult`, the one result type every
retriever returns, and :class:`SparseVectors`, CSR term-weight rows (SPLADE output, sparse
index input)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class DocumentSource(Protocol):
    """What a :class:`SearchResult` asks of the store its ids come from (a
    :class:`~granite_index.Collection` is one)."""

    def ids_of(self, keys: np.ndarray) -> list[list[Any]]:
        """The caller's document ids of internal keys int64 (n_queries, k), padding dropped."""
        ...

    def hits_table(self, result: SearchResult, *, with_documents: bool) -> pa.Table:
        """One row per hit of ``result`` (see :meth:`SearchResult.to_arrow`)."""
        ...


@dataclass(frozen=True)
class SearchResult:
    """Top-k hits for a batch of queries, best first.

    Attributes
    ----------
    ids : numpy.ndarray of int64, shape (n_queries, k)
        Hit ids, padded with ``-1`` where fewer than ``k`` hits exist. For a
        :class:`~granite_index.Collection` these are its internal document keys;
        use :meth:`doc_ids` or :meth:`to_arrow` for your own ids and the documents.
    scores : numpy.ndarray of float32, shape (n_queries, k)
        Scores matching ``ids`` (``-inf`` where padded).
    """

    ids: np.ndarray
    scores: np.ndarray
    source: DocumentSource | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.ids.shape != self.scores.shape or self.ids.ndim != 2:
            raise ValueError(
                f"ids and scores must both be (n_queries, k); got {self.ids.shape} and {self.scores.shape}"
            )

    @property
    def n_queries(self) -> int:
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    def _source(self) -> DocumentSource:
        if self.source is None:
            raise ValueError("this result does not come from a Collection, so it has no documents")
        return self.source

    def doc_ids(self) -> list[list[Any]]:
        """The caller's document ids per query (padding dropped)."""
        return self._source().ids_of(self.ids)

    def to_arrow(self, *, with_documents: bool = True) -> pa.Table:
        """One row per hit: ``query``, ``rank``, ``id``, ``score`` (+ ``text``, ``metadata`` as JSON text)."""
        return self._source().hits_table(self, with_documents=with_documents)

    def to_pandas(self, *, with_documents: bool = True) -> pd.DataFrame:
        """As :meth:`to_arrow`, as a pandas DataFrame, with ``metadata`` decoded to dicts."""
        table = self.to_arrow(with_documents=with_documents)
        df = table.to_pandas()
        if "metadata" in table.column_names:
            df["metadata"] = [
                None if m is None else json.loads(m) for m in table.column("metadata").to_pylist()
            ]
        return df


def empty_result(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Preallocated ``(ids, scores)`` padding: ids ``-1``, scores ``-inf``."""
    ids = np.full((n_queries, k), -1, dtype=np.int64)
    scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    return ids, scores


@dataclass(frozen=True)
class SparseVectors:
    """Sparse term-weight vectors of ``n`` texts in CSR form.

    Row ``i`` holds term ids ``indices[indptr[i]:indptr[i + 1]]`` (ascending, unique) and their
    weights ``values[indptr[i]:indptr[i + 1]]`` (> 0). Pass ``.tocsr()`` or the three arrays to
    :meth:`granite_index.SparseIndex.add` / ``search``.

    Attributes
    ----------
    indptr : numpy.ndarray of int64, shape (n + 1,)
        Row offsets, ``indptr[0] == 0``.
    indices : numpy.ndarray of uint32, shape (nnz,)
        Term ids (vocabulary ids of the model's tokenizer), sorted ascending within each row.
    values : numpy.ndarray of float32, shape (nnz,)
        Term weights.
    vocab_size : int
        Number of columns (the model's vocabulary size).
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    vocab_size: int

    def __post_init__(self) -> None:
        for name, dtype in (("indptr", np.int64), ("indices", np.uint32), ("values", np.float32)):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != 1:
                raise TypeError(f"{name} must be a one-dimensional {np.dtype(dtype)} numpy array")
        if isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, (int, np.integer)):
            raise TypeError(f"vocab_size must be an int; got {type(self.vocab_size).__name__}")
        if len(self.indptr) < 1 or self.indptr[0] != 0:
            raise ValueError("indptr must have n + 1 >= 1 entries and start at 0")
        nnz = int(self.indptr[-1])
        if len(self.indices) != nnz or len(self.values) != nnz:
            raise ValueError(
                f"indices ({len(self.indices)}) and values ({len(self.values)}) must have "
                f"indptr[-1] = {nnz} entries"
            )

    @classmethod
    def empty(cls, vocab_size: int) -> SparseVectors:
        """Zero rows."""
        return cls(
            np.zeros(1, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.float32), vocab_size
        )

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        """Stored entries over all rows."""
        return int(self.indptr[-1])

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i`` as (term ids uint32 (m,), weights float32 (m,)), term ids ascending."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"row must be an int; got {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise ValueError(f"row {i} is out of range for {n} rows")
        i = int(i) % n
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.indices[lo:hi], self.values[lo:hi]

    def take(self, rows: Any) -> SparseVectors:
        """The rows ``rows`` (a sequence of row numbers), in that order, as new vectors."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise ValueError(f"rows must be in [0, {len(self)}); got {rows.min()}..{rows.max()}")
        lo, hi = self.indptr[rows], self.indptr[rows + 1]
        counts = hi - lo
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        at = np.repeat(lo - indptr[:-1], counts) + np.arange(indptr[-1], dtype=np.int64)
        return SparseVectors(indptr, self.indices[at], self.values[at], self.vocab_size)

    def tocsr(self) -> Any:
        """A ``scipy.sparse.csr_matrix`` of shape (n, vocab_size), float32 (shares the arrays)."""
        from scipy.sparse import csr_matrix

        return csr_matrix(
            (self.values, self.indices, self.indptr), shape=(len(self), self.vocab_size)
        )
