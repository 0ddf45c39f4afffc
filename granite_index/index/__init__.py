"""Indexes over int64 keys: the sparse inverted index and the FAISS dense index.

Modules
-------
- :mod:`~granite_index.index.sparse`: :class:`SparseIndex` (BM25 over term frequencies with exact
  global statistics, or dot products over learned-sparse impacts), its queries, save / load.
- :mod:`~granite_index.index.segment`: immutable postings segments and the merge policy.
- :mod:`~granite_index.index.queries`: the sparse index's query input (CSR checks, prepared
  queries).
- :mod:`~granite_index.index.dense`: :class:`DenseIndex` (append-only segments, deletes, merge
  policy, save / load); :mod:`~granite_index.index.dense_search` its search verbs (exact, IVF
  across segments, HNSW, int8 / binary codes with rescoring, filters, score lookup, the
  one-product scan for hybrid search); :mod:`~granite_index.index.dense_segment` one segment.
- :mod:`~granite_index.index.idmap`: a collection's id ↔ key map, in memory-mapped segments.
- :mod:`~granite_index.index.gpu`: exact flat search on a GPU (faiss-gpu, else torch).
- :mod:`~granite_index.index.positions`: the sorted key → position lookup both indexes use.
- :mod:`~granite_index.index.pages`: releasing a memory map's resident pages.
- :mod:`~granite_index.index.listing`: what the segmented indexes share on disk (deletion files,
  a commit's listing of segments, folder identity).

Imports: :mod:`granite_index._kernels`, the BM25 analyzer of :mod:`granite_index.encoders`, and the
shared :mod:`granite_index.types`, ``errors``, ``validate``; never torch (except the optional GPU
path), never documents or storage. Tests: ``tests/index/``.
"""

from __future__ import annotations

import importlib
from typing import Any

# lazy, so that the sparse index loads without faiss and the dense one without numba kernels
_EXPORTS = {
    "Bm25Stats": "granite_index.index.queries",
    "DenseIndex": "granite_index.index.dense",
    "DenseIndexConfig": "granite_index.index.dense",
    "IdMap": "granite_index.index.idmap",
    "PreparedQueries": "granite_index.index.sparse",
    "SparseIndex": "granite_index.index.sparse",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
