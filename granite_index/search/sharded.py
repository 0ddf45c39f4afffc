"""One leg over several shards: each shard holds a disjoint part of the documents in its own
index; the sharded leg answers as one index of all of them would.

- Ids: a shard's key ``key`` is the global id ``key * n_shards + shard`` (so a key must stay below
  ``2**63 / n_shards``); :meth:`ShardedLeg.split` turns global ids back into each shard's keys.
- BM25: corpus-wide statistics (live documents, total length, the query terms' live document
  frequencies) are gathered from every shard for each query batch and given to every shard
  (:class:`~granite_index.index.Bm25Stats`), so scores equal one index's bit for bit.
- Lists: each shard's top ``depth`` merged into the global top ``depth`` (a document in the global
  top ``depth`` is in its shard's); lookups are routed to the shard owning each id.

Ties at the cut of a list may keep other members of the tie than one index would (a shard does
not know the other shards' insertion order): ids and scores are equal otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from granite_index.index.queries import Bm25Stats
from granite_index.search.legs import Leg, LegHits
from granite_index.types import SearchResult


class ShardedLeg:
    """A :class:`Leg` over ``shards``: legs of one kind (same name, same models), each over a
    disjoint part of the documents.

    Parameters
    ----------
    shards : sequence of Leg
        Shard ``s`` holds the documents whose global id ``g`` has ``g % len(shards) == s``.
    """

    def __init__(self, shards: Sequence[Leg]) -> None:
        shards = list(shards)
        if not shards:
            raise ValueError("a sharded leg needs at least one shard")
        names = {leg.name for leg in shards}
        if len(names) != 1:
            raise ValueError(f"the shards of one leg must be legs of one kind; got {sorted(names)}")
        self.shards = shards
        self.name = shards[0].name

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    # ------------------------------------------------------------------ ids
    def global_ids(self, shard: int, keys: np.ndarray) -> np.ndarray:
        """Shard ``shard``'s keys → global ids (``-1`` stays ``-1``)."""
        keys = np.asarray(keys, np.int64)
        return np.where(keys >= 0, keys * self.n_shards + shard, -1)

    def split(self, ids: np.ndarray) -> list[np.ndarray]:
        """Global ids → per shard, its keys where it owns the id and ``-1`` elsewhere."""
        ids = np.asarray(ids, np.int64)
        owner = np.where(ids >= 0, ids % self.n_shards, -1)
        return [np.where(owner == s, ids // self.n_shards, -1) for s in range(self.n_shards)]

    # ------------------------------------------------------------------ the Leg protocol
    def encode_queries(self, texts: list[str]) -> Any:
        return self.shards[0].encode_queries(texts)

    def bm25_stats(self, queries: Any) -> Bm25Stats | None:
        """The corpus-wide BM25 statistics of these query texts gathered from every shard, for a
        BM25 leg over text indexes; None for other legs."""
        index = getattr(self.shards[0], "index", None)
        if self.name != "bm25" or index is None or index.analyzer is None:
            return None
        texts = [queries] if isinstance(queries, str) else list(queries)
        terms = {t for text in texts for t in index.analyzer.tokens(text)}
        return Bm25Stats.merge([leg.index.bm25_stats(terms) for leg in self.shards])

    def _shard_hits(
        self, queries: Any, depth: int, threads: int | None, allow: Any
    ) -> list[tuple[np.ndarray, np.ndarray, Any]]:
        stats = self.bm25_stats(queries)
        allowed = None if allow is None else self.split(np.asarray(allow, np.int64).ravel())
        out = []
        for s, leg in enumerate(self.shards):
            kw: dict[str, Any] = {"threads": threads}
            if allowed is not None:
                kw["allow"] = allowed[s][allowed[s] >= 0]
            if stats is not None:
                res, lookup = leg.index.retrieve(queries, depth, stats=stats, **kw)
                out.append((res.ids, res.scores, lookup))
            else:
                hits = leg.retrieve(queries, depth, **kw)
                out.append((hits.ids, hits.scores, hits.lookup))
        return out

    def retrieve(
        self, queries: Any, depth: int, *, threads: int | None = None, allow: Any = None
    ) -> LegHits:
        parts = self._shard_hits(queries, depth, threads, allow)
        ids = np.concatenate([self.global_ids(s, p[0]) for s, p in enumerate(parts)], axis=1)
        scores = np.concatenate([p[1] for p in parts], axis=1)
        top_ids, top_scores = _top(ids, scores, depth)
        lookups = [p[2] for p in parts]
        return LegHits(top_ids, top_scores, lambda want: self._routed(want, lookups))

    def search(
        self, queries: Any, k: int, *, threads: int | None = None, allow: Any = None
    ) -> SearchResult:
        hits = self.retrieve(queries, k, threads=threads, allow=allow)
        return SearchResult(hits.ids, hits.scores)

    def score(self, queries: Any, ids: np.ndarray) -> np.ndarray:
        stats = self.bm25_stats(queries)
        if stats is not None:
            calls = [partial(leg.index.score, queries, stats=stats) for leg in self.shards]
        else:
            calls = [partial(leg.score, queries) for leg in self.shards]
        return self._routed(ids, calls)

    def _routed(self, ids: np.ndarray, calls: Sequence[Callable[[np.ndarray], Any]]) -> np.ndarray:
        """Scores of global ``ids`` (n_queries, m): each shard's ``calls[s](keys)`` (its keys,
        ``-1`` elsewhere) where it owns the id, NaN for padding."""
        ids = np.asarray(ids, np.int64)
        out = np.full(ids.shape, np.nan, np.float32)
        for call, keys in zip(calls, self.split(ids)):
            mine = keys >= 0
            if mine.any():
                out[mine] = np.asarray(call(keys), np.float32)[mine]
        return out


def _top(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the best ``k`` of concatenated lists (score descending, then smaller id),
    padded with ``-1`` / ``-inf``."""
    n_q = ids.shape[0]
    out_ids = np.full((n_q, k), -1, np.int64)
    out_s = np.full((n_q, k), -np.inf, np.float32)
    for q in range(n_q):
        ok = ids[q] >= 0
        i, s = ids[q][ok], scores[q][ok]
        order = np.lexsort((i, -s))[:k]
        out_ids[q, : len(order)] = i[order]
        out_s[q, : len(order)] = s[order]
    return out_ids, out_s
