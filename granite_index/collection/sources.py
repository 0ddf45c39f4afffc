"""Document sources read in bounded batches: files, folders, Arrow data, DataFrames, iterables.

:func:`read_batches` turns a source into :class:`~granite_index.collection.batch.Batch` es of at
most ``batch_size`` documents and never holds more of the input than about one batch (a table or
a DataFrame already in memory is converted one slice at a time). :func:`count_rows` gives the
number of records where the source knows it without being read (for a progress bar).

Each record becomes one document: its id (``id_field``; for the default ``"id"``, BEIR's ``_id``
first), its text (``title + " " + text``, stripped: BEIR's convention, as in
:meth:`granite_index.eval.BeirDataset.documents`), its dense vector (``vector_field``, optional)
and its metadata: a dict of the record's other non-null fields (the title included, as
:func:`~granite_index.collection.evaluation.index_beir` keeps it; a field ``metadata`` holding an
object, BEIR's per-document metadata, is merged in), or of ``metadata_fields`` only.

Imports: :mod:`granite_index.collection.batch`, pyarrow; lance and pyarrow.dataset when a source
needs them. Tests: ``tests/collection/test_sources.py``.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from granite_index.collection.batch import Batch

__all__ = ["count_rows", "read_batches"]

#: File names read as one JSON object per line (each maybe followed by ``.gz``).
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
#: Files that make a folder a BEIR folder (only the corpus is read).
BEIR_CORPUS = ("corpus.jsonl", "corpus.jsonl.gz")
#: Record batches a file scan reads ahead (bounds the memory a scan holds to a few batches).
READAHEAD = 2
_END = object()


@dataclass(frozen=True)
class _Fields:
    """Where a record keeps each part of a document; ``beir``: ids as strings and documents with
    no text left out, as :func:`granite_index.eval.load_beir` and ``index_beir`` do."""

    id_field: str
    text_field: str
    title_field: str | None
    vector_field: str | None
    metadata_fields: tuple[str, ...] | None
    beir: bool = False

    @property
    def id_keys(self) -> tuple[str, ...]:
        return ("_id", "id") if self.id_field == "id" else (self.id_field,)


def read_batches(
    source: Any,
    *,
    batch_size: int = 10_000,
    id_field: str = "id",
    text_field: str = "text",
    title_field: str | None = "title",
    vector_field: str | None = None,
    metadata_fields: Iterable[str] | None = None,
) -> Iterator[Batch]:
    """Stream the documents of ``source`` in batches of ``batch_size``.

    The source's kind and its columns (where it has a schema) are checked when this is called;
    the records are read, and checked, as the batches are taken.

    Parameters
    ----------
    source : path, pyarrow data, DataFrame or iterable
        - a ``.jsonl`` file (also ``.ndjson``, ``.json``, each maybe gzipped: ``.jsonl.gz``), one
          JSON object per line (blank lines skipped);
        - a BEIR folder: its ``corpus.jsonl`` (queries and qrels are not needed), read as
          :func:`granite_index.eval.load_beir` does: ids as strings, documents whose title and
          text are both empty left out;
        - a ``.parquet`` file, or a folder of them (all ``*.parquet`` below it, by name);
        - a Lance dataset folder;
        - a ``pyarrow.Table``, ``RecordBatch``, ``RecordBatchReader`` or ``pyarrow.dataset``
          dataset, a Lance dataset object, or anything that exports an Arrow stream;
        - a pandas ``DataFrame``;
        - an iterable of dicts (records, as the lines of a jsonl file), or of :class:`Batch`
          (yielded as they are: ``batch_size`` and the fields do not apply).
    batch_size : int
        Documents per batch (the last one may be smaller).
    id_field : str
        The id: an int or a non-empty str, one type for the whole source. With the default
        ``"id"``, a record's ``_id`` (BEIR) is taken first.
    text_field : str
        The text; a non-empty string once the title is prepended.
    title_field : str or None
        An optional title, prepended to the text (``title + " " + text``) and kept as metadata;
        None: no title.
    vector_field : str, optional
        Precomputed dense vectors (lists of floats, one length) from the collection's encoder;
        each batch then carries them as ``vectors``, float32 (n, dim).
    metadata_fields : iterable of str, optional
        The fields to keep as metadata (those a record lacks or holds null are left out). Default:
        every other non-null field of the record.

    Yields
    ------
    Batch
        ``ids``, ``texts``, ``metadata`` (a dict or None per document) and, with
        ``vector_field``, ``vectors``.

    Raises
    ------
    FileNotFoundError
        A path that does not exist.
    ValueError
        A file or folder of no known kind, a missing id / text / vector / metadata column, and,
        while reading: a line that is not JSON, a record with no id or with an empty text (named
        by its line or row number).
    TypeError
        A source of no known type, an id that is not an int or str (or not of the type of the
        ids before it), a text that is not a string.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int; got {type(batch_size).__name__}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    fields = _Fields(
        _field_name(id_field, "id_field"),
        _field_name(text_field, "text_field"),
        None if title_field is None else _field_name(title_field, "title_field"),
        None if vector_field is None else _field_name(vector_field, "vector_field"),
        None if metadata_fields is None else _field_names(metadata_fields),
    )
    return _read(source, fields, int(batch_size))


def count_rows(source: Any) -> int | None:
    """The number of records in ``source`` where it is known without reading the records.

    Parquet files and Lance datasets (from their metadata), Arrow tables and record batches,
    datasets with a ``count_rows`` method, and DataFrames have one; jsonl files, BEIR folders,
    readers and iterables give None.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        kind = _path_kind(path) if path.exists() else None
        if kind == "parquet":
            return int(_parquet_dataset(path).count_rows())
        if kind == "lance":
            return int(_lance_dataset(path).count_rows())
        return None
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        return source.num_rows
    if _is_dataframe(source):
        return len(source)
    if hasattr(source, "to_batches") and callable(getattr(source, "count_rows", None)):
        return int(source.count_rows())
    return None


# ---------------------------------------------------------------------------------- dispatch


def _read(source: Any, f: _Fields, size: int) -> Iterator[Batch]:
    """Check ``source`` now; return the generator of its batches."""
    if isinstance(source, (str, os.PathLike)):
        return _read_path(Path(source), f, size)
    if isinstance(source, pa.Table):
        cols = _projection(source.schema.names, f, "the Arrow table")
        return _from_arrow(source.to_batches(max_chunksize=size), cols, f, size, "the Arrow table")
    if isinstance(source, pa.RecordBatch):
        where = "the Arrow record batch"
        cols = _projection(source.schema.names, f, where)
        parts = (source.slice(s, size) for s in range(0, source.num_rows, size))
        return _from_arrow(parts, cols, f, size, where)
    if isinstance(source, pa.RecordBatchReader):
        where = "the Arrow record batch reader"
        cols = _projection(source.schema.names, f, where)
        return _from_arrow(source, cols, f, size, where)
    if _is_dataframe(source):
        cols = _projection([str(c) for c in source.columns], f, "the DataFrame")
        return _from_arrow(_dataframe_slices(source, cols, size), None, f, size, "the DataFrame")
    if hasattr(source, "to_batches") and isinstance(getattr(source, "schema", None), pa.Schema):
        return _from_scanner(source, f, size, f"the {type(source).__name__}")
    if hasattr(source, "__arrow_c_stream__"):
        return _read(pa.RecordBatchReader.from_stream(source), f, size)
    if isinstance(source, (dict, bytes, bytearray)):
        raise TypeError(
            f"source must be a path, Arrow data, a DataFrame or an iterable of dicts or "
            f"Batch; got a single {type(source).__name__}"
        )
    if isinstance(source, Iterable):
        return _from_iterable(source, f, size)
    raise TypeError(
        "source must be a path, Arrow data, a DataFrame or an iterable of dicts or Batch; got "
        f"{type(source).__name__}"
    )


def _path_kind(path: Path) -> str:
    """``"beir"``, ``"jsonl"``, ``"parquet"`` or ``"lance"``, or a ValueError naming ``path``."""
    if path.is_dir():
        if any((path / name).is_file() for name in BEIR_CORPUS):
            return "beir"
        if path.suffix == ".lance" or (path / "_versions").is_dir():
            return "lance"
        if next((p for p in path.rglob("*.parquet") if p.is_file()), None) is not None:
            return "parquet"
        raise ValueError(
            f"source {path}: a folder must be a BEIR folder (corpus.jsonl), a Lance dataset or a "
            "folder of .parquet files; it is none of them"
        )
    name = path.name.lower()
    base = name[: -len(".gz")] if name.endswith(".gz") else name
    if base.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    raise ValueError(
        f"source {path}: unknown file type; expected a .jsonl (or .jsonl.gz) or .parquet file, "
        "or a folder (BEIR, Lance dataset, parquet files)"
    )


def _read_path(path: Path, f: _Fields, size: int) -> Iterator[Batch]:
    if not path.exists():
        raise FileNotFoundError(f"source {path} does not exist")
    kind = _path_kind(path)
    if kind == "beir":
        corpus = next(path / n for n in BEIR_CORPUS if (path / n).is_file())
        return _from_records(
            _jsonl_records(corpus), replace(f, beir=True), size, str(corpus), "line"
        )
    if kind == "jsonl":
        return _from_records(_jsonl_records(path), f, size, str(path), "line")
    dataset = _parquet_dataset(path) if kind == "parquet" else _lance_dataset(path)
    return _from_scanner(dataset, f, size, str(path), batch_readahead=READAHEAD)


def _parquet_dataset(path: Path) -> Any:
    import pyarrow.dataset as pds

    files = sorted(str(p) for p in path.rglob("*.parquet") if p.is_file()) if path.is_dir() else []
    try:
        return pds.dataset(files or str(path), format="parquet")
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"source {path}: not readable as parquet ({exc})") from exc


def _lance_dataset(path: Path) -> Any:
    import lance

    try:
        return lance.dataset(str(path))
    except (OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).split(",")[0]  # Lance appends Rust source locations
        raise ValueError(f"source {path}: not a readable Lance dataset ({reason})") from exc


def _is_dataframe(source: Any) -> bool:
    return hasattr(source, "iloc") and hasattr(source, "columns") and hasattr(source, "dtypes")


# ------------------------------------------------------------------------- Arrow-shaped input


def _projection(names: list[str], f: _Fields, where: str) -> list[str] | None:
    """Check the columns ``f`` needs; the columns to read (None: all of them)."""
    ids = [k for k in f.id_keys if k in names]
    if not ids:
        raise ValueError(
            f"{where} has no {' or '.join(map(repr, f.id_keys))} column (id_field); its columns "
            f"are {names}"
        )
    needed = [(f.text_field, "text_field")]
    if f.vector_field is not None:
        needed.append((f.vector_field, "vector_field"))
    needed += [(m, "metadata_fields") for m in f.metadata_fields or ()]
    for column, option in needed:
        if column not in names:
            raise ValueError(
                f"{where} has no {column!r} column ({option}); its columns are {names}"
            )
    if f.metadata_fields is None:
        return None
    title = [f.title_field] if f.title_field in names else []
    wanted = [*ids, f.text_field, *title, *(c for c, _ in needed[1:])]
    return list(dict.fromkeys(wanted))


def _from_scanner(dataset: Any, f: _Fields, size: int, where: str, **scan: Any) -> Iterator[Batch]:
    """A pyarrow / Lance dataset: only the needed columns are read, a batch at a time."""
    cols = _projection(dataset.schema.names, f, where)
    return _from_arrow(
        _lazy(lambda: dataset.to_batches(columns=cols, batch_size=size, **scan)),
        None,
        f,
        size,
        where,
    )


def _lazy(start: Any) -> Iterator[Any]:
    """Call ``start()`` on the first ``next``, not before."""
    yield from start()


def _dataframe_slices(df: Any, cols: list[str] | None, size: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, len(df), size):
        part = df.iloc[start : start + size]
        if cols is not None:
            part = part[[c for c in part.columns if str(c) in cols]]
        yield pa.RecordBatch.from_pandas(part, preserve_index=False)


def _from_arrow(
    batches: Iterable[pa.RecordBatch],
    cols: list[str] | None,
    f: _Fields,
    size: int,
    where: str,
) -> Iterator[Batch]:
    def records() -> Iterator[tuple[int, Any]]:
        row = 0
        for rb in batches:
            if cols is not None:
                rb = rb.select(cols)
            for rec in rb.to_pylist():
                row += 1
                yield row, rec

    return _from_records(records(), f, size, where, "row")


# ------------------------------------------------------------------------ records and batches


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed record) of each non-blank line."""
    n = 0
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                except UnicodeDecodeError as exc:
                    raise ValueError(f"{path}: line {n}: not UTF-8 ({exc.reason})") from exc
                except json.JSONDecodeError as exc:
                    raise ValueError(
                        f"{path}: line {n}: not valid JSON ({exc.msg}, column {exc.colno})"
                    ) from exc
                yield n, rec
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: not a readable gzip file after line {n} ({exc})") from exc


def _from_iterable(source: Iterable[Any], f: _Fields, size: int) -> Iterator[Batch]:
    items = iter(source)
    first = next(items, _END)
    if first is _END:
        return iter(())
    items = itertools.chain([first], items)
    if isinstance(first, Batch):
        return _batch_items(items)
    if isinstance(first, dict):
        return _from_records(enumerate(items, 1), f, size, "the iterable", "item")
    raise TypeError(
        f"an iterable source must yield dicts or Batch objects; its first item is a "
        f"{type(first).__name__}"
    )


def _batch_items(items: Iterable[Any]) -> Iterator[Batch]:
    for n, item in enumerate(items, 1):
        if not isinstance(item, Batch):
            raise TypeError(
                f"the iterable: item {n} is a {type(item).__name__}, but the items before it "
                "are Batch objects"
            )
        yield item


def _from_records(
    records: Iterable[tuple[int, Any]], f: _Fields, size: int, where: str, unit: str
) -> Iterator[Batch]:
    """Batches of ``size`` documents from (position, record) pairs."""
    docs: list[tuple[Any, str, dict | None, Any]] = []
    id_type: type | None = None
    dim: int | None = None
    for position, rec in records:
        at = f"{where}: {unit} {position}"
        doc = _document(rec, f, at)
        if doc is None:
            continue
        if id_type is None:
            id_type = type(doc[0])
        elif type(doc[0]) is not id_type:
            raise TypeError(
                f"{at}: id {doc[0]!r} is a {type(doc[0]).__name__}, but the ids before it are "
                f"{id_type.__name__}s (use one type)"
            )
        if f.vector_field is not None:
            dim = _check_vector(doc[3], dim, f.vector_field, at)
        docs.append(doc)
        if len(docs) == size:
            yield _batch(docs, f)
            docs = []
    if docs:
        yield _batch(docs, f)


def _document(rec: Any, f: _Fields, at: str) -> tuple[Any, str, dict | None, Any] | None:
    """(id, text, metadata, vector) of one record; None for a BEIR document with no text."""
    if not isinstance(rec, dict):
        raise TypeError(f"{at}: expected an object (a dict), got {type(rec).__name__}")
    id_key = next((k for k in f.id_keys if rec.get(k) is not None), None)
    doc_id = None if id_key is None else rec[id_key]
    if doc_id is None or doc_id == "":
        raise ValueError(f"{at}: no id (a non-empty {' or '.join(map(repr, f.id_keys))})")
    if isinstance(doc_id, bool) or not isinstance(doc_id, (int, str)):
        raise TypeError(f"{at}: id {doc_id!r} is a {type(doc_id).__name__}, not an int or str")
    text = rec.get(f.text_field)
    if text is None and not f.beir:
        raise ValueError(f"{at}: no {f.text_field!r} field (text_field)")
    text = text or ""
    if not isinstance(text, str):
        raise TypeError(f"{at}: {f.text_field!r} is a {type(text).__name__}, not a string")
    title = rec.get(f.title_field) if f.title_field is not None else None
    title = "" if title is None else str(title)
    full = f"{title} {text}".strip()
    if not full:
        if f.beir:
            return None
        raise ValueError(f"{at}: empty text" + (" (and no title)" if f.title_field else ""))
    vector = None
    if f.vector_field is not None:
        vector = rec.get(f.vector_field)
        if vector is None:
            raise ValueError(f"{at}: no {f.vector_field!r} vector (vector_field)")
    return (str(doc_id) if f.beir else doc_id), full, _metadata(rec, f, id_key, title), vector


def _metadata(rec: dict, f: _Fields, id_key: str, title: str) -> dict | None:
    if f.metadata_fields is not None:
        meta = {k: rec[k] for k in f.metadata_fields if rec.get(k) is not None}
        return meta or None
    used = {id_key, f.text_field, f.title_field, f.vector_field}
    meta = {}
    nested = rec.get("metadata")
    if isinstance(nested, dict) and "metadata" not in used:  # BEIR's per-document metadata
        meta.update((k, v) for k, v in nested.items() if v is not None)
    if title and f.title_field is not None:
        meta[f.title_field] = rec[f.title_field]
    for key, value in rec.items():
        if key in used or value is None or (key == "metadata" and isinstance(value, dict)):
            continue
        meta[key] = value
    return meta or None


def _check_vector(vector: Any, dim: int | None, name: str, at: str) -> int:
    """The vector's length, which must be ``dim`` when that is known."""
    if isinstance(vector, (str, bytes, dict)) or not hasattr(vector, "__len__"):
        raise TypeError(f"{at}: {name!r} is a {type(vector).__name__}, not a list of numbers")
    if dim is not None and len(vector) != dim:
        raise ValueError(f"{at}: {name!r} has {len(vector)} values, the vectors before it {dim}")
    return len(vector)


def _batch(docs: list[tuple[Any, str, dict | None, Any]], f: _Fields) -> Batch:
    metadata = [d[2] for d in docs]
    vectors = None
    if f.vector_field is not None:
        try:
            vectors = np.asarray([d[3] for d in docs], dtype=np.float32).reshape(len(docs), -1)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{f.vector_field!r}: a vector holds something other than numbers ({exc})"
            ) from exc
    return Batch(
        [d[0] for d in docs],
        [d[1] for d in docs],
        None if all(m is None for m in metadata) else metadata,
        vectors,
    )


def _field_name(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty str; got {value!r}")
    return value


def _field_names(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"metadata_fields must be a list of str; got {values!r}")
    return tuple(_field_name(v, "each of metadata_fields") for v in values)
