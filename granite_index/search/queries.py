"""Queries encoded once for every leg, to search several times or to time search apart from
the encoders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from granite_index.search.legs import Leg
from granite_index.types import SparseVectors
from granite_index.validate import check_queries, is_text_list

_FIELDS = {"bm25": "texts", "sparse": "sparse", "dense": "dense"}


@dataclass(frozen=True)
class EncodedQueries:
    """Queries prepared once for every leg: texts for BM25, SPLADE vectors, dense vectors.

    Make one with :meth:`Collection.encode_queries` (or :func:`encode_queries`).

    Attributes
    ----------
    n : int
        Number of queries.
    texts : list of str, optional
        The BM25 leg's input.
    sparse : SparseVectors, optional
        The learned-sparse leg's input, one row per query.
    dense : numpy.ndarray of float32, shape (n, dim), optional
        The dense leg's input.
    """

    n: int
    texts: list[str] | None = None
    sparse: SparseVectors | None = None
    dense: np.ndarray | None = None

    def get(self, leg: str) -> Any:
        """The input of leg ``leg``; ValueError if these queries were not encoded for it."""
        if leg not in _FIELDS:
            raise ValueError(f"unknown leg {leg!r}; legs are {tuple(_FIELDS)}")
        value = getattr(self, _FIELDS[leg])
        if value is None:
            raise ValueError(f"these queries were not encoded for the {leg!r} leg")
        return value

    def take(self, rows: Sequence[int] | np.ndarray) -> EncodedQueries:
        """The queries ``rows``, every leg's input sliced alike."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        return EncodedQueries(
            n=len(rows),
            texts=None if self.texts is None else [self.texts[i] for i in rows.tolist()],
            sparse=None if self.sparse is None else self.sparse.take(rows),
            dense=None if self.dense is None else self.dense[rows],
        )


def encode_queries(queries: Any, legs: Mapping[str, Leg]) -> EncodedQueries:
    """Query texts → :class:`EncodedQueries` for each of ``legs`` (name → leg); an
    :class:`EncodedQueries` passes through."""
    if isinstance(queries, EncodedQueries):
        return queries
    texts = check_queries(queries)
    for name in legs:
        if name not in _FIELDS:
            raise ValueError(f"unknown leg {name!r}; legs are {tuple(_FIELDS)}")
    encoded = {_FIELDS[name]: leg.encode_queries(texts) for name, leg in legs.items()}
    return EncodedQueries(n=len(texts), **encoded)


def as_encoded(queries: Any, legs: Mapping[str, Leg]) -> EncodedQueries:
    """``queries`` for a text search over ``legs``: encoded as needed; vectors are refused."""
    if isinstance(queries, EncodedQueries):
        return queries
    if isinstance(queries, np.ndarray) or not (isinstance(queries, str) or is_text_list(queries)):
        raise TypeError(
            f"{'/'.join(legs)} search takes query texts (a str or a list of str) or "
            "encode_queries() output; only dense search takes vectors"
        )
    return encode_queries(queries, legs)
