"""granite-index: a retrieval indexing engine for Granite-style dense and sparse encoders.

The main noun is :class:`Collection` (documents + vectors + indexes in one folder); its parts
(:class:`DenseEncoder`, :class:`DenseIndex`, :class:`SparseIndex`, :class:`Analyzer`) are usable
alone. Every retriever returns a
:class:`SearchResult`.
"""

from granite_index.collection import Collection
from granite_index.dense_index import DenseIndex
from granite_index.encoders import DEFAULT_DENSE_MODEL, DenseEncoder, resolve_model
from granite_index.encoders.analyzer import Analyzer
from granite_index.errors import (
    DuplicateIdError,
    FormatVersionError,
    GraniteIndexError,
    ModelNotFoundError,
    NotACollectionError,
    UnknownIdError,
)
from granite_index.result import SearchResult
from granite_index.sparse_index import SparseIndex

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_DENSE_MODEL",
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
    "SparseIndex",
    "UnknownIdError",
    "resolve_model",
]
