""":class:`Batch`: documents that go into a collection together (one commit of the ingest loop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from granite_index.types import SparseVectors


@dataclass(frozen=True)
class Batch:
    """Documents to add together: ids, texts, optional metadata and precomputed vectors.

    Attributes
    ----------
    ids : list of int or str
    texts : list of str
    metadata : list of dict or None, optional
    vectors : numpy.ndarray of float32, shape (n, dim), optional
        Dense vectors from the collection's encoder.
    sparse_vectors : SparseVectors, optional
        SPLADE rows from the collection's sparse encoder.
    """

    ids: list[Any]
    texts: list[str]
    metadata: list[dict | None] | None = None
    vectors: np.ndarray | None = None
    sparse_vectors: SparseVectors | None = None

    def take(self, rows: Sequence[int]) -> Batch:
        """The documents at positions ``rows``, in that order."""
        rows = list(rows)
        return Batch(
            [self.ids[i] for i in rows],
            [self.texts[i] for i in rows],
            None if self.metadata is None else [self.metadata[i] for i in rows],
            None if self.vectors is None else self.vectors[rows],
            None if self.sparse_vectors is None else self.sparse_vectors.take(rows),
        )
