"""The ``Leg`` protocol and the engine's three legs: BM25, learned sparse (SPLADE), dense.

A leg is one retriever a hybrid search can fuse. It encodes query texts into its own input, searches
to a depth, and scores documents it did not return (so fusion looks up true scores instead of
treating them as missing). The legs hold an index and a query-encoding function; they know nothing
of documents or storage, so a collection, a shard or a LanceDB table can supply them alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, runtime_checkable

import numpy as np

from granite_index.index.dense import DenseIndex
from granite_index.index.sparse import SparseIndex
from granite_index.types import SearchResult, SparseVectors

#: the engine's legs, in the order a collection lists them; each is also a search mode
LEG_NAMES = ("bm25", "sparse", "dense")
#: search modes: one leg, or the fusion of several
MODES = (*LEG_NAMES, "hybrid")
#: candidates taken from each leg per query for fusion, at least (more when k is larger)
DEFAULT_DEPTH = 100
#: largest (n_queries x n_documents) score matrix the dense leg computes in one scan
SCAN_MAX = 1 << 22

Lookup = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class LegHits:
    """One leg's own top ``depth`` for a query batch, and the lookup of its other scores.

    Attributes
    ----------
    ids : numpy.ndarray of int64, shape (n_queries, depth)
        Best first, ``-1`` padded.
    scores : numpy.ndarray of float32, shape (n_queries, depth)
        ``-inf`` where padded.
    lookup : callable
        ``lookup(ids int64 (n_queries, m)) -> float32 (n_queries, m)``: the leg's true score of
        any id, NaN for ``-1`` and for ids it does not hold.
    """

    ids: np.ndarray
    scores: np.ndarray
    lookup: Lookup


@runtime_checkable
class Leg(Protocol):
    """What hybrid search needs of a retriever."""

    name: str

    def encode_queries(self, texts: list[str]) -> Any:
        """Query texts → this leg's query input (texts, sparse vectors, dense vectors...)."""
        ...

    def search(
        self, queries: Any, k: int, *, threads: int | None = None, allow: Any = None
    ) -> SearchResult:
        """Top ``k`` of encoded ``queries``; with ``allow`` (int64 ids), among those ids only."""
        ...

    def retrieve(
        self, queries: Any, depth: int, *, threads: int | None = None, allow: Any = None
    ) -> LegHits:
        """Top ``depth`` of encoded ``queries`` (among ``allow`` when given) with the lookup of
        any other id's score."""
        ...

    def score(self, queries: Any, ids: np.ndarray) -> np.ndarray:
        """Scores of given ids int64 (n_queries, m) → float32 (n_queries, m), NaN where unknown."""
        ...


class _SparseLeg:
    """A leg over a :class:`SparseIndex`: analyse and weight queries once for search and lookup."""

    name: str

    def __init__(self, index: SparseIndex, params: dict[str, Any] | None = None) -> None:
        self.index = index
        self.params = dict(params or {})

    def _input(self, queries: Any) -> Any:
        return queries

    def search(
        self, queries: Any, k: int, *, threads: int | None = None, allow: Any = None
    ) -> SearchResult:
        return self.index.search(
            self._input(queries), k, threads=threads, allow=allow, **self.params
        )

    def retrieve(
        self, queries: Any, depth: int, *, threads: int | None = None, allow: Any = None
    ) -> LegHits:
        res, lookup = self.index.retrieve(
            self._input(queries), depth, threads=threads, allow=allow, **self.params
        )
        return LegHits(res.ids, res.scores, lookup)

    def score(self, queries: Any, ids: np.ndarray) -> np.ndarray:
        return self.index.score(self._input(queries), ids)


class Bm25Leg(_SparseLeg):
    """BM25 over a text-analysing :class:`SparseIndex`; its query input is the texts."""

    name = "bm25"

    def encode_queries(self, texts: list[str]) -> list[str]:
        return list(texts)


class SpladeLeg(_SparseLeg):
    """Learned-sparse impacts; ``encode`` maps query texts to :class:`SparseVectors`."""

    name = "sparse"

    def __init__(
        self,
        index: SparseIndex,
        encode: Callable[[list[str]], SparseVectors],
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(index, params)
        self._encode = encode

    def with_params(self, **params: Any) -> SpladeLeg:
        """This leg with search options for :meth:`SparseIndex.search` (``share``: approximate
        search from the query's heaviest terms); None values are left out."""
        given = {k: v for k, v in params.items() if v is not None}
        return self if not given else SpladeLeg(self.index, self._encode, {**self.params, **given})

    def encode_queries(self, texts: list[str]) -> SparseVectors:
        return self._encode(texts)

    def _input(self, queries: Any) -> Any:
        if isinstance(queries, SparseVectors):
            return (queries.indptr, queries.indices.astype(np.int64), queries.values)
        return queries


class DenseLeg:
    """A :class:`DenseIndex`; ``encode`` maps query texts to float32 (n, dim) vectors."""

    name = "dense"

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def __init__(
        self,
        index: DenseIndex,
        encode: Callable[[list[str]], np.ndarray],
        params: dict[str, Any] | None = None,
    ) -> None:
        self.index = index
        self._encode = encode
        self.params = dict(params or {})

    def with_params(self, **params: Any) -> DenseLeg:
        """This leg with search options for :meth:`DenseIndex.search` (``exact``, ``nprobe``,
        ``ef_search``, ``rescore``); None values are left out."""
        given = {k: v for k, v in params.items() if v is not None}
        return self if not given else DenseLeg(self.index, self._encode, {**self.params, **given})

    def search(
        self, queries: Any, k: int, *, threads: int | None = None, allow: Any = None
    ) -> SearchResult:
        return self.index.search(queries, k, allow=allow, **self.params)

    def retrieve(
        self, queries: Any, depth: int, *, threads: int | None = None, allow: Any = None
    ) -> LegHits:
        # one matrix product gives the list and every lookup where the index allows it
        if allow is None and not self.params:
            scanned = self.index.scan_search(queries, depth, max_cells=SCAN_MAX)
            if scanned is not None:
                return LegHits(*scanned)
        res = self.index.search(queries, depth, allow=allow, **self.params)
        return LegHits(res.ids, res.scores, partial(self.index.score, queries))

    def score(self, queries: Any, ids: np.ndarray) -> np.ndarray:
        return self.index.score(queries, ids)


def check_leg_names(
    legs: Sequence[str] | None,
    have: Sequence[str],
    *,
    known: Sequence[str] = LEG_NAMES,
    at_least: int = 2,
) -> tuple[str, ...]:
    """Legs to fuse as asked (default: all of ``have``), checked: known, present, unique, at
    least ``at_least`` of them."""
    if legs is None:
        legs = tuple(have)
    if isinstance(legs, str):
        raise TypeError("legs must be a sequence of leg names, e.g. ['bm25', 'dense']")
    legs = tuple(legs)
    for leg in legs:
        if leg not in known:
            raise ValueError(f"unknown leg {leg!r}; legs are {tuple(known)}")
        if leg not in have:
            raise ValueError(f"this collection has no {leg!r} leg; it has {list(have)}")
    if len(set(legs)) != len(legs):
        raise ValueError(f"legs repeat: {legs}")
    if len(legs) < at_least:
        raise ValueError(f"hybrid search needs at least two legs; got {list(legs)}")
    return legs


def check_depth(depth: int | None, k: int) -> int:
    """Candidates per leg: ``max(k, DEFAULT_DEPTH)`` by default; never fewer than ``k``."""
    if depth is None:
        return max(k, DEFAULT_DEPTH)
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise TypeError(f"depth must be an int; got {type(depth).__name__}")
    depth = int(depth)
    if depth < k:
        raise ValueError(f"depth ({depth}) must be >= k ({k})")
    return depth
