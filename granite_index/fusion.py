"""Hybrid fusion: combine the candidate lists of several retrieval legs into one ranking.

Pure numpy, vectorised over queries; no retrieval happens here. A leg is any retriever
(``"bm25"``, ``"sparse"``, ``"dense"``, ...). :meth:`Candidates.from_legs` builds the union of
the legs' hits; a strategy (:class:`ConvexFusion`, :class:`RRF`, :class:`DBSF`) fuses it into
``(ids, scores)`` of shape ``(n_queries, k)``, best first, padded with ``-1`` / ``-inf``;
:func:`granite_index.fusion_fit.fit_fusion` picks a strategy and its weights on labelled queries.

Ties in the fused score (compared as the float32 values returned) go to the smaller id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np

from granite_index import _fusion_kernels as FK

FORMAT_VERSION = 1
DEFAULT_THEORETICAL_MIN: dict[str, float] = {"bm25": 0.0, "sparse": 0.0, "dense": -1.0}
_SENTINEL = np.iinfo(np.int64).max
_NORMALIZATIONS = ("minmax", "zscore", "theoretical")


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
    def _id_rank(self) -> np.ndarray:
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
        legs, ids, scores, valid = _stack(results, check=True)
        stats = LegStats.from_lists(scores, valid)
        ids_u, scores_u, ranks_u = _union(legs, ids, scores, valid, lookup)
        return cls(ids_u, scores_u, ranks_u, legs, stats)


def _stack(
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


def _union(
    legs: tuple[str, ...], ids: np.ndarray, scores: np.ndarray, valid: np.ndarray, lookup: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`union` of the stacked lists, with the missing scores looked up."""
    ids_u, scores_u, ranks_u, dup = FK.union(ids, scores, valid)
    if dup >= 0:
        raise ValueError(f"results[{legs[dup]!r}] repeats an id within one query's list")
    _apply_lookup(legs, ids_u, scores_u, lookup)
    return ids_u, scores_u, ranks_u


def fuse_results(
    fusion: Fusion,
    results: Mapping[str, Any],
    k: int,
    lookup: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``fusion.fuse(Candidates.from_legs(results, lookup), k)`` in one compiled pass, for the
    engine's own legs (their lists are trusted, not re-validated): what hybrid search runs.

    Equal to the numpy path up to the rounding of the lists' statistics (summed in another order).
    """
    if not isinstance(fusion, _Fusion):
        raise TypeError(f"fusion must be a ConvexFusion, RRF or DBSF; got {type(fusion).__name__}")
    k = _number(k, "k", int, 1)
    legs, ids, scores, valid = _stack(results, check=False)
    ids_u, scores_u, ranks_u = _union(legs, ids, scores, valid, lookup)
    kind, w, tmin, rrf_k = fusion._kernel_args(legs)
    return FK.fuse_topk(ids_u, scores_u, ranks_u, kind, w, tmin, rrf_k, k)


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


def _number(v: Any, name: str, kind: type = float, low: float = -math.inf) -> Any:
    """``v`` as ``kind`` (int or float), finite and >= ``low``, else TypeError / ValueError."""
    types = (int, np.integer) if kind is int else (int, float, np.integer, np.floating)
    if isinstance(v, bool) or not isinstance(v, types):
        raise TypeError(f"{name} must be {kind.__name__}; got {type(v).__name__}")
    if not math.isfinite(v) or v < low:
        raise ValueError(f"{name} must be finite and >= {low}; got {v}")
    return kind(v)


def _mapping(d: Any, name: str, low: float = -math.inf) -> dict[str, float]:
    if not isinstance(d, Mapping):
        raise TypeError(f"{name} must be a mapping of leg name to float")
    if not all(isinstance(leg, str) for leg in d):
        raise TypeError(f"{name} keys must be leg names (str)")
    return {leg: _number(v, f"{name}[{leg!r}]", float, low) for leg, v in d.items()}


def _check_weights(weights: Any) -> dict[str, float]:
    out = _mapping(weights, "weights", low=0.0)
    if not out:
        raise ValueError("weights must name at least one leg")
    if not any(out.values()):
        raise ValueError("weights are all zero")
    return out


class _Fusion:
    """Shared machinery: fused = sum_l w_l * contribution_l, then top-k."""

    kind: ClassVar[str]
    weights: Mapping[str, float] | None

    def fuse(self, candidates: Candidates, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Fuse the legs' scores and return the top ``k`` per query.

        Parameters
        ----------
        candidates : Candidates
        k : int
            Hits per query to return (> 0).

        Returns
        -------
        ids : numpy.ndarray of int64, shape (n_queries, k)
            Best first, padded with ``-1``; ties go to the smaller id.
        scores : numpy.ndarray of float32, shape (n_queries, k)
            Fused scores, ``-inf`` where padded.
        """
        if not isinstance(candidates, Candidates):
            raise TypeError(f"candidates must be Candidates; got {type(candidates).__name__}")
        k = _number(k, "k", int, 1)
        fused = _combine(self._weight_vector(candidates.legs), self._contributions(candidates))
        order, f = _top_k(candidates, fused, k)
        ids = np.full((candidates.n_queries, k), -1, dtype=np.int64)
        scores = np.full((candidates.n_queries, k), -np.inf, dtype=np.float32)
        ids[:, : order.shape[1]] = np.take_along_axis(candidates.ids, order, axis=1)
        scores[:, : order.shape[1]] = np.take_along_axis(f, order, axis=1)
        return ids, scores

    def _weight_vector(self, legs: tuple[str, ...]) -> np.ndarray:
        if self.weights is None:
            return np.ones(len(legs))
        for leg in self.weights:
            if leg not in legs:
                raise ValueError(f"weights name leg {leg!r}, which is not in candidates {legs}")
        return np.array([self.weights.get(leg, 0.0) for leg in legs])

    def _contributions(self, c: Candidates) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _kernel_args(self, legs: tuple[str, ...]) -> tuple[int, np.ndarray, np.ndarray, float]:
        """(kind, weights, theoretical minima, rrf k) for :func:`fuse_topk`."""
        w = self._weight_vector(legs).astype(np.float64)
        if isinstance(self, ConvexFusion):
            kind = {"minmax": FK.MINMAX, "zscore": FK.ZSCORE, "theoretical": FK.THEORETICAL}
            tmin = np.zeros(len(legs))
            if self.normalization == "theoretical":
                missing = [leg for leg in legs if leg not in self.theoretical_min]
                if missing:
                    raise ValueError(f"theoretical_min has no value for leg {missing[0]!r}")
                tmin = np.array([self.theoretical_min[leg] for leg in legs], np.float64)
            return kind[self.normalization], w, tmin, 0.0
        if isinstance(self, RRF):
            return FK.RRF, w, np.zeros(len(legs)), float(self.k)
        return FK.DBSF, w, np.zeros(len(legs)), 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready config: ``kind``, ``format_version`` and the fields."""
        d: dict[str, Any] = {"kind": self.kind, "format_version": FORMAT_VERSION}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            d[f.name] = dict(v) if isinstance(v, Mapping) else v
        return d


@dataclass(frozen=True)
class ConvexFusion(_Fusion):
    """Convex combination of normalised scores: ``sum_l w_l * norm_l(s_l)``.

    Normalisations use the statistics of each leg's own list for that query:

    * ``"minmax"``: ``(s - min) / (max - min)``; where ``max == min`` a score at (or above)
      the max gets 1.0, like the top of every other list.
    * ``"zscore"``: ``(s - mean) / std``; where ``std == 0`` the list's scores get 0.
    * ``"theoretical"`` (TMM, Bruch et al., TOIS 2023): ``(s - tmin_l) / (max - tmin_l)`` with
      ``tmin_l = theoretical_min[leg]`` (defaults: bm25 0, sparse 0, dense -1 for cosine);
      where ``max <= tmin_l`` the leg has nothing to say and gives 0.

    Missing scores (NaN after lookup): a candidate a leg did not retrieve scored at most that
    leg's list minimum (the list is its top-n), so it gets the leg's normalised minimum, the
    *floor*: 0 for minmax (the list min), ``(min - mean) / std`` for zscore (the list min),
    and 0 for theoretical (the theoretical minimum, the bound TMM trusts over the list's).
    Looked-up scores are clipped from below at the floor, so a looked-up score never counts
    worse than a missing one. Scores above the list max (possible with approximate search) are
    kept, above 1.

    Weights are used as given (they need not sum to 1; scaling them all leaves the ranking
    unchanged); a leg of the candidates not named in ``weights`` gets weight 0.
    """

    weights: Mapping[str, float]
    normalization: Literal["minmax", "zscore", "theoretical"] = "minmax"
    theoretical_min: Mapping[str, float] | None = None
    kind: ClassVar[str] = "convex"

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", _check_weights(self.weights))
        if self.normalization not in _NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {_NORMALIZATIONS}; got {self.normalization!r}"
            )
        tmin = DEFAULT_THEORETICAL_MIN if self.theoretical_min is None else self.theoretical_min
        object.__setattr__(self, "theoretical_min", _mapping(tmin, "theoretical_min"))

    def _contributions(self, c: Candidates) -> np.ndarray:
        s = c.scores.astype(np.float64)
        st = c.stats
        lo, hi, mean, std = (a[..., None] for a in (st.min, st.max, st.mean, st.std))
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.normalization == "minmax":
                x = np.where(hi > lo, (s - lo) / (hi - lo), np.where(s >= hi, 1.0, 0.0))
                floor = np.zeros_like(lo)
            elif self.normalization == "zscore":
                x = np.where(std > 0, (s - mean) / std, 0.0)
                floor = np.where(std > 0, (lo - mean) / std, 0.0)
            else:
                missing = [leg for leg in c.legs if leg not in self.theoretical_min]
                if missing:
                    raise ValueError(f"theoretical_min has no value for leg {missing[0]!r}")
                t = np.array([self.theoretical_min[leg] for leg in c.legs])[:, None, None]
                x = np.where(hi > t, (s - t) / (hi - t), 0.0)
                floor = np.zeros_like(lo)
        return np.fmax(x, floor)  # fmax: NaN (missing) -> floor

    def _cache_key(self) -> tuple:
        return ("convex", self.normalization, tuple(sorted(self.theoretical_min.items())))


@dataclass(frozen=True)
class RRF(_Fusion):
    """Reciprocal rank fusion (Cormack et al., SIGIR 2009): ``sum_l w_l / (k + rank_l)``.

    ``rank_l`` is the 1-based position in leg ``l``'s own list; a candidate the leg did not
    retrieve gets nothing from it, even if a score was looked up. Weights default to 1 per leg
    and are used as given; a leg not named in ``weights`` gets 0.
    """

    k: int = 60
    weights: Mapping[str, float] | None = None
    kind: ClassVar[str] = "rrf"

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", _number(self.k, "k", int, 0))
        if self.weights is not None:
            object.__setattr__(self, "weights", _check_weights(self.weights))

    def _contributions(self, c: Candidates) -> np.ndarray:
        r = c.ranks.astype(np.float64)
        return np.where(c.ranks > 0, 1.0 / (self.k + np.maximum(r, 1.0)), 0.0)

    def _cache_key(self) -> tuple:
        return ("rrf", self.k)


@dataclass(frozen=True)
class DBSF(_Fusion):
    """Distribution-based score fusion, as in Qdrant: per leg ``(s - (mu - 3 sd)) / (6 sd)``.

    ``mu`` and ``sd`` (the sample standard deviation, as Qdrant) come from the leg's own list;
    values are clipped to [0, 1]; where ``sd == 0`` (one hit, or all equal) a score at the mean
    gets 0.5 (as Qdrant), above it 1, below 0. Missing scores give 0 (the floor of the clip).
    Weights default to 1 per leg and are used as given; a leg not named in ``weights`` gets 0.
    """

    weights: Mapping[str, float] | None = None
    kind: ClassVar[str] = "dbsf"

    def __post_init__(self) -> None:
        if self.weights is not None:
            object.__setattr__(self, "weights", _check_weights(self.weights))

    def _contributions(self, c: Candidates) -> np.ndarray:
        s = c.scores.astype(np.float64)
        n = c.stats.count[..., None].astype(np.float64)
        mean = c.stats.mean[..., None]
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.where(n > 1, c.stats.std[..., None] * np.sqrt(n / (n - 1)), 0.0)
            flat = np.where(s > mean, 1.0, np.where(s == mean, 0.5, 0.0))
            x = np.where(sd > 0, (s - (mean - 3.0 * sd)) / (6.0 * sd), flat)
        return np.fmin(np.fmax(x, 0.0), 1.0)  # NaN (missing) -> 0

    def _cache_key(self) -> tuple:
        return ("dbsf",)


Fusion = ConvexFusion | RRF | DBSF
_KINDS: dict[str, type] = {cls.kind: cls for cls in (ConvexFusion, RRF, DBSF)}


def as_fusion(fusion: Any) -> Fusion:
    """A strategy as given, or rebuilt from its :meth:`to_dict` output; TypeError otherwise."""
    if isinstance(fusion, Mapping):
        return fusion_from_dict(fusion)
    if not hasattr(fusion, "fuse"):
        raise TypeError(f"fusion must be a ConvexFusion, RRF or DBSF; got {type(fusion).__name__}")
    return fusion


def fusion_from_dict(d: Mapping[str, Any]) -> Fusion:
    """Rebuild a strategy from :meth:`to_dict` output (e.g. a collection manifest)."""
    if not isinstance(d, Mapping) or "kind" not in d:
        raise ValueError("d must be a mapping with a 'kind' key")
    cls = _KINDS.get(d["kind"])
    if cls is None:
        raise ValueError(f"unknown fusion kind {d['kind']!r}; known: {sorted(_KINDS)}")
    version = d.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"format_version {version!r} is not supported (<= {FORMAT_VERSION})")
    params = {key: v for key, v in d.items() if key not in ("kind", "format_version")}
    known = {f.name for f in fields(cls)}
    for key in params:
        if key not in known:
            raise ValueError(f"unknown field {key!r} for fusion kind {d['kind']!r}")
    return cls(**params)


def _combine(w: np.ndarray, contributions: np.ndarray) -> np.ndarray:
    """``sum_l w[l] * contributions[l]``, float64 (n_queries, m), skipping zero weights."""
    fused = np.zeros(contributions.shape[1:])
    for wl, x in zip(w, contributions):
        if wl:
            fused += wl * x
    return fused


def _top_k(c: Candidates, fused: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (n_queries, min(k, m)) of the best candidates and the float32 fused scores.

    Sorts on one int64 key per candidate: the float32 score's order-preserving bits, then the
    id's rank in the row (smaller id wins), so a partial selection needs no tie handling.
    """
    f = np.where(c.ids >= 0, fused, -np.inf).astype(np.float32) + np.float32(0.0)  # -0 -> +0
    bits = f.view(np.int32).astype(np.int64)
    bits = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    inv = ~((bits << 32) + (0xFFFFFFFF - c._id_rank))  # ascending inv = best first
    if k < inv.shape[1]:
        part = np.argpartition(inv, k - 1, axis=1)[:, :k]
        o = np.argsort(np.take_along_axis(inv, part, axis=1), axis=1)
        return np.take_along_axis(part, o, axis=1), f
    return np.argsort(inv, axis=1), f
