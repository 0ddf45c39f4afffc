"""Hybrid retrieval over a collection's legs: search each leg deeper than k, look up the scores a
leg did not return, fuse (see :mod:`granite_index.fusion`).

Legs are named ``"bm25"`` (the BM25 index), ``"sparse"`` (the learned-sparse SPLADE index) and
``"dense"`` (the FAISS index); they are also :meth:`Collection.search` modes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from granite_index._docs import is_text_list
from granite_index._validate import as_list
from granite_index.fusion import (
    Candidates,
    ConvexFusion,
    Fusion,
    as_fusion,
    fuse_results,
    fusion_from_dict,
)
from granite_index.fusion_fit import FitResult

if TYPE_CHECKING:  # pragma: no cover
    from granite_index.collection import Collection
    from granite_index.encoders.sparse import SparseVectors

LEGS = ("bm25", "sparse", "dense")
#: candidates taken from each leg per query, at least (more when k is larger)
DEFAULT_DEPTH = 100


@dataclass(frozen=True)
class EncodedQueries:
    """Queries prepared once for every leg: texts for BM25, SPLADE vectors, dense vectors.

    Make one with :meth:`Collection.encode_queries` to search several times, or to time the
    search apart from the encoders.
    """

    n: int
    texts: list[str] | None = None
    sparse: SparseVectors | None = None
    dense: np.ndarray | None = None

    def leg_input(self, leg: str) -> Any:
        value = {"bm25": self.texts, "sparse": self.sparse, "dense": self.dense}[leg]
        if value is None:
            raise ValueError(f"these queries were not encoded for the {leg!r} leg")
        if leg == "sparse":
            return (value.indptr, value.indices.astype(np.int64), value.values)
        return value


def encode_queries(col: Collection, queries: Any, legs: Sequence[str] | None) -> EncodedQueries:
    """Query texts → :class:`EncodedQueries` for ``legs`` (default: all the collection has)."""
    if isinstance(queries, EncodedQueries):
        return queries
    if not (isinstance(queries, str) or is_text_list(queries)):
        raise TypeError("queries must be a str or a non-empty list of str")
    texts = [queries] if isinstance(queries, str) else as_list(queries, "queries")
    for q in texts:
        if not q.strip():
            raise ValueError("a query is empty")
    legs = [m for m in LEGS if m in col.modes] if legs is None else list(legs)
    return EncodedQueries(
        n=len(texts),
        texts=texts if "bm25" in legs else None,
        sparse=col.sparse_encoder.encode_queries(texts) if "sparse" in legs else None,
        dense=col.encoder.encode_queries(texts) if "dense" in legs else None,
    )


def as_encoded(col: Collection, queries: Any, legs: Sequence[str]) -> EncodedQueries:
    """``queries`` for a text search over ``legs``: encoded as needed; vectors are refused."""
    if isinstance(queries, EncodedQueries):
        return queries
    if isinstance(queries, np.ndarray) or not (isinstance(queries, str) or is_text_list(queries)):
        raise TypeError(
            f"{'/'.join(legs)} search takes query texts (a str or a list of str) or "
            "encode_queries() output; only dense search takes vectors"
        )
    return encode_queries(col, queries, legs)


def default_fusion(legs: Sequence[str]) -> Fusion:
    """Equal-weight convex combination of min-max normalised scores (used until a fit)."""
    return ConvexFusion({leg: 1.0 for leg in legs}, "minmax")


def resolve_legs(col: Collection, legs: Sequence[str] | None) -> tuple[str, ...]:
    """The legs to fuse: as asked (checked against the collection), or all it has."""
    have = [leg for leg in LEGS if leg in col.modes]
    if legs is None:
        legs = have
    if isinstance(legs, str):
        raise TypeError("legs must be a sequence of leg names, e.g. ['bm25', 'dense']")
    legs = tuple(legs)
    for leg in legs:
        if leg not in LEGS:
            raise ValueError(f"unknown leg {leg!r}; legs are {LEGS}")
        if leg not in have:
            raise ValueError(f"this collection has no {leg!r} leg; it has {have}")
    if len(set(legs)) != len(legs):
        raise ValueError(f"legs repeat: {legs}")
    if len(legs) < 2:
        raise ValueError(f"hybrid search needs at least two legs; got {list(legs)}")
    return legs


def resolve_fusion(col: Collection, fusion: Any, legs: Sequence[str]) -> Fusion:
    """``fusion`` as given (a strategy or its dict), else the collection's fitted one if it
    covers exactly these legs, else :func:`default_fusion`."""
    if fusion is None:
        saved = col.manifest.fusion
        if saved is not None and set(saved.get("legs", ())) == set(legs):
            return fusion_from_dict(saved["fusion"])
        return default_fusion(legs)
    return as_fusion(fusion)


def _legs_and_lookups(
    col: Collection, queries: EncodedQueries, legs: Sequence[str], depth: int, threads: int | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each leg's top ``depth``, and per leg the lookup of its true score for other ids (sparse
    legs score the document's postings, the dense leg its stored vector)."""
    index = {leg: col._leg_index(leg) for leg in legs}
    # sparse legs analyse and weight the queries once, for the search and for the lookup
    inputs = {
        leg: queries.leg_input(leg)
        if leg == "dense"
        else index[leg].prepare(queries.leg_input(leg))
        for leg in legs
    }
    results, lookups = {}, {}
    for leg in legs:
        if leg == "dense" and (scanned := _dense_by_scan(index[leg], inputs[leg], depth)):
            results[leg], lookups[leg] = scanned
            continue
        if leg == "dense":
            results[leg] = index[leg].search(inputs[leg], depth)
        else:
            results[leg] = index[leg].search(inputs[leg], depth, threads=threads)
        lookups[leg] = partial(index[leg].score, inputs[leg])  # ids -> true scores
    return results, lookups


#: largest (n_queries x n_documents) score matrix the dense leg computes in one scan
SCAN_MAX = 1 << 22


def _dense_by_scan(index: Any, queries: np.ndarray, depth: int) -> tuple[Any, Any] | None:
    """The dense leg from one matrix product where the index allows it (see
    :meth:`DenseIndex.scan_search`): its top ``depth`` and the lookup of any other score."""
    found = index.scan_search(queries, depth, max_cells=SCAN_MAX)
    if found is None:
        return None
    ids, scores, lookup = found
    return (ids, scores), lookup


def candidates(
    col: Collection, queries: EncodedQueries, legs: Sequence[str], depth: int, threads: int | None
) -> Candidates:
    """Each leg's top ``depth`` and, for the candidates a leg missed, its true score."""
    results, lookup = _legs_and_lookups(col, queries, legs, depth, threads)
    return Candidates.from_legs(results, lookup=lookup)


def search(
    col: Collection,
    queries: EncodedQueries,
    k: int,
    legs: Sequence[str],
    fusion: Fusion,
    depth: int | None,
    threads: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fused top-k: ``ids`` int64 (n_queries, k) and ``scores`` float32 (n_queries, k)."""
    depth = max(k, DEFAULT_DEPTH) if depth is None else int(depth)
    if depth < k:
        raise ValueError(f"depth ({depth}) must be >= k ({k})")
    results, lookup = _legs_and_lookups(col, queries, legs, depth, threads)
    return fuse_results(fusion, results, k, lookup)


@dataclass(frozen=True)
class Fitted:
    """:func:`fit`'s output: the fit, and the record a collection's manifest keeps of it."""

    fit: FitResult
    saved: dict[str, Any]


def fit(
    col: Collection,
    queries: Any,
    qrels: Mapping[str, Mapping[str, int]],
    query_ids: Sequence[str],
    legs: Sequence[str] | None,
    metric: str,
    depth: int | None,
) -> Fitted:
    """Fit the fusion of ``legs`` on labelled queries (see :meth:`Collection.fit_fusion`)."""
    from granite_index.fusion_fit import fit_fusion

    use = resolve_legs(col, legs)
    encoded = encode_queries(col, queries, use)
    if isinstance(query_ids, str) or len(query_ids) != encoded.n:
        raise ValueError(f"query_ids must give one id per query ({encoded.n})")
    cands = candidates(col, encoded, use, DEFAULT_DEPTH if depth is None else int(depth), None)
    key_to_id = col._key_to_id
    result = fit_fusion(
        cands,
        qrels,
        list(query_ids),
        lambda keys: [key_to_id[int(k)] for k in keys],
        metric=metric,
    )
    saved = {
        "legs": list(use),
        "fusion": result.fusion.to_dict(),
        "metric": metric,
        "train_score": result.score,
        "n_queries": encoded.n,
    }
    return Fitted(result, saved)
