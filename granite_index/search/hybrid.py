"""Hybrid search: each leg searched deeper than k, the scores a leg did not return looked up,
the lists fused (see :mod:`granite_index.fusion`).

:class:`HybridSearcher` receives legs and a fusion; it never sees a collection, so a collection,
a cluster shard or a LanceDB table can use it alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from granite_index.fusion import Candidates, ConvexFusion, Fusion, fuse_results
from granite_index.search.legs import Leg, LegHits
from granite_index.search.queries import EncodedQueries


def default_fusion(legs: Sequence[str]) -> Fusion:
    """Equal-weight convex combination of min-max normalised scores (used until a fit)."""
    return ConvexFusion({leg: 1.0 for leg in legs}, "minmax")


class HybridSearcher:
    """Fuse several legs' lists into one ranking.

    Parameters
    ----------
    legs : mapping of str to Leg
        The legs to fuse, by name (at least one; fusion is meaningful with two or more).
    fusion : ConvexFusion, RRF or DBSF, optional
        Default :func:`default_fusion` over ``legs``.
    """

    def __init__(self, legs: Mapping[str, Leg], fusion: Fusion | None = None) -> None:
        if not legs:
            raise ValueError("a hybrid searcher needs legs")
        self.legs = dict(legs)
        self.fusion = default_fusion(list(self.legs)) if fusion is None else fusion

    def retrieve(
        self,
        queries: EncodedQueries | Mapping[str, Any],
        depth: int,
        threads: int | None = None,
        allow: Any = None,
    ) -> dict[str, LegHits]:
        """Each leg's top ``depth`` with its lookups (among the ids ``allow`` when given).

        ``queries`` is :class:`EncodedQueries` or a mapping of leg name to that leg's encoded
        queries (what its ``encode_queries`` returned).
        """
        if allow is None:  # legs written before filters need not take the argument
            return {
                name: leg.retrieve(_input(queries, name), depth, threads=threads)
                for name, leg in self.legs.items()
            }
        return {
            name: leg.retrieve(_input(queries, name), depth, threads=threads, allow=allow)
            for name, leg in self.legs.items()
        }

    def fuse(self, hits: Mapping[str, LegHits], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Fused top-k of retrieved ``hits`` (:meth:`retrieve`): ``ids`` int64 and ``scores``
        float32, (n_queries, k)."""
        results, lookup = _lists_and_lookups(hits)
        return fuse_results(self.fusion, results, k, lookup)

    def candidates(
        self, queries: EncodedQueries | Mapping[str, Any], depth: int, threads: int | None = None
    ) -> Candidates:
        """Each leg's top ``depth`` and, for the candidates a leg missed, its true score."""
        hits = self.retrieve(queries, depth, threads)
        return Candidates.from_legs(*_lists_and_lookups(hits))

    def search(
        self,
        queries: EncodedQueries | Mapping[str, Any],
        k: int,
        depth: int,
        threads: int | None = None,
        allow: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fused top-k: ``ids`` int64 (n_queries, k) and ``scores`` float32 (n_queries, k);
        with ``allow`` (int64 ids), among those ids only."""
        return self.fuse(self.retrieve(queries, depth, threads, allow), k)


def _input(queries: EncodedQueries | Mapping[str, Any], name: str) -> Any:
    if isinstance(queries, Mapping):
        if name not in queries:
            raise ValueError(f"these queries were not encoded for the {name!r} leg")
        return queries[name]
    return queries.get(name)


def _lists_and_lookups(hits: Mapping[str, LegHits]) -> tuple[dict[str, Any], dict[str, Any]]:
    results = {name: (h.ids, h.scores) for name, h in hits.items()}
    lookup = {name: h.lookup for name, h in hits.items()}
    return results, lookup
