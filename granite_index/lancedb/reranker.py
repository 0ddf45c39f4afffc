"""``GraniteFusion``: a LanceDB ``Reranker`` that fuses with :mod:`granite_index.fusion`.

``tbl.search(query_type="hybrid").vector(v).text(t).rerank(GraniteFusion(fusion))`` hands the
reranker LanceDB's two lists: the vector leg (named ``"dense"`` here) and the full-text leg
(``"fts"``). LanceDB min-max normalises each list's ``_distance`` / ``_score`` before
``rerank_hybrid`` (or, with ``rerank(normalize="rank")``, turns them into ranks); the dense score
used is ``-_distance`` (higher is better). Our fusion then normalises again, per query, over each
leg's own list. Min-max, z-score, DBSF and RRF do not change under a positive affine map of a
list, so LanceDB's normalisation leaves their result as it would be on the raw scores; the
``"theoretical"`` normalisation needs raw scores and is refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa
from lancedb.rerankers import Reranker

from granite_index.fusion import Candidates, ConvexFusion, Fusion, fusion_from_dict

_LEGS = ("dense", "fts")


def _check_fusion(fusion: Any) -> Fusion:
    if fusion is None:
        return ConvexFusion({"dense": 1.0, "fts": 1.0}, "minmax")
    if isinstance(fusion, dict):
        fusion = fusion_from_dict(fusion)
    if not hasattr(fusion, "fuse") or not dataclasses.is_dataclass(fusion):
        raise TypeError(f"fusion must be a ConvexFusion, RRF or DBSF; got {type(fusion).__name__}")
    if getattr(fusion, "normalization", None) == "theoretical":
        raise ValueError(
            "GraniteFusion cannot use the 'theoretical' normalisation: LanceDB hands the reranker "
            "min-max normalised scores; use 'minmax', 'zscore', RRF or DBSF"
        )
    for leg in getattr(fusion, "weights", None) or {}:
        if leg not in _LEGS:
            raise ValueError(f"fusion weights name leg {leg!r}; LanceDB's legs are {_LEGS}")
    return fusion


def _leg(
    table: pa.Table | None, column: str, sign: float, by_position: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64 (1, n), scores float32 (1, n)) best first, from one LanceDB list; ids are
    row ids, or row positions in ``table`` when ``by_position``."""
    if table is None or table.num_rows == 0:
        return np.zeros((1, 0), np.int64), np.zeros((1, 0), np.float32)
    if by_position:
        ids = np.arange(table.num_rows, dtype=np.int64)
    elif "_rowid" not in table.column_names:
        raise ValueError("GraniteFusion needs '_rowid' in the results: search().with_row_id(True)")
    else:
        ids = table.column("_rowid").to_numpy().astype(np.int64)
    scores = sign * table.column(column).to_numpy(zero_copy_only=False).astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    return ids[order][None, :], scores[order][None, :]


class GraniteFusion(Reranker):
    """Fuse LanceDB's hybrid legs with a granite-index fusion strategy.

    Parameters
    ----------
    fusion : ConvexFusion, RRF, DBSF or its ``to_dict()``, optional
        Weights name the legs ``"dense"`` and ``"fts"``. Default: equal-weight min-max convex
        combination.
    return_score : {"relevance", "all"}
        ``"all"`` keeps LanceDB's ``_distance`` / ``_score`` next to ``_relevance_score``.

    Examples
    --------
    >>> from granite_index.fusion import ConvexFusion
    >>> rr = GraniteFusion(ConvexFusion({"dense": 0.7, "fts": 0.3}, "zscore"))
    >>> tbl.search(query_type="hybrid").vector(v).text(q).rerank(rr).limit(10)  # doctest: +SKIP
    """

    def __init__(self, fusion: Fusion | dict | None = None, return_score: str = "relevance"):
        super().__init__(return_score)
        self.fusion = _check_fusion(fusion)

    def __str__(self) -> str:
        return f"GraniteFusion({self.fusion!r})"

    def _fused(self, lists: dict[str, tuple[np.ndarray, np.ndarray]], fusion: Fusion):
        """All candidates, fused: (row ids int64 (m,), scores float32 (m,)), best first."""
        cands = Candidates.from_legs(lists)
        if cands.m == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ids, scores = fusion.fuse(cands, cands.m)
        found = ids[0] >= 0
        return ids[0][found], scores[0][found]

    def _ordered(self, merged: pa.Table, ids: np.ndarray, scores: np.ndarray) -> pa.Table:
        pos = {int(r): i for i, r in enumerate(merged.column("_rowid").to_numpy())}
        out = merged.take(pa.array([pos[int(i)] for i in ids], pa.int64()))
        return out.append_column("_relevance_score", pa.array(scores, pa.float32()))

    def rerank_hybrid(
        self, query: str, vector_results: pa.Table, fts_results: pa.Table
    ) -> pa.Table:
        """Fuse the vector list (``-_distance``) and the FTS list (``_score``)."""
        lists = {
            "dense": _leg(vector_results, "_distance", -1.0),
            "fts": _leg(fts_results, "_score", 1.0),
        }
        ids, scores = self._fused(lists, self.fusion)
        if self.score == "all":
            merged = self._merge_and_keep_scores(vector_results, fts_results)
        else:
            merged = self.merge_results(vector_results, fts_results)
        out = self._ordered(merged, ids, scores)
        return self._keep_relevance_score(out) if self.score == "relevance" else out

    def _one_leg(self, table: pa.Table, leg: str, column: str, sign: float) -> pa.Table:
        if table.num_rows == 0:
            return self._handle_empty_results(table)
        weights = {leg: 1.0}
        fusion = dataclasses.replace(self.fusion, weights=weights)
        pos, scores = self._fused({leg: _leg(table, column, sign, by_position=True)}, fusion)
        out = table.take(pa.array(pos, pa.int64()))
        out = out.append_column("_relevance_score", pa.array(scores, pa.float32()))
        return self._keep_relevance_score(out) if self.score == "relevance" else out

    def rerank_vector(self, query: str, vector_results: pa.Table) -> pa.Table:
        """One leg: ``_relevance_score`` is the fusion's per-query normalised ``-_distance``."""
        return self._one_leg(vector_results, "dense", "_distance", -1.0)

    def rerank_fts(self, query: str, fts_results: pa.Table) -> pa.Table:
        """One leg: ``_relevance_score`` is the fusion's per-query normalised ``_score``."""
        return self._one_leg(fts_results, "fts", "_score", 1.0)
