"""granite-index: a retrieval indexing engine for Granite-style dense and sparse encoders.

The main noun is :class:`Collection` (documents + vectors + indexes in one folder); its parts
(:class:`DenseEncoder`, :class:`SparseEncoder`, :class:`DenseIndex`, :class:`SparseIndex`,
:class:`Analyzer`) are usable alone. Every retriever returns a :class:`SearchResult`.

Layers, lowest first (each imports only those below it; ``lint-imports`` checks it): the shared
modules (:mod:`~granite_index.types`, :mod:`~granite_index.errors`, :mod:`~granite_index.validate`,
:mod:`~granite_index.fileio`, :mod:`~granite_index.eval`); :mod:`~granite_index._kernels`;
:mod:`~granite_index.encoders`; :mod:`~granite_index.index` and :mod:`~granite_index.fusion`;
:mod:`~granite_index.search`; :mod:`~granite_index.collection`; :mod:`~granite_index.jobs` and
:mod:`~granite_index.lancedb`; :mod:`~granite_index.cli`. See the README's "Architecture".
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from granite_index.errors import (
    ConflictError,
    DuplicateIdError,
    FormatVersionError,
    GraniteIndexError,
    LockTimeoutError,
    ModelNotFoundError,
    NotACollectionError,
    UnknownIdError,
    UnsupportedPathError,
)
from granite_index.types import SearchResult, SparseVectors

# loaded on first use, so that `from granite_index import SparseIndex` does not import torch
_LAZY = {
    "Collection": "granite_index.collection",
    "DenseSpec": "granite_index.collection",
    "Bm25Spec": "granite_index.collection",
    "SpladeSpec": "granite_index.collection",
    "DenseIndex": "granite_index.index.dense",
    "DenseEncoder": "granite_index.encoders.dense",
    "SparseEncoder": "granite_index.encoders.sparse",
    "DEFAULT_DENSE_MODEL": "granite_index.encoders.resolve",
    "DEFAULT_SPARSE_MODEL": "granite_index.encoders.resolve",
    "resolve_model": "granite_index.encoders.resolve",
    "Analyzer": "granite_index.encoders.analyzer",
    "SparseIndex": "granite_index.index.sparse",
}

if TYPE_CHECKING:  # pragma: no cover
    from granite_index.collection import Bm25Spec, Collection, DenseSpec, SpladeSpec
    from granite_index.encoders.analyzer import Analyzer
    from granite_index.encoders.dense import DenseEncoder
    from granite_index.encoders.resolve import (
        DEFAULT_DENSE_MODEL,
        DEFAULT_SPARSE_MODEL,
        resolve_model,
    )
    from granite_index.encoders.sparse import SparseEncoder
    from granite_index.index.dense import DenseIndex
    from granite_index.index.sparse import SparseIndex


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "DEFAULT_DENSE_MODEL",
    "DEFAULT_SPARSE_MODEL",
    "Analyzer",
    "Bm25Spec",
    "Collection",
    "ConflictError",
    "DenseEncoder",
    "DenseIndex",
    "DenseSpec",
    "DuplicateIdError",
    "FormatVersionError",
    "GraniteIndexError",
    "LockTimeoutError",
    "ModelNotFoundError",
    "NotACollectionError",
    "SearchResult",
    "SparseEncoder",
    "SparseIndex",
    "SparseVectors",
    "SpladeSpec",
    "UnknownIdError",
    "UnsupportedPathError",
    "resolve_model",
]
