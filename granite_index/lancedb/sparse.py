"""Sparse search over a LanceDB table with the engine's own :class:`~granite_index.SparseIndex`.

Keys and versions
-----------------
The index is an impact-weighted ``SparseIndex`` over a table's sparse field, keyed by Lance row
ids (``_rowid``). It lives in a per-process cache, one per (table URI, field). Before every
search it is brought to the version the table handle sees: the live row ids of that version are
read (a scan of no columns), and the difference with the index's keys gives the rows deleted
(``SparseIndex.delete``) and added (read from the sparse columns of the fragments that hold them,
then ``SparseIndex.add``). This holds whatever changed the table (``add``, ``delete``,
``update``, ``merge_insert``, compaction, a checkout of an older version): a row id names one
stored row for good, and a compaction that moves rows simply shows as deletes plus adds.

Filters
-------
``where`` is evaluated by Lance (``to_table(filter=where, with_row_id=True)``) on the same
version. When the matching rows are few (at most :data:`DIRECT_FRACTION` of the table) only they
are scored, each by its postings (``SparseIndex.score``, bit-identical to search); otherwise the
index is searched ever deeper until ``k`` matching rows are found or the hits run out. Both are
exact: the result is the top-k among the matching rows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from granite_index.index import SparseIndex
from granite_index.lancedb.columns import SparseColumn, csr_from_lists, encode_column, sparse_column
from granite_index.validate import check_k, check_queries

#: score only the rows a filter keeps when they are at most this fraction of the table
DIRECT_FRACTION = 0.25
_CACHE: dict[tuple[str, str], _Synced] = {}
_CACHE_LOCK = threading.Lock()


@dataclass
class _Synced:
    """One cached index and the table version it reflects."""

    config: str
    index: SparseIndex = field(default_factory=lambda: SparseIndex("impact"))
    version: int | None = None
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sorted live row ids
    lock: threading.Lock = field(default_factory=threading.Lock)


def check_query(query: Any) -> str:
    """One query text (the engine's one query check, for a single str)."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a str; got {type(query).__name__}")
    return check_queries(query, "query")[0]


def check_where(where: Any) -> str | None:
    if where is not None and (not isinstance(where, str) or not where.strip()):
        raise ValueError(f"where must be a non-empty SQL filter string or None; got {where!r}")
    return where


def row_ids(ds: Any, where: str | None = None) -> np.ndarray:
    """Row ids (int64, ascending) of the live rows of dataset ``ds`` matching ``where``."""
    try:
        t = ds.to_table(columns=[], with_row_id=True, filter=where)
    except Exception as e:  # Lance raises its own error types for a bad filter
        if where is None:
            raise
        raise ValueError(f"where filter {where!r} failed: {e}") from e
    return np.sort(t.column("_rowid").to_numpy().astype(np.int64))


def _new_rows(ds: Any, ids: np.ndarray, col: SparseColumn):
    """CSR rows of ``ids`` (ascending): the stored sparse columns, or the text encoded where the
    columns are null."""
    fragments = None
    if not ds.has_stable_row_ids:  # a row id is (fragment id << 32) | offset
        wanted = set((ids >> 32).tolist())
        fragments = [f for f in ds.get_fragments() if f.fragment_id in wanted]
    t = ds.scanner(
        columns=[col.indices, col.values], with_row_id=True, fragments=fragments
    ).to_table()
    t = t.filter(pa.array(np.isin(t.column("_rowid").to_numpy().astype(np.int64), ids)))
    t = t.sort_by("_rowid")
    got = t.column("_rowid").to_numpy().astype(np.int64)
    if not np.array_equal(got, ids):
        raise RuntimeError("could not read every new row of the table; is it being rewritten?")
    csr = csr_from_lists(t.column(col.indices), t.column(col.values))
    missing = t.column(col.indices).is_null().to_numpy(zero_copy_only=False)
    if not missing.any():
        return csr
    texts = ds.scanner(
        columns=[col.source_column],
        with_row_id=True,
        fragments=fragments,
        filter=f"{col.indices} IS NULL",
    ).to_table()
    keep = np.isin(texts.column("_rowid").to_numpy().astype(np.int64), ids)
    texts = texts.filter(pa.array(keep)).sort_by("_rowid")
    patch = csr_from_lists(*encode_column(col.function, texts.column(col.source_column)))
    return replace_rows(csr, np.nonzero(missing)[0], patch)


def replace_rows(csr: tuple, rows: np.ndarray, patch: tuple) -> tuple:
    """CSR ``csr`` with rows ``rows`` (ascending, int64 (m,)) replaced by the m rows of
    ``patch``; both are (indptr int64, indices uint32, values float32)."""
    a_ptr, a_ind, a_val = csr
    b_ptr, b_ind, b_val = patch
    start = a_ptr[:-1].copy()
    length = np.diff(a_ptr)
    start[rows] = len(a_ind) + b_ptr[:-1]
    length[rows] = np.diff(b_ptr)
    indptr = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    take = np.repeat(start - indptr[:-1], length) + np.arange(indptr[-1])
    return indptr, np.concatenate([a_ind, b_ind])[take], np.concatenate([a_val, b_val])[take]


@contextmanager
def synced_index(tbl: Any, name: str = "sparse") -> Iterator[tuple[SparseIndex, Any]]:
    """Hold the sparse index of field ``name``, brought up to the version ``tbl`` sees.

    Yields
    ------
    (index, dataset)
        ``dataset`` is the Lance dataset at that version (for filters and reads). The index is
        locked until the ``with`` block ends.
    """
    col = sparse_column(tbl, name)
    ds = tbl.to_lance()
    key = (str(ds.uri), name)
    with _CACHE_LOCK:
        state = _CACHE.get(key)
        if state is None or state.config != col.config:
            state = _CACHE[key] = _Synced(col.config)
    with state.lock:
        if state.version != ds.version:
            try:
                _sync(state, ds, col)
            except BaseException:
                with _CACHE_LOCK:  # half-applied: start afresh next time
                    _CACHE.pop(key, None)
                raise
        yield state.index, ds


def _sync(state: _Synced, ds: Any, col: SparseColumn) -> None:
    """Apply the rows deleted and added between ``state.version`` and ``ds.version``."""
    if state.version is not None and ds.version < state.version:
        # an older version checked out, or the table dropped and re-created (row ids restart):
        # the diff would still be right for the first, not for the second, so rebuild
        state.index, state.keys = SparseIndex("impact"), np.zeros(0, np.int64)
    live = row_ids(ds)
    gone = np.setdiff1d(state.keys, live, assume_unique=True)
    new = np.setdiff1d(live, state.keys, assume_unique=True)
    if len(gone):
        state.index.delete(gone)
    if len(new):
        state.index.add(new, *_new_rows(ds, new, col))
    state.keys, state.version = live, ds.version


def cached_index(tbl: Any, sparse: str = "sparse") -> SparseIndex | None:
    """The sparse index this process keeps for ``tbl``'s field ``sparse`` (as of the last search
    through it), or None before the first one."""
    with _CACHE_LOCK:
        state = _CACHE.get((str(tbl.to_lance().uri), sparse))
    return None if state is None else state.index


def clear_cache() -> None:
    """Forget every cached sparse index (the next search rebuilds from the table)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _top(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` by score descending, ties to the smaller id; drops non-positive scores."""
    keep = scores > 0
    ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order]


def search_ids(
    index: SparseIndex, ds: Any, prepared: Any, k: int, where: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` row ids int64 (n,) and scores float32 (n,), n <= k, among the rows
    matching ``where`` (see module docs)."""
    if where is None:
        res = index.search(prepared, k)
        found = res.ids[0] >= 0
        return res.ids[0][found], res.scores[0][found]
    allowed = row_ids(ds, where)
    if len(allowed) == 0 or len(index) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if len(allowed) <= DIRECT_FRACTION * len(index):
        scores = index.score(prepared, allowed[None, :])[0]
        return _top(allowed, np.nan_to_num(scores, nan=0.0), k)
    depth = min(len(index), max(2 * k, int(np.ceil(2 * k * len(index) / len(allowed)))))
    while True:
        res = index.search(prepared, depth)
        ids, scores = res.ids[0], res.scores[0]
        valid = ids >= 0
        ok = valid & np.isin(ids, allowed)
        if ok.sum() >= k or valid.sum() < depth or depth >= len(index):
            return ids[ok][:k], scores[ok][:k]
        depth = min(len(index), depth * 4)


def rows(tbl: Any, ids: np.ndarray, score_column: str, scores: np.ndarray, with_row_id: bool):
    """The table's rows for ``ids`` in that order, plus ``score_column`` (float32)."""
    if len(ids):
        t = tbl.take_row_ids([int(i) for i in ids]).with_row_id().to_arrow()
        got = t.column("_rowid").to_numpy().astype(np.int64)
        where = {int(r): i for i, r in enumerate(got)}
        t = t.take(pa.array([where[int(i)] for i in ids], pa.int64()))
    else:
        schema = tbl.schema.append(pa.field("_rowid", pa.uint64()))
        t = schema.empty_table()
    t = t.append_column(score_column, pa.array(np.asarray(scores, np.float32), pa.float32()))
    if not with_row_id:
        t = t.drop_columns(["_rowid"])
    return t


def sparse_search(
    tbl: Any,
    query: str,
    k: int = 10,
    *,
    where: str | None = None,
    sparse: str = "sparse",
    with_row_id: bool = False,
) -> pa.Table:
    """Exact top-``k`` rows of ``tbl`` by SPLADE dot product with ``query``.

    Parameters
    ----------
    tbl : lancedb.table.LanceTable
        With a sparse field (see :func:`~granite_index.lancedb.add_sparse_column`).
    query : str
        Encoded with the field's own encoder (from the column metadata).
    k : int
        Rows to return (> 0); fewer when fewer rows share a term with the query.
    where : str, optional
        A Lance SQL filter; the result is the top-k among the rows it keeps.
    sparse : str
        The sparse field's name.
    with_row_id : bool
        Keep the ``_rowid`` column.

    Returns
    -------
    pyarrow.Table
        The rows, best first, with the table's columns and ``_score`` (float32).
    """
    query, k, where = check_query(query), check_k(k), check_where(where)
    q = sparse_column(tbl, sparse).function.encode_queries([query])
    with synced_index(tbl, sparse) as (index, ds):
        prepared = index.prepare((q.indptr, q.indices.astype(np.int64), q.values))
        ids, scores = search_ids(index, ds, prepared, k, where)
    return rows(tbl, ids, "_score", scores, with_row_id)
