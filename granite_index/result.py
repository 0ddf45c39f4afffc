"""The one result type every retriever returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from granite_index.collection import Collection


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
    _collection: Collection | None = field(default=None, repr=False, compare=False)

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

    def _source(self) -> Collection:
        if self._collection is None:
            raise ValueError("this result does not come from a Collection, so it has no documents")
        return self._collection

    def doc_ids(self) -> list[list[Any]]:
        """The caller's document ids per query (padding dropped)."""
        return self._source()._external_ids(self.ids)

    def to_arrow(self, *, with_documents: bool = True) -> pa.Table:
        """One row per hit: ``query``, ``rank``, ``id``, ``score`` (+ ``text``, ``metadata`` as JSON text)."""
        return self._source()._hits_table(self, with_documents=with_documents)

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
