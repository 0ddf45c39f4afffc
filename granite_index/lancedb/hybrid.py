"""Hybrid search over a LanceDB table: the sparse leg (our index), LanceDB's own vector search
(``"dense"``) and optionally LanceDB's full-text search (``"fts"``), fused by the engine's
:class:`~granite_index.search.HybridSearcher`: each is a :class:`~granite_index.search.Leg` over
the table.

Each leg returns its top ``depth`` rows for the query, with ``where`` applied as a prefilter to
every leg (LanceDB's ``prefilter=True`` for dense and FTS; exact filtered search for sparse). A
candidate the sparse or dense leg did not return gets that leg's true score by lookup (its
postings; its stored vector's cosine), as in the engine; FTS has no lookup, so its missing
scores take the fusion's floor. Leg scores are higher-is-better: the SPLADE dot product, cosine
similarity ``1 - cosine distance``, and BM25 ``_score``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from granite_index.fusion import Fusion, as_fusion
from granite_index.lancedb.columns import sparse_column
from granite_index.lancedb.sparse import check_query, check_where, rows, search_ids, synced_index
from granite_index.search import HybridSearcher, Leg, LegHits, check_depth, check_leg_names
from granite_index.validate import check_k

LEGS = ("sparse", "dense", "fts")


def _one_row(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ids.astype(np.int64)[None, :], scores.astype(np.float32)[None, :]


def _no_lookup(ids: np.ndarray) -> np.ndarray:
    return np.full(ids.shape, np.nan, np.float32)


class _TableLeg:
    """A leg over a LanceDB table for one query; ``where`` prefilters every list."""

    name: str

    def __init__(self, where: str | None) -> None:
        self.where = where

    def encode_queries(self, texts: list[str]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def search(self, queries: Any, k: int, *, threads: int | None = None) -> Any:
        raise NotImplementedError("a table leg answers hybrid search only; use retrieve")

    def score(self, queries: Any, ids: np.ndarray) -> np.ndarray:
        return self.retrieve(queries, 1).lookup(ids)


class DenseTableLeg(_TableLeg):
    """LanceDB's own vector search (cosine), with the embedding function of the column."""

    name = "dense"

    def __init__(self, tbl: Any, column: str, function: Any, where: str | None) -> None:
        super().__init__(where)
        self.tbl, self.column, self.function = tbl, column, function

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self.function.compute_query_embeddings_with_retry(texts[0])[0], np.float32
        )

    def retrieve(self, queries: Any, depth: int, *, threads: int | None = None) -> LegHits:
        ids, scores = _dense_leg(self.tbl, self.column, queries, depth, self.where)
        return LegHits(*_one_row(ids, scores), _dense_lookup(self.tbl, self.column, queries))


class FtsTableLeg(_TableLeg):
    """LanceDB's full-text search (BM25 ``_score``); it has no lookup of other rows' scores."""

    name = "fts"

    def __init__(self, tbl: Any, fts_columns: Any, where: str | None) -> None:
        super().__init__(where)
        self.tbl, self.fts_columns = tbl, fts_columns

    def encode_queries(self, texts: list[str]) -> str:
        return texts[0]

    def retrieve(self, queries: Any, depth: int, *, threads: int | None = None) -> LegHits:
        ids, scores = _fts_leg(self.tbl, queries, self.fts_columns, depth, self.where)
        return LegHits(*_one_row(ids, scores), _no_lookup)


class SparseTableLeg(_TableLeg):
    """The engine's SPLADE index over the table's sparse field, synced to the table's version
    (use inside :func:`~granite_index.lancedb.sparse.synced_index`)."""

    name = "sparse"

    def __init__(self, index: Any, ds: Any, function: Any, where: str | None) -> None:
        super().__init__(where)
        self.index, self.ds, self.function = index, ds, function

    def encode_queries(self, texts: list[str]) -> Any:
        return self.function.encode_queries(texts)

    def retrieve(self, queries: Any, depth: int, *, threads: int | None = None) -> LegHits:
        q = queries
        prepared = self.index.prepare((q.indptr, q.indices.astype(np.int64), q.values))
        ids, scores = search_ids(self.index, self.ds, prepared, depth, self.where)
        return LegHits(*_one_row(ids, scores), lambda want: self.index.score(prepared, want))


def vector_column_and_function(
    tbl: Any, vector_column: str | None, embedding: Any
) -> tuple[str, Any]:
    """The vector column to search and the embedding function for the query, checked: the
    function's dimension must equal the column's."""
    configs = tbl.embedding_functions
    schema = tbl.schema
    vec_cols = [
        f.name
        for f in schema
        if pa.types.is_fixed_size_list(f.type) and pa.types.is_floating(f.type.value_type)
    ]
    if vector_column is None:
        cands = list(configs) if configs else vec_cols
        if len(cands) != 1:
            raise ValueError(
                f"give vector_column: table {tbl.name!r} has vector columns {vec_cols}"
                + ("" if cands else " and none has an embedding function")
            )
        vector_column = cands[0]
    if vector_column not in vec_cols:
        raise ValueError(
            f"table {tbl.name!r} has no vector column {vector_column!r}; it has {vec_cols}"
        )
    if embedding is None:
        if vector_column not in configs:
            raise ValueError(
                f"vector column {vector_column!r} has no embedding function in the table's "
                "metadata; pass embedding= (e.g. get_registry().get('granite').create())"
            )
        embedding = configs[vector_column].function
    dim = schema.field(vector_column).type.list_size
    if embedding.ndims() != dim:
        raise ValueError(
            f"the embedding model gives {embedding.ndims()}-d vectors, but column "
            f"{vector_column!r} holds {dim}-d vectors; use the model the table was built with"
        )
    return vector_column, embedding


def _dense_leg(tbl, column, qvec, depth, where):
    res = (
        tbl.search(qvec, vector_column_name=column)
        .distance_type("cosine")
        .where(where, prefilter=True)
        .limit(depth)
        .with_row_id(True)
        .select(["_distance"])
        .to_arrow()
    )
    ids = res.column("_rowid").to_numpy().astype(np.int64)
    return ids, 1.0 - res.column("_distance").to_numpy().astype(np.float32)


def _dense_lookup(tbl, column, qvec):
    q = np.asarray(qvec, np.float32)
    q = q / max(float(np.linalg.norm(q)), 1e-12)

    def lookup(ids: np.ndarray) -> np.ndarray:
        out = np.full(ids.shape, np.nan, np.float32)
        need = ids[ids >= 0]
        if len(need):
            t = tbl.take_row_ids([int(i) for i in need]).select([column]).with_row_id().to_arrow()
            got = t.column("_rowid").to_numpy().astype(np.int64)
            v = np.stack(t.column(column).to_numpy(zero_copy_only=False)).astype(np.float32)
            sims = v @ q / np.maximum(np.linalg.norm(v, axis=1), 1e-12)
            by_id = dict(zip(got.tolist(), sims.tolist()))
            out[ids >= 0] = [by_id.get(int(i), np.nan) for i in need]
        return out

    return lookup


def _fts_leg(tbl, query, fts_columns, depth, where):
    if not any(getattr(i, "index_type", "") == "FTS" for i in tbl.list_indices()):
        raise ValueError(
            f"the 'fts' leg needs a full-text index on table {tbl.name!r}: "
            "tbl.create_fts_index('text') (or create_index with FTS())"
        )
    res = (
        tbl.search(query, query_type="fts", fts_columns=fts_columns)
        .where(where, prefilter=True)
        .limit(depth)
        .with_row_id(True)
        .select(["_score"])
        .to_arrow()
    )
    ids = res.column("_rowid").to_numpy().astype(np.int64)
    return ids, res.column("_score").to_numpy().astype(np.float32)


def hybrid_search(
    tbl: Any,
    query: str,
    k: int = 10,
    *,
    where: str | None = None,
    fusion: Fusion | Mapping[str, Any] | None = None,
    legs: Sequence[str] = ("sparse", "dense"),
    depth: int | None = None,
    sparse: str = "sparse",
    vector_column: str | None = None,
    embedding: Any = None,
    fts_columns: str | list[str] | None = None,
    with_row_id: bool = False,
) -> pa.Table:
    """Fused top-``k`` rows of ``tbl`` for ``query`` over two or three legs.

    Parameters
    ----------
    tbl : lancedb.table.LanceTable
    query : str
    k : int
        Rows to return (> 0).
    where : str, optional
        A Lance SQL filter, applied to every leg before ranking.
    fusion : ConvexFusion, RRF, DBSF or its ``to_dict()``, optional
        Weights name the legs. Default: equal-weight min-max convex combination.
    legs : sequence of {"sparse", "dense", "fts"}
        At least two. ``"fts"`` needs a LanceDB full-text index.
    depth : int, optional
        Candidates per leg (default ``max(k, 100)``); must be >= k.
    sparse : str
        The sparse field's name.
    vector_column, embedding : optional
        The vector column (default: the one with an embedding function) and the function for the
        query (default: the table's own, from its metadata).
    fts_columns : str or list of str, optional
        Columns for the FTS leg.
    with_row_id : bool
        Keep the ``_rowid`` column.

    Returns
    -------
    pyarrow.Table
        The rows, best first, with the table's columns and ``_relevance_score`` (float32).
    """
    query, k, where = check_query(query), check_k(k), check_where(where)
    legs = check_leg_names(legs, LEGS, known=LEGS)
    fusion = as_fusion(fusion) if fusion is not None else None
    depth = check_depth(depth, k)
    table_legs: dict[str, Leg] = {}
    if "dense" in legs:
        column, func = vector_column_and_function(tbl, vector_column, embedding)
        table_legs["dense"] = DenseTableLeg(tbl, column, func, where)
    if "fts" in legs:
        table_legs["fts"] = FtsTableLeg(tbl, fts_columns, where)
    inputs = {name: leg.encode_queries([query]) for name, leg in table_legs.items()}
    if "sparse" not in legs:
        return _fused_rows(tbl, table_legs, inputs, fusion, k, depth, with_row_id)
    function = sparse_column(tbl, sparse).function
    inputs["sparse"] = function.encode_queries([query])  # before the index's lock
    with synced_index(tbl, sparse) as (index, ds):
        table_legs["sparse"] = SparseTableLeg(index, ds, function, where)
        return _fused_rows(tbl, table_legs, inputs, fusion, k, depth, with_row_id)


def _fused_rows(tbl, legs, inputs, fusion, k, depth, with_row_id) -> pa.Table:
    searcher = HybridSearcher(legs, fusion)
    hits = searcher.retrieve(inputs, depth)
    if not any(h.ids.shape[1] for h in hits.values()):
        return rows(tbl, np.zeros(0, np.int64), "_relevance_score", np.zeros(0), with_row_id)
    ids, scores = searcher.fuse(hits, k)
    found = ids[0] >= 0
    return rows(tbl, ids[0][found], "_relevance_score", scores[0][found], with_row_id)
