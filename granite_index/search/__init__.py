"""Search over legs: the :class:`Leg` protocol, the engine's three legs, encoded queries, and the
hybrid searcher that fuses legs without knowing where they come from.

Modules
-------
- :mod:`~granite_index.search.legs`: :class:`Leg`, :class:`LegHits`, :class:`Bm25Leg`,
  :class:`SpladeLeg`, :class:`DenseLeg`; leg names (:data:`LEG_NAMES`), search modes
  (:data:`MODES`) and the default fusion depth (:data:`DEFAULT_DEPTH`), defined once here.
- :mod:`~granite_index.search.queries`: :class:`EncodedQueries`, query texts encoded per leg.
- :mod:`~granite_index.search.hybrid`: :class:`HybridSearcher`, :func:`default_fusion`.
- :mod:`~granite_index.search.sharded`: :class:`ShardedLeg`, one leg over disjoint shards that
  answers as one index of their documents (global ids, corpus-wide BM25 statistics, merged
  lists, routed lookups).

Imports: :mod:`granite_index.index`, :mod:`granite_index.fusion` and the shared types; never
storage or documents, never torch (a leg receives its query-encoding function).
Tests: ``tests/search/``.
"""

from __future__ import annotations

from granite_index.search.hybrid import HybridSearcher, default_fusion
from granite_index.search.legs import (
    DEFAULT_DEPTH,
    LEG_NAMES,
    MODES,
    Bm25Leg,
    DenseLeg,
    Leg,
    LegHits,
    SpladeLeg,
    check_depth,
    check_leg_names,
)
from granite_index.search.queries import EncodedQueries, as_encoded, encode_queries
from granite_index.search.sharded import ShardedLeg

__all__ = [
    "DEFAULT_DEPTH",
    "LEG_NAMES",
    "MODES",
    "Bm25Leg",
    "DenseLeg",
    "EncodedQueries",
    "HybridSearcher",
    "Leg",
    "LegHits",
    "ShardedLeg",
    "SpladeLeg",
    "as_encoded",
    "check_depth",
    "check_leg_names",
    "default_fusion",
    "encode_queries",
]
