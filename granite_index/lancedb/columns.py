"""Sparse vectors in a LanceDB table: two Arrow list columns per sparse field.

A sparse field ``name`` (default ``"sparse"``) is stored as ``<name>_indices: list<uint32>``
(term ids, ascending) and ``<name>_values: list<float32>`` (their weights), one row per document.
The encoder that made them and the text column they came from are kept in the ``granite_sparse``
metadata of the ``<name>_indices`` field, in LanceDB's own format (registry name + model dump), so
a new process re-creates the query encoder from the table alone.

A row whose sparse columns are null (added with a plain ``tbl.add`` that did not fill them) is
encoded from its text when the sparse index catches up with the table (in memory; see
:mod:`granite_index.lancedb.sparse`); :func:`add` writes them at add time instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.embeddings import get_registry

from granite_index.lancedb.embeddings import GraniteSparseEmbeddings

META_KEY = b"granite_sparse"
INDICES_TYPE = pa.list_(pa.uint32())
VALUES_TYPE = pa.list_(pa.float32())
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SparseColumn:
    """A sparse field of a table: its two columns, source text column and encoder."""

    name: str
    source_column: str
    function: GraniteSparseEmbeddings
    config: str  # the stored metadata, as JSON text (a change means: rebuild the index)

    @property
    def indices(self) -> str:
        return f"{self.name}_indices"

    @property
    def values(self) -> str:
        return f"{self.name}_values"


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"sparse name must be an identifier ([A-Za-z_][A-Za-z0-9_]*); got {name!r}"
        )
    return name


def _schema(tbl: Any) -> pa.Schema:
    if not hasattr(tbl, "schema") or not hasattr(tbl, "to_lance"):
        raise TypeError(f"tbl must be a local LanceDB table; got {type(tbl).__name__}")
    return tbl.schema


def sparse_column(tbl: Any, name: str = "sparse") -> SparseColumn:
    """The sparse field ``name`` of ``tbl``, checked.

    Raises
    ------
    ValueError
        The table lacks ``<name>_indices`` / ``<name>_values``, or they carry no encoder metadata.
    TypeError
        The columns have other types than ``list<uint32>`` / ``list<float32>``.
    """
    name = _check_name(name)
    schema = _schema(tbl)
    ind, val = f"{name}_indices", f"{name}_values"
    missing = [c for c in (ind, val) if c not in schema.names]
    if missing:
        raise ValueError(
            f"table {tbl.name!r} has no sparse field {name!r} (missing columns {missing}; it has "
            f"{schema.names}); add one with add_sparse_column(tbl, text_column=..., name={name!r})"
        )
    for col, want in ((ind, INDICES_TYPE), (val, VALUES_TYPE)):
        got = schema.field(col).type
        if not (pa.types.is_list(got) or pa.types.is_large_list(got)) or (
            got.value_type != want.value_type
        ):
            raise TypeError(f"column {col!r} must be {want}; got {got}")
    meta = (schema.field(ind).metadata or {}).get(META_KEY)
    if meta is None:
        raise ValueError(
            f"column {ind!r} has no {META_KEY.decode()!r} metadata naming its encoder; "
            "write it with add_sparse_column()"
        )
    conf = json.loads(meta.decode("utf-8"))
    function = get_registry().get(conf["name"]).create(**conf["model"])
    return SparseColumn(name, conf["source_column"], function, meta.decode("utf-8"))


def _field_metadata(function: GraniteSparseEmbeddings, text_column: str) -> dict[bytes, bytes]:
    conf = {
        "name": "granite-sparse",
        "model": function.safe_model_dump(),
        "source_column": text_column,
    }
    return {META_KEY: json.dumps(conf, sort_keys=True).encode("utf-8")}


def encode_column(function: GraniteSparseEmbeddings, texts: Any) -> tuple[pa.Array, pa.Array]:
    """Texts → (``list<uint32>`` indices, ``list<float32>`` values), one row per text.

    A null or blank text gets empty lists (it matches no query).
    """
    texts = texts.to_pylist() if hasattr(texts, "to_pylist") else list(texts)
    keep = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
    lengths = np.zeros(len(texts), np.int64)
    indices = np.zeros(0, np.uint32)
    values = np.zeros(0, np.float32)
    if keep:
        vecs = function.encode_documents([texts[i] for i in keep])
        lengths[keep] = np.diff(vecs.indptr)
        indices, values = vecs.indices, vecs.values
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    return (
        pa.ListArray.from_arrays(offsets, pa.array(indices, pa.uint32())),
        pa.ListArray.from_arrays(offsets, pa.array(values, pa.float32())),
    )


def add_sparse_column(
    tbl: Any,
    text_column: str = "text",
    *,
    name: str = "sparse",
    encoder: GraniteSparseEmbeddings | None = None,
    batch_size: int = 256,
) -> SparseColumn:
    """Encode ``text_column`` of every row with SPLADE and store it as a sparse field.

    Writes ``<name>_indices`` / ``<name>_values`` through Lance's ``add_columns`` (a new table
    version; row ids are kept), then moves ``tbl`` to the latest version.

    Parameters
    ----------
    tbl : lancedb.table.LanceTable
    text_column : str
        A string column.
    name : str
        The sparse field's name (an identifier).
    encoder : GraniteSparseEmbeddings, optional
        Default: ``get_registry().get("granite-sparse").create()`` (bundled SPLADE-tiny).
    batch_size : int
        Rows encoded per batch.
    """
    name = _check_name(name)
    schema = _schema(tbl)
    if text_column not in schema.names:
        raise ValueError(f"table {tbl.name!r} has no column {text_column!r}; it has {schema.names}")
    if not pa.types.is_string(schema.field(text_column).type) and not pa.types.is_large_string(
        schema.field(text_column).type
    ):
        raise TypeError(
            f"column {text_column!r} must hold strings; got {schema.field(text_column).type}"
        )
    taken = [c for c in (f"{name}_indices", f"{name}_values") if c in schema.names]
    if taken:
        raise ValueError(f"table {tbl.name!r} already has columns {taken}")
    if encoder is None:
        encoder = GraniteSparseEmbeddings.create()
    if not isinstance(encoder, GraniteSparseEmbeddings):
        raise TypeError(f"encoder must be a GraniteSparseEmbeddings; got {type(encoder).__name__}")
    out_schema = pa.schema(
        [
            pa.field(
                f"{name}_indices", INDICES_TYPE, metadata=_field_metadata(encoder, text_column)
            ),
            pa.field(f"{name}_values", VALUES_TYPE),
        ]
    )

    @lance.batch_udf(output_schema=out_schema)
    def _encode(batch: pa.RecordBatch) -> pa.RecordBatch:
        ind, val = encode_column(encoder, batch.column(text_column))
        return pa.RecordBatch.from_arrays([ind, val], schema=out_schema)

    tbl.to_lance().add_columns(_encode, read_columns=[text_column], batch_size=batch_size)
    tbl.checkout_latest()
    return sparse_column(tbl, name)


def add(tbl: Any, data: Any, *, sparse: str = "sparse") -> None:
    """``tbl.add(data)`` with the sparse field ``sparse`` encoded from its text column.

    ``data``: a list of dicts, a pandas DataFrame or an Arrow table; its dense vectors are
    LanceDB's business (its embedding functions fill them as for any ``tbl.add``).
    """
    col = sparse_column(tbl, sparse)
    if isinstance(data, list):
        data = pa.Table.from_pylist(data)
    elif not isinstance(data, pa.Table):
        data = pa.Table.from_pandas(data, preserve_index=False)
    if col.source_column not in data.column_names:
        raise ValueError(f"data has no {col.source_column!r} column to encode")
    ind, val = encode_column(col.function, data.column(col.source_column))
    for c in (col.indices, col.values):
        if c in data.column_names:
            data = data.drop_columns([c])
    tbl.add(data.append_column(col.indices, ind).append_column(col.values, val))


def csr_from_lists(indices: pa.ChunkedArray | pa.Array, values: pa.ChunkedArray | pa.Array):
    """List columns → CSR (indptr int64 (n + 1,), indices uint32 (nnz,), values float32 (nnz,)).

    Null rows count as empty.
    """
    if isinstance(indices, pa.ChunkedArray):
        indices = indices.combine_chunks()
        values = values.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(indices), 0).to_numpy(zero_copy_only=False)
    if not np.array_equal(lengths, pc.fill_null(pc.list_value_length(values), 0).to_numpy()):
        raise ValueError("sparse indices and values lists differ in length")
    indptr = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    flat_i = pc.list_flatten(indices).to_numpy(zero_copy_only=False).astype(np.uint32)
    flat_v = pc.list_flatten(values).to_numpy(zero_copy_only=False).astype(np.float32)
    return indptr, flat_i, flat_v
