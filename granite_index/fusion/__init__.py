"""Hybrid fusion: combine the candidate lists of several retrieval legs into one ranking.

Modules
-------
- :mod:`~granite_index.fusion.candidates`: :class:`Candidates` (the union of the legs' lists,
  each leg's score per candidate, looked up where the leg missed it) and :class:`LegStats`.
- :mod:`~granite_index.fusion.strategies`: :class:`ConvexFusion`, :class:`RRF`, :class:`DBSF`
  (small frozen classes with one ``fuse`` method, each owning its compiled-kernel arguments),
  :func:`fuse_results` (the one-pass compiled path hybrid search runs), (de)serialisation.
- :mod:`~granite_index.fusion.fit`: :func:`fit_fusion`, a grid search on labelled queries.

Imports: :mod:`granite_index._kernels` (the union and fused top-k kernels),
:mod:`granite_index.eval` (metrics) and numpy; no retrieval, no index, no encoder.
Tests: ``tests/fusion/``.
"""

from __future__ import annotations

from granite_index.fusion.candidates import Candidates, LegStats
from granite_index.fusion.fit import FitResult, default_grid, fit_fusion
from granite_index.fusion.strategies import (
    DBSF,
    DEFAULT_THEORETICAL_MIN,
    RRF,
    ConvexFusion,
    Fusion,
    as_fusion,
    fuse_results,
    fusion_from_dict,
)

__all__ = [
    "DBSF",
    "DEFAULT_THEORETICAL_MIN",
    "RRF",
    "Candidates",
    "ConvexFusion",
    "FitResult",
    "Fusion",
    "LegStats",
    "as_fusion",
    "default_grid",
    "fit_fusion",
    "fuse_results",
    "fusion_from_dict",
]
