"""Documents as Arrow tables: input checks, the rows written to a collection's Lance dataset,
rows read back by key, and search hits joined with their documents."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from granite_index.collection.store import docs_schema
from granite_index.validate import as_list

if TYPE_CHECKING:  # pragma: no cover
    import lance

    from granite_index.types import SearchResult


def split_table(table: Any) -> tuple[list[Any], list[Any], Any]:
    """A DataFrame / Arrow table with ``id`` and ``text`` columns → (ids, texts, metadata table)."""
    if hasattr(table, "to_pandas") and not isinstance(table, pa.Table):
        table = table.to_pandas()
    if not isinstance(table, pa.Table):
        if hasattr(table, "columns") and hasattr(table, "iloc"):
            table = pa.Table.from_pandas(table, preserve_index=False)
        else:
            raise TypeError(
                "texts is required unless the first argument is a table with id and text columns"
            )
    for col in ("id", "text"):
        if col not in table.column_names:
            raise ValueError(f"the table has no {col!r} column; columns are {table.column_names}")
    rest = table.drop_columns(["id", "text"])
    return (
        table.column("id").to_pylist(),
        table.column("text").to_pylist(),
        rest if rest.num_columns else None,
    )


#: column names of ``docs.lance`` a metadata field cannot take (it stays in the JSON only)
RESERVED = frozenset({"_key", "id", "text", "metadata", "vector"})


def metadata_records(metadata: Any, n: int) -> list[dict | None]:
    """``metadata`` (None, list of dict, DataFrame or Arrow table) as ``n`` records."""
    if metadata is None:
        return [None] * n
    if isinstance(metadata, pa.Table):
        records = metadata.to_pylist()
    elif hasattr(metadata, "to_dict") and hasattr(metadata, "columns"):  # pandas DataFrame
        records = metadata.to_dict(orient="records")
    else:
        records = as_list(metadata, "metadata")
    if len(records) != n:
        raise ValueError(f"metadata has {len(records)} records for {n} documents")
    return records


def typed_columns(records: list[dict | None], schema: pa.Schema | None) -> dict[str, pa.Array]:
    """Metadata fields as typed Arrow columns, so that filters can read them.

    ``schema`` is the documents' dataset schema (None before the collection's first add): its
    fields beyond the reserved ones are the typed metadata columns, filled from ``records`` (null
    where a record lacks the field). Fields it lacks are inferred from ``records`` when they are
    uniform: fields of scalar type (numbers, booleans, strings, dates, times) become new columns
    (after the schema's, in the order the records name them; the caller adds them to the
    dataset); other fields, and every new field when the records disagree on a type, stay in the
    JSON only.
    """
    out: dict[str, pa.Array] = {}
    known = set(RESERVED)
    if schema is not None:
        for f in schema:
            known.add(f.name)
            if f.name in RESERVED:
                continue
            values = [None if r is None else _plain(r.get(f.name)) for r in records]
            try:
                out[f.name] = pa.array(values, type=f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
                raise TypeError(
                    f"metadata field {f.name!r} must hold {f.type} values in this collection "
                    f"(typed by its first documents): {exc}"
                ) from exc
    rows = [{k: _plain(v) for k, v in r.items() if k not in known} if r else {} for r in records]
    if not any(rows):
        return out
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return out
    for f in table.schema:
        if _scalar(f.type):
            out[f.name] = table.column(f.name).combine_chunks()
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _scalar(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or pa.types.is_temporal(t)
    )


def metadata_json(metadata: Any, n: int) -> list[str | None]:
    """``metadata`` as one JSON text (or None) per document."""
    records = metadata_records(metadata, n)
    out: list[str | None] = []
    for i, rec in enumerate(records):
        if rec is not None and not isinstance(rec, dict):
            raise TypeError(f"metadata[{i}] must be a dict or None; got {type(rec).__name__}")
        try:
            out.append(None if rec is None else json.dumps(rec, default=_json_default))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metadata[{i}] is not JSON-serialisable: {exc}") from exc
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def docs_table(
    keys: np.ndarray,
    ids: list[Any],
    texts: list[str],
    meta: list[str | None],
    vectors: np.ndarray | None,
    id_type: str,
    typed: dict[str, pa.Array] | None = None,
) -> pa.Table:
    """The rows of ``docs.lance`` for new documents: ``_key``, ``id``, ``text``, ``metadata``
    (JSON), ``vector`` (only given for collections that store it there: those made before the
    dense index kept the vectors itself), then the typed metadata columns."""
    columns = [
        pa.array(keys, pa.int64()),
        pa.array(ids, pa.int64() if id_type == "int" else pa.string()),
        pa.array(texts, pa.string()),
        pa.array(meta, pa.string()),
    ]
    dim = None
    if vectors is not None:
        dim = vectors.shape[1]
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), pa.float32())
        columns.append(pa.FixedSizeListArray.from_arrays(flat, dim))
    schema = docs_schema(dim, id_type)
    for name, arr in (typed or {}).items():
        columns.append(arr)
        schema = schema.append(pa.field(name, arr.type))
    return pa.Table.from_arrays(columns, schema=schema)


def rows_by_key(
    ds: lance.LanceDataset | None, keys: list[int], columns: list[str], empty: pa.Table
) -> pa.Table:
    """Rows of ``ds`` by ``_key``, in the order of ``keys`` (which must exist; may repeat)."""
    if ds is None or not keys:
        return empty.select(columns)
    unique = sorted(set(keys))
    parts = [
        ds.to_table(columns=columns, filter=f"_key IN ({','.join(map(str, unique[s : s + 4096]))})")
        for s in range(0, len(unique), 4096)
    ]
    table = pa.concat_tables(parts)
    where = {k: i for i, k in enumerate(table.column("_key").to_pylist())}
    return table.take(pa.array([where[k] for k in keys], pa.int64()))


def hits_table(
    result: SearchResult,
    ids_of: Callable[[np.ndarray], list[Any]],
    rows: Callable[[list[int], list[str]], pa.Table] | None,
) -> pa.Table:
    """One row per hit: ``query``, ``rank`` (from 1), ``id``, ``score``; with ``rows``, also the
    hit's ``text`` and ``metadata``."""
    q, rank = np.nonzero(result.ids >= 0)
    keys = result.ids[q, rank]
    table = pa.table(
        {
            "query": pa.array(q, pa.int32()),
            "rank": pa.array(rank + 1, pa.int32()),
            "id": pa.array(ids_of(keys)),
            "score": pa.array(result.scores[q, rank], pa.float32()),
        }
    )
    if rows is not None:
        docs = rows(keys.tolist(), ["_key", "text", "metadata"])
        table = table.append_column("text", docs.column("text")).append_column(
            "metadata", docs.column("metadata")
        )
    return table
