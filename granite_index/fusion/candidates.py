"""Candidates of hybrid fusion: the union of the legs' lists per query, with every leg's score.

:meth:`Candidates.from_legs` stacks the legs' own lists, takes their union per query (a numba
kernel, :func:`granite_index._kernels.fusion.union`), and fills the scores a leg did not return by
lookup. Strategies (:mod:`granite_index.fusion.strategies`) fuse it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np

from granite_index._kernels import fusion as FK

_SENTINEL = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class LegStats:
    """Per leg, per query statistics of a leg's OWN retrieved list (not looked-up scores).

    Attributes
    ----------
    min, max, mean, std : numpy.ndarray of float64, shape (n_legs, n_queries)
        ``std`` is the population standard deviation; all NaN where the list is empty.
    count : numpy.ndarray of int64, shape (n_legs, n_queries)
        Number of hits in the list.
    """

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray

    @classmethod
    def from_lists(cls, scores: np.ndarray, valid: np.ndarray) -> LegStats:
        """Statistics of ``scores`` (n_legs, n_queries, n) where ``valid`` (same shape) is true."""
        s = np.where(valid, scores.astype(np.float64), 0.0)
        count = valid.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s.sum(axis=-1) / count
            var = np.where(valid, (s - mean[..., None]) ** 2, 0.0).sum(axis=-1) / count
        empty = count == 0
        lo = np.where(empty, np.nan, np.where(valid, s, np.inf).min(axis=-1, initial=np.inf))
        hi = np.where(empty, np.nan, np.where(valid, s, -np.inf).max(axis=-1, initial=-np.inf))
        return cls(lo, hi, mean, np.sqrt(var), count.astype(np.int64))


@dataclass(frozen=True, eq=False)
class Candidates:
    """The union of the legs' candidates per query, with every leg's score for each.

    Attributes
    ----------
    ids : numpy.ndarray of int64, shape (n_queries, m)
        Candidate ids per query, padded with ``-1``.
    scores : numpy.ndarray of float32, shape (n_legs, n_queries, m)
        Each leg's score per candidate: from its own list, else looked up, else NaN.
    ranks : numpy.ndarray of int32, shape (n_legs, n_queries, m)
        1-based position in the leg's own list; 0 where the leg did not retrieve the candidate.
    legs : tuple of str
        Leg names, in the order of the first axis of ``scores`` and ``ranks``.
    stats : LegStats
        Per leg, per query statistics of each leg's own list, for normalisation.
    """

    ids: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    legs: tuple[str, ...]
    stats: LegStats

    def __post_init__(self) -> None:
        for name, dtype in (("ids", np.int64), ("scores", np.float32), ("ranks", np.int32)):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype))
        if self.ids.ndim != 2:
            raise ValueError(f"ids must be (n_queries, m); got shape {self.ids.shape}")
        object.__setattr__(self, "legs", tuple(self.legs))
        nl, (nq, m) = len(self.legs), self.ids.shape
        if len(set(self.legs)) != nl or nl == 0:
            raise ValueError(f"legs must be unique names, at least one; got {self.legs}")
        for name in ("scores", "ranks"):
            if getattr(self, name).shape != (nl, nq, m):
                raise ValueError(f"{name} must be (n_legs, n_queries, m) = {(nl, nq, m)}")
        for f in fields(LegStats):
            if np.shape(getattr(self.stats, f.name)) != (nl, nq):
                raise ValueError(f"stats.{f.name} must be (n_legs, n_queries) = {(nl, nq)}")
        own = self.ranks > 0
        if not np.all(np.isfinite(self.scores[own])):
            leg = self.legs[int(np.argwhere(own & ~np.isfinite(self.scores))[0, 0])]
            raise ValueError(f"leg {leg!r}: scores contain NaN or inf in its own list")

    @property
    def n_queries(self) -> int:
        return int(self.ids.shape[0])

    @property
    def m(self) -> int:
        return int(self.ids.shape[1])

    @cached_property
    def id_rank(self) -> np.ndarray:
        """Per row, each candidate's rank by id, int64 (n_queries, m) (for tie-breaking)."""
        return np.argsort(np.argsort(self.ids, axis=1, kind="stable"), axis=1, kind="stable")

    @classmethod
    def from_legs(
        cls,
        results: Mapping[str, Any],
        lookup: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    ) -> Candidates:
        """Build the union of the legs' hits and fill each leg's scores.

        Parameters
        ----------
        results : mapping of str to (ids, scores) or SearchResult
            Per leg, its own hits best first: ``ids`` int64 (n_queries, n_leg) and ``scores``
            float32 (n_queries, n_leg); entries with id ``-1`` or score ``-inf`` are padding.
        lookup : mapping of str to callable, optional
            Per leg, ``f(ids) -> scores``: ``ids`` int64 (n_queries, m) holds the candidates that
            leg did not retrieve and ``-1`` elsewhere; it returns float32 (n_queries, m) scores,
            NaN (or ``-inf``) where unknown. Legs without one keep NaN for such candidates.

        Raises
        ------
        ValueError
            No legs, shapes that disagree, a leg's own scores holding NaN or ``+inf``, an id
            repeated within one leg's list, or ``lookup`` naming an unknown leg.
        """
        legs, ids, scores, valid = stack_lists(results, check=True)
        stats = LegStats.from_lists(scores, valid)
        ids_u, scores_u, ranks_u = union_lists(legs, ids, scores, valid, lookup)
        return cls(ids_u, scores_u, ranks_u, legs, stats)


def stack_lists(
    results: Mapping[str, Any], check: bool
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """The legs' lists padded to one length: (legs, ids, scores, valid), arrays (n_legs, nq, n).
    ``check=False`` trusts the lists (the engine's own indexes made them)."""
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty mapping of leg name to (ids, scores)")
    legs = tuple(results)
    if check:
        lists = [_leg_arrays(leg, results[leg]) for leg in legs]
    else:
        lists = [(v.ids, v.scores) if hasattr(v, "ids") else v for v in results.values()]
    nq = lists[0][0].shape[0]
    for leg, (i, _) in zip(legs, lists):
        if i.shape[0] != nq:
            raise ValueError(f"results[{leg!r}] has {i.shape[0]} queries, not {nq}")
    n = max(i.shape[1] for i, _ in lists)
    ids = np.full((len(legs), nq, n), -1, np.int64)
    scores = np.full((len(legs), nq, n), -np.inf, np.float32)
    for li, (i, s) in enumerate(lists):
        ids[li, :, : i.shape[1]] = i
        scores[li, :, : s.shape[1]] = s
    return legs, ids, scores, (ids >= 0) & (scores != -np.inf)


def union_lists(
    legs: tuple[str, ...], ids: np.ndarray, scores: np.ndarray, valid: np.ndarray, lookup: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The union of the stacked lists, with the missing scores looked up."""
    ids_u, scores_u, ranks_u, dup = FK.union(ids, scores, valid)
    if dup >= 0:
        raise ValueError(f"results[{legs[dup]!r}] repeats an id within one query's list")
    _apply_lookup(legs, ids_u, scores_u, lookup)
    return ids_u, scores_u, ranks_u


def _leg_arrays(leg: str, value: Any) -> tuple[np.ndarray, np.ndarray]:
    ids, scores = (value.ids, value.scores) if hasattr(value, "ids") else value
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu" and ids.size:
        raise TypeError(f"results[{leg!r}] ids must be integers; got {ids.dtype}")
    ids, scores = ids.astype(np.int64), np.asarray(scores, dtype=np.float32)
    if ids.ndim != 2 or ids.shape != scores.shape:
        raise ValueError(
            f"results[{leg!r}]: ids and scores must both be (n_queries, n); "
            f"got {ids.shape} and {scores.shape}"
        )
    valid = (ids >= 0) & (scores != -np.inf)
    if np.isnan(scores[valid]).any():
        raise ValueError(f"results[{leg!r}]: scores contain NaN")
    if np.isposinf(scores[valid]).any():
        raise ValueError(f"results[{leg!r}]: scores contain +inf")
    if (ids < -1).any() or (ids == _SENTINEL).any():
        raise ValueError(f"results[{leg!r}]: ids must be in [0, 2**63 - 1), or -1 for padding")
    return ids, scores


def _apply_lookup(legs, ids: np.ndarray, scores: np.ndarray, lookup) -> None:
    if lookup is None:
        return
    for leg in lookup:
        if leg not in legs:
            raise ValueError(f"lookup names leg {leg!r}, which is not in results {legs}")
        if not callable(lookup[leg]):
            raise TypeError(f"lookup[{leg!r}] must be callable")
    for li, leg in enumerate(legs):
        need = (ids >= 0) & np.isnan(scores[li])
        if leg not in lookup or not need.any():
            continue
        got = np.asarray(lookup[leg](np.where(need, ids, -1)), dtype=np.float32)
        if got.shape != ids.shape:
            raise ValueError(f"lookup[{leg!r}] returned shape {got.shape}, not {ids.shape}")
        if np.isposinf(got[need]).any():
            raise ValueError(f"lookup[{leg!r}] returned +inf")
        scores[li] = np.where(need & np.isfinite(got), got, scores[li])
