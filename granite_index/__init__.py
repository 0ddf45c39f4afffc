"""granite-index: a retrieval indexing engine for Granite-style dense and sparse encoders.

The main noun is :class:`Collection` (documents + vectors + indexes in one folder); its parts
(:class:`DenseEncoder`, :class:`SparseEncoder`, :class:`DenseIndex`, :class:`SparseIndex`, :class:`Analyzer`) are usable
alone. Every retriever returns a
:class:`SearchResult`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from granite_index.errors import (
    DuplicateIdError,
    FormatVersionError,
    GraniteIndexError,
    ModelNotFoundError,
    NotACollectionError,
    UnknownIdError,
)
from granite_index.result import SearchResult

# loaded on first use, so that `from granite_index import SparseIndex` does not import torch
_LAZY = {
    "Collection": "granite_index.collection",
    "DenseIndex": "granite_index.dense_index",
    "DenseEncoder": "granite_index.encoders.dense",
    "SparseEncoder": "granite_index.encoders.sparse",
    "DEFAULT_DENSE_MODEL": "granite_index.encoders.resolve",
    "DEFAULT_SPARSE_MODEL": "granite_index.encoders.resolve",
    "resolve_model": "granite_index.encoders.resolve",
    "Analyzer": "granite_index.encoders.analyzer",
    "SparseIndex": "granite_index.sparse_index",
}

if TYPE_CHECKING:  # pragma: no cover
    from granite_index.collection import Collection
    from granite_index.dense_index import DenseIndex
    from granite_index.encoders.analyzer import Analyzer
    from granite_index.encoders.dense import DenseEncoder
    from granite_index.encoders.resolve import (
        DEFAULT_DENSE_MODEL,
        DEFAULT_SPARSE_MODEL,
        resolve_model,
    )
    from granite_index.encoders.sparse import SparseEncoder
    from granite_index.sparse_index import SparseIndex


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
    "Collection",
    "DenseEncoder",
    "DenseIndex",
    "DuplicateIdError",
    "FormatVersionError",
    "GraniteIndexError",
    "ModelNotFoundError",
    "NotACollectionError",
    "SearchResult",
    "SparseEncoder",
    "SparseIndex",
    "UnknownIdError",
    "resolve_model",
]
