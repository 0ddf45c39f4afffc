"""Hybrid fusion: combine the candidate lists of several retrieval legs into one ranking.

Pure numpy, vectorised over queries; no retrieval happens here. This module holds the
strategies; :mod:`granite_index.fusion.candidates` the candidates they fuse. A leg is any retriever
(``"bm25"``, ``"sparse"``, ``"dense"``, ...). :meth:`Candidates.from_legs` builds the union of
the legs' hits; a strategy (:class:`ConvexFusion`, :class:`RRF`, :class:`DBSF`) fuses it into
``(ids, scores)`` of shape ``(n_queries, k)``, best first, padded with ``-1`` / ``-inf``;
:func:`granite_index.fusion.fit.fit_fusion` picks a strategy and its weights on labelled queries.

Ties in the fused score (compared as the float32 values returned) go to the smaller id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

import numpy as np

from granite_index._kernels import fusion as FK
from granite_index.fusion.candidates import Candidates, stack_lists, union_lists

FORMAT_VERSION = 1
DEFAULT_THEORETICAL_MIN: dict[str, float] = {"bm25": 0.0, "sparse": 0.0, "dense": -1.0}
NORMALIZATIONS = ("minmax", "zscore", "theoretical")


def check_number(v: Any, name: str, kind: type = float, low: float = -math.inf) -> Any:
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
    return {leg: check_number(v, f"{name}[{leg!r}]", float, low) for leg, v in d.items()}


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
        k = check_number(k, "k", int, 1)
        fused = combine(self.weight_vector(candidates.legs), self.contributions(candidates))
        order, f = top_k_positions(candidates, fused, k)
        ids = np.full((candidates.n_queries, k), -1, dtype=np.int64)
        scores = np.full((candidates.n_queries, k), -np.inf, dtype=np.float32)
        ids[:, : order.shape[1]] = np.take_along_axis(candidates.ids, order, axis=1)
        scores[:, : order.shape[1]] = np.take_along_axis(f, order, axis=1)
        return ids, scores

    def weight_vector(self, legs: tuple[str, ...]) -> np.ndarray:
        if self.weights is None:
            return np.ones(len(legs))
        for leg in self.weights:
            if leg not in legs:
                raise ValueError(f"weights name leg {leg!r}, which is not in candidates {legs}")
        return np.array([self.weights.get(leg, 0.0) for leg in legs])

    def contributions(self, c: Candidates) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def kernel_args(
        self, legs: tuple[str, ...]
    ) -> tuple[int, np.ndarray, np.ndarray, float]:  # pragma: no cover - abstract
        """(kind, weights, theoretical minima, rrf k) for :func:`~granite_index._kernels.fusion.fuse_topk`."""
        raise NotImplementedError

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
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}; got {self.normalization!r}"
            )
        tmin = DEFAULT_THEORETICAL_MIN if self.theoretical_min is None else self.theoretical_min
        object.__setattr__(self, "theoretical_min", _mapping(tmin, "theoretical_min"))

    def contributions(self, c: Candidates) -> np.ndarray:
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

    def kernel_args(self, legs: tuple[str, ...]) -> tuple[int, np.ndarray, np.ndarray, float]:
        kind = {"minmax": FK.MINMAX, "zscore": FK.ZSCORE, "theoretical": FK.THEORETICAL}
        tmin = np.zeros(len(legs))
        if self.normalization == "theoretical":
            missing = [leg for leg in legs if leg not in self.theoretical_min]
            if missing:
                raise ValueError(f"theoretical_min has no value for leg {missing[0]!r}")
            tmin = np.array([self.theoretical_min[leg] for leg in legs], np.float64)
        return kind[self.normalization], self.weight_vector(legs).astype(np.float64), tmin, 0.0

    def contribution_key(self) -> tuple:
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
        object.__setattr__(self, "k", check_number(self.k, "k", int, 0))
        if self.weights is not None:
            object.__setattr__(self, "weights", _check_weights(self.weights))

    def contributions(self, c: Candidates) -> np.ndarray:
        r = c.ranks.astype(np.float64)
        return np.where(c.ranks > 0, 1.0 / (self.k + np.maximum(r, 1.0)), 0.0)

    def kernel_args(self, legs: tuple[str, ...]) -> tuple[int, np.ndarray, np.ndarray, float]:
        w = self.weight_vector(legs).astype(np.float64)
        return FK.RRF, w, np.zeros(len(legs)), float(self.k)

    def contribution_key(self) -> tuple:
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

    def contributions(self, c: Candidates) -> np.ndarray:
        s = c.scores.astype(np.float64)
        n = c.stats.count[..., None].astype(np.float64)
        mean = c.stats.mean[..., None]
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.where(n > 1, c.stats.std[..., None] * np.sqrt(n / (n - 1)), 0.0)
            flat = np.where(s > mean, 1.0, np.where(s == mean, 0.5, 0.0))
            x = np.where(sd > 0, (s - (mean - 3.0 * sd)) / (6.0 * sd), flat)
        return np.fmin(np.fmax(x, 0.0), 1.0)  # NaN (missing) -> 0

    def kernel_args(self, legs: tuple[str, ...]) -> tuple[int, np.ndarray, np.ndarray, float]:
        w = self.weight_vector(legs).astype(np.float64)
        return FK.DBSF, w, np.zeros(len(legs)), 0.0

    def contribution_key(self) -> tuple:
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


def combine(w: np.ndarray, contributions: np.ndarray) -> np.ndarray:
    """``sum_l w[l] * contributions[l]``, float64 (n_queries, m), skipping zero weights."""
    fused = np.zeros(contributions.shape[1:])
    for wl, x in zip(w, contributions):
        if wl:
            fused += wl * x
    return fused


def top_k_positions(c: Candidates, fused: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (n_queries, min(k, m)) of the best candidates and the float32 fused scores.

    Sorts on one int64 key per candidate: the float32 score's order-preserving bits, then the
    id's rank in the row (smaller id wins), so a partial selection needs no tie handling.
    """
    f = np.where(c.ids >= 0, fused, -np.inf).astype(np.float32) + np.float32(0.0)  # -0 -> +0
    bits = f.view(np.int32).astype(np.int64)
    bits = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    inv = ~((bits << 32) + (0xFFFFFFFF - c.id_rank))  # ascending inv = best first
    if k < inv.shape[1]:
        part = np.argpartition(inv, k - 1, axis=1)[:, :k]
        o = np.argsort(np.take_along_axis(inv, part, axis=1), axis=1)
        return np.take_along_axis(part, o, axis=1), f
    return np.argsort(inv, axis=1), f


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
    k = check_number(k, "k", int, 1)
    legs, ids, scores, valid = stack_lists(results, check=False)
    ids_u, scores_u, ranks_u = union_lists(legs, ids, scores, valid, lookup)
    kind, w, tmin, rrf_k = fusion.kernel_args(legs)
    return FK.fuse_topk(ids_u, scores_u, ranks_u, kind, w, tmin, rrf_k, k)
