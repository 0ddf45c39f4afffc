"""LanceDB plugin: granite-index encoders, sparse and hybrid search over LanceDB tables.

Importing this package registers two embedding functions in LanceDB's registry:
``"granite"`` (dense, :class:`GraniteEmbeddings`) and ``"granite-sparse"`` (SPLADE,
:class:`GraniteSparseEmbeddings`). Sparse vectors live in the table as ``<name>_indices`` /
``<name>_values`` list columns (:func:`add_sparse_column`, :func:`add`); :func:`sparse_search`
and :func:`hybrid_search` search them with the engine's own :class:`~granite_index.SparseIndex`
kept in step with the table's versions (:func:`hybrid_search` fuses table legs through the
engine's :class:`~granite_index.search.HybridSearcher`); :class:`GraniteFusion` is a LanceDB
``Reranker`` that fuses LanceDB's own hybrid legs with :mod:`granite_index.fusion`.

Imports: :mod:`granite_index.search`, ``fusion``, ``index``, ``encoders`` and the shared
modules, public names only (never the collection, the jobs or the CLI). Tests: ``tests/lancedb/``.

Examples
--------
>>> import lancedb
>>> from lancedb.embeddings import get_registry
>>> import granite_index.lancedb as gl                       # registers "granite"
>>> func = get_registry().get("granite").create()
"""

from __future__ import annotations

from granite_index.lancedb.columns import SparseColumn, add, add_sparse_column, sparse_column
from granite_index.lancedb.embeddings import GraniteEmbeddings, GraniteSparseEmbeddings
from granite_index.lancedb.hybrid import hybrid_search
from granite_index.lancedb.reranker import GraniteFusion
from granite_index.lancedb.sparse import cached_index, clear_cache, sparse_search

__all__ = [
    "GraniteEmbeddings",
    "GraniteFusion",
    "GraniteSparseEmbeddings",
    "SparseColumn",
    "add",
    "add_sparse_column",
    "cached_index",
    "clear_cache",
    "hybrid_search",
    "sparse_column",
    "sparse_search",
]
