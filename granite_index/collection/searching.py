"""Reading a collection through its legs: single-leg and hybrid search, query encoding, fitting
the fusion. A part of :class:`~granite_index.collection.Collection` (which it is mixed into)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from granite_index.fusion import FitResult, Fusion, as_fusion, fit_fusion, fusion_from_dict
from granite_index.search import (
    DEFAULT_DEPTH,
    MODES,
    EncodedQueries,
    HybridSearcher,
    Leg,
    as_encoded,
    check_depth,
    check_leg_names,
    default_fusion,
    encode_queries,
)
from granite_index.types import SearchResult
from granite_index.validate import check_k, check_matrix

if TYPE_CHECKING:  # pragma: no cover
    from granite_index.collection.store import Manifest, Store
    from granite_index.index.dense import DenseIndex
    from granite_index.index.idmap import IdMap

Mode = Literal["dense", "bm25", "sparse", "hybrid"]
#: filters (their matching keys) a handle keeps per commit, and the most keys they may hold
#: together (8 bytes each: 256 MB)
FILTER_CACHE = 8
FILTER_CACHE_KEYS = 1 << 25


def check_offset(offset: Any) -> int:
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise TypeError(f"offset must be an int; got {type(offset).__name__}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0; got {offset}")
    return int(offset)


class Searching:
    """Search verbs over the collection's legs (``_legs``, built when its state is loaded), its
    manifest and its store."""

    modes: list[str]
    manifest: Manifest
    _legs: dict[str, Leg]
    _dense: DenseIndex | None
    _store: Store
    _ids: IdMap
    lock_timeout: float
    _catch_up: Callable[[], bool]  # the collection's (see writing.py)

    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        mode: Mode | None = None,
        legs: Sequence[str] | None = None,
        fusion: Fusion | dict[str, Any] | None = None,
        depth: int | None = None,
        threads: int | None = None,
        where: str | None = None,
        offset: int = 0,
        exact: bool | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        rescore: int | None = None,
        share: float | None = None,
    ) -> SearchResult:
        """Top-k documents for each query.

        Parameters
        ----------
        queries : str, sequence of str, float array (n_queries, dim), or EncodedQueries
            Query texts; query vectors (dense mode only); or :meth:`encode_queries` output.
        k : int
            Hits per query (padded with id -1 when fewer documents match).
        mode : {"dense", "bm25", "sparse", "hybrid"}, optional
            Which retriever answers: one leg, or the fusion of several. Default: the dense leg
            if the collection has one, else the learned-sparse one, else BM25.
        legs : sequence of {"bm25", "sparse", "dense"}, optional
            Hybrid: the legs to fuse (default: all the collection has).
        fusion : ConvexFusion, RRF, DBSF or its dict, optional
            Hybrid: how to fuse. Default: the one :meth:`fit_fusion` saved for these legs, else
            an equal-weight convex combination of min-max normalised scores.
        depth : int, optional
            Hybrid: candidates taken from each leg (default max(k, 100)). Scores a leg did not
            return for another leg's candidates are looked up (exact for every leg).
        threads : int, optional
            Sparse legs: threads for a batch of queries (default: all cores).
        where : str, optional
            A filter in Lance SQL over the documents' columns (``id``, ``text``, and the typed
            metadata columns, e.g. ``"year >= 2020 AND lang = 'en'"``), applied to every leg
            before its top-k: each query gets ``min(k, matching documents)`` hits.
        offset : int
            Hits to skip (paging): the hits ranked ``offset + 1 .. offset + k``.
        exact, nprobe, ef_search, rescore :
            Dense leg, this call only: force exact (True) or approximate (False) search, IVF
            lists probed per segment, HNSW beam width, rows rescored after a code scan.
        share : float in (0, 1], optional
            Learned-sparse leg, this call only: approximate search from the query's heaviest
            terms carrying this share of its weight. Alone (``mode="sparse"``), its candidates
            are rescored exactly (see :meth:`SparseIndex.search`); in a hybrid search the leg
            scores the cut query only, its list and its looked-up scores alike (see
            :meth:`SparseIndex.retrieve`), since fusion only compares them with each other.
            Default: exact.

        Returns
        -------
        SearchResult
            Internal keys and scores; ``.doc_ids()`` and ``.to_arrow()`` give your ids and documents.
        """
        modes = self.modes
        if mode is None:
            mode = next(m for m in ("dense", "sparse", "bm25") if m in modes)
        if mode not in MODES:
            raise ValueError(f"mode must be 'dense', 'bm25', 'sparse' or 'hybrid'; got {mode!r}")
        if mode not in modes:
            raise ValueError(
                f"this collection has no {mode} mode; it answers {modes} "
                "(choose dense= / sparse= in Collection.create)"
            )
        if mode != "hybrid" and (legs is not None or fusion is not None or depth is not None):
            raise ValueError("legs, fusion and depth are for mode='hybrid'")
        k = check_k(k)
        offset = check_offset(offset)
        allow = self._allowed_keys(where)
        all_legs = dict(self._legs)
        if "dense" in all_legs:
            all_legs["dense"] = all_legs["dense"].with_params(
                exact=exact, nprobe=nprobe, ef_search=ef_search, rescore=rescore
            )
        if "sparse" in all_legs:
            all_legs["sparse"] = all_legs["sparse"].with_params(share=share)
        elif share is not None:
            raise ValueError("share is for the learned-sparse leg; this collection has none")
        want = k + offset
        if mode == "hybrid":
            use = {name: all_legs[name] for name in check_leg_names(legs, list(all_legs))}
            searcher = HybridSearcher(use, self._fusion_for(fusion, tuple(use)))
            encoded = as_encoded(queries, use)
            ids, scores = searcher.search(encoded, want, check_depth(depth, want), threads, allow)
        else:
            leg = all_legs[mode]
            if mode == "dense" and isinstance(queries, np.ndarray):
                leg_input = check_matrix(queries, "queries", self._dense.dim)
            else:
                leg_input = as_encoded(queries, {mode: leg}).get(mode)
            res = leg.search(leg_input, want, threads=threads, allow=allow)
            ids, scores = res.ids, res.scores
        return SearchResult(ids[:, offset:], scores[:, offset:], self)

    def _allowed_keys(self, where: str | None) -> np.ndarray | None:
        """The keys of the documents matching ``where`` (sorted int64), None without a filter.
        The last few filters are cached per commit, up to :data:`FILTER_CACHE_KEYS` keys in
        all (a filter repeated across queries is read once)."""
        if where is None:
            return None
        if not isinstance(where, str) or not where.strip():
            raise TypeError(f"where must be a non-empty SQL filter string; got {where!r}")
        commit = self._store.manifest.commit
        cache = self.__dict__.setdefault("_filter_cache", {})
        hit = cache.get((commit, where))
        if hit is not None:
            return hit
        ds = self._store.docs()
        if ds is None:
            keys = np.zeros(0, np.int64)
        else:
            try:
                table = ds.to_table(columns=["_key"], filter=where)
            except Exception as exc:  # Lance raises several kinds for a bad filter
                columns = [f.name for f in ds.schema if f.name not in ("_key", "vector")]
                raise ValueError(
                    f"bad filter where={where!r}: {exc}. Columns you can filter on: {columns}"
                ) from exc
            keys = np.sort(table.column("_key").to_numpy())
        if len(keys) > FILTER_CACHE_KEYS:
            return keys  # too big to keep: read again by the next search
        while cache and (
            len(cache) >= FILTER_CACHE
            or sum(len(v) for v in cache.values()) + len(keys) > FILTER_CACHE_KEYS
        ):
            cache.pop(next(iter(cache)))  # the oldest first
        cache[(commit, where)] = keys
        return keys

    def _fusion_for(self, fusion: Any, legs: tuple[str, ...]) -> Fusion:
        """``fusion`` as given (a strategy or its dict), else the fitted one saved for exactly
        these legs, else the default."""
        if fusion is not None:
            return as_fusion(fusion)
        saved = self.manifest.fusion
        if saved is not None and set(saved.get("legs", ())) == set(legs):
            return fusion_from_dict(saved["fusion"])
        return default_fusion(legs)

    def encode_queries(self, queries: Any, legs: Sequence[str] | None = None) -> EncodedQueries:
        """Encode query texts once for the given legs (default: all), for :meth:`search`."""
        if isinstance(queries, EncodedQueries):
            return queries
        all_legs = self._legs
        names = list(all_legs) if legs is None else list(legs)
        unknown = [n for n in names if n not in all_legs]
        if unknown:
            raise ValueError(f"this collection has no {unknown[0]!r} leg; it has {list(all_legs)}")
        return encode_queries(queries, {n: all_legs[n] for n in names})

    def fit_fusion(
        self,
        queries: Any,
        qrels: dict[str, dict[str, int]],
        query_ids: Sequence[str],
        *,
        legs: Sequence[str] | None = None,
        metric: str = "nDCG@10",
        depth: int | None = None,
        save: bool = True,
    ) -> FitResult:
        """Choose the hybrid fusion on labelled queries (a train split; never the test set).

        Grid-searches convex weights with each normalisation, RRF and DBSF
        (:func:`granite_index.fusion.fit_fusion`) and, with ``save``, stores the best in the
        manifest (one commit): later hybrid searches over the same legs use it.

        Parameters
        ----------
        queries : sequence of str or EncodedQueries
        qrels : dict
            ``{query_id: {doc_id: relevance}}`` (doc ids as in this collection, as strings).
        query_ids : sequence of str
            The id of each query, in order.
        legs : sequence of str, optional
            Legs to fuse (default: all the collection has).
        metric : str
            What to maximise (an ir-measures name, e.g. ``"nDCG@10"``, ``"R@100"``).
        depth : int, optional
            Candidates per leg (default 100).
        save : bool
            Store the chosen fusion in the manifest.

        Returns
        -------
        FitResult
            The chosen fusion, its training score and the table of all tried.
        """
        all_legs = self._legs
        use = {name: all_legs[name] for name in check_leg_names(legs, list(all_legs))}
        encoded = encode_queries(queries, use)
        if isinstance(query_ids, str) or len(query_ids) != encoded.n:
            raise ValueError(f"query_ids must give one id per query ({encoded.n})")
        cands = HybridSearcher(use).candidates(
            encoded, DEFAULT_DEPTH if depth is None else int(depth)
        )
        result = fit_fusion(
            cands,
            qrels,
            list(query_ids),
            lambda keys: self._ids.ids_of(np.asarray(keys, np.int64)),
            metric=metric,
        )
        if save:
            saved = {
                "legs": list(use),
                "fusion": result.fusion.to_dict(),
                "metric": metric,
                "train_score": result.score,
                "n_queries": encoded.n,
            }
            # the indexes do not change: the newest commit, with a new manifest (atomic rewrite)
            with self._store.writer(self.lock_timeout):
                self._catch_up()
                self._store.commit(dataclasses.replace(self._store.manifest, fusion=saved))
        return result
