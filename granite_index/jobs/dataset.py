"""The encoded-corpus Lance dataset: its schema, what each commit records, and reading it back.

Columns: ``id`` string, ``text`` string (what was encoded: ``title + " " + text``), ``title``
string, then ``vector`` fixed_size_list<float32, dim> (dense) and/or ``sparse_indices``
list<uint32> + ``sparse_values`` list<float32> (SPLADE, term ids ascending).

The schema metadata key ``granite.encoded`` holds the job's :class:`JobSpec` as JSON (the input's
fingerprint, each encoder's config with model name and revision, the dense precision). It is
written with the first chunk, in the commit that creates the dataset.

Every chunk is one Lance append whose transaction properties (``granite.chunk``) record the input
range it covers (``start``, ``end``, ``end_byte``), its good rows and its bad lines. Data and
range land in one atomic commit, so the latest commit says exactly where to resume.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa

from granite_index.errors import GraniteIndexError

META_KEY = "granite.encoded"
CHUNK_KEY = "granite.chunk"
FORMAT_VERSION = 1
_LANCE_PARTS = {"data", "_versions", "_transactions", "_deletions", "_indices"}


class EncodeJobError(GraniteIndexError, ValueError):
    """An encoding job cannot start or resume: an unrelated output, different settings..."""


@dataclass(frozen=True)
class JobSpec:
    """What an encoded dataset was made from; a resumed job must match it exactly."""

    input: dict[str, Any]
    encoder: dict[str, Any] | None
    splade_encoder: dict[str, Any] | None
    precision: str | None
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def differences(self, other: JobSpec) -> list[str]:
        """Human-readable differences (``self``: the dataset's, ``other``: this run's)."""
        out = []
        for name in ("input", "encoder", "splade_encoder", "precision", "format_version"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                out.append(f"{name} is {_short(a)} in the dataset but {_short(b)} now")
        return out


def _short(value: Any) -> str:
    if isinstance(value, dict):
        keys = ("model", "revision", "path", "size", "sha256")
        shown = {k: value[k] for k in keys if k in value}
        return json.dumps(shown or value)
    return json.dumps(value)


@dataclass
class Progress:
    """Where a job stands: the last committed chunk's range and the totals so far."""

    end: int = 0
    end_byte: int = 0
    rows: int = 0
    version: int | None = None
    done: bool = False
    bad: list[list[Any]] = field(default_factory=list)


def schema(spec: JobSpec) -> pa.Schema:
    """The dataset's Arrow schema, with ``spec`` in its metadata."""
    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("title", pa.string()),
    ]
    if spec.encoder is not None:
        fields.append(pa.field("vector", pa.list_(pa.float32(), spec.encoder["dim"])))
    if spec.splade_encoder is not None:
        fields.append(pa.field("sparse_indices", pa.list_(pa.uint32())))
        fields.append(pa.field("sparse_values", pa.list_(pa.float32())))
    return pa.schema(fields, metadata={META_KEY: spec.to_json()})


def chunk_table(
    ids: list[str],
    texts: list[str],
    titles: list[str],
    vectors: np.ndarray | None,
    sparse: Any,
    target: pa.Schema,
) -> pa.Table:
    """One chunk's rows. ``vectors`` float32 (n, dim); ``sparse`` a SparseVectors (CSR) or None
    (both may be None for a chunk of no records)."""
    if not ids:
        return target.empty_table()
    cols: dict[str, pa.Array] = {
        "id": pa.array(ids, pa.string()),
        "text": pa.array(texts, pa.string()),
        "title": pa.array(titles, pa.string()),
    }
    if "vector" in target.names:
        flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1))
        cols["vector"] = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    if "sparse_indices" in target.names:
        offsets = pa.array(sparse.indptr.astype(np.int32))
        cols["sparse_indices"] = pa.ListArray.from_arrays(offsets, pa.array(sparse.indices))
        cols["sparse_values"] = pa.ListArray.from_arrays(offsets, pa.array(sparse.values))
    return pa.table(cols, schema=target)


def append_chunk(path: Path, table: pa.Table, record: dict[str, Any], create: bool) -> int:
    """Commit ``table`` with ``record`` (the chunk's range) as one Lance version; returns it."""
    props = {CHUNK_KEY: json.dumps(record)}
    mode = "create" if create else "append"
    return lance.write_dataset(table, path, mode=mode, transaction_properties=props).version


def _read_spec(ds: lance.LanceDataset, path: Path) -> JobSpec:
    raw = (ds.schema.metadata or {}).get(META_KEY.encode())
    if raw is None:
        raise EncodeJobError(
            f"{path} is a Lance dataset but not one written by `granite-index encode` (no "
            f"{META_KEY!r} schema metadata); choose another --out"
        )
    spec = json.loads(raw)
    if spec.get("format_version", 0) > FORMAT_VERSION:
        raise EncodeJobError(f"{path} was written by a newer granite-index; upgrade it")
    return JobSpec(**spec)


class EncodedDataset:
    """An encoded corpus on disk (as of its last committed chunk)."""

    def __init__(self, path: Path, ds: lance.LanceDataset, spec: JobSpec) -> None:
        self.path = path
        self.ds = ds
        self.spec = spec

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> EncodedDataset:
        """Open ``path``.

        Raises
        ------
        EncodeJobError
            ``path`` is not an encoded dataset (missing, unrelated, or not Lance).
        """
        path = Path(path)
        if not path.exists():
            raise EncodeJobError(f"{path} does not exist")
        try:
            ds = lance.dataset(path)
        except (OSError, ValueError, RuntimeError) as exc:
            reason = str(exc).split(",")[0]  # Lance appends Rust source locations
            raise EncodeJobError(
                f"{path} exists and is not a Lance dataset ({reason}); choose another --out"
            ) from exc
        return cls(path, ds, _read_spec(ds, path))

    def chunk_records(self) -> Iterator[dict[str, Any]]:
        """The ``granite.chunk`` record of every commit, newest first."""
        for tx in self.ds.get_transactions():
            props = getattr(tx, "transaction_properties", None) or {}
            if CHUNK_KEY in props:
                yield json.loads(props[CHUNK_KEY])

    def progress(self) -> Progress:
        """The committed range (from the newest chunk record) and every bad line so far."""
        records = list(self.chunk_records())
        if not records:
            return Progress(version=self.ds.version)
        last = records[0]
        bad = [b for rec in reversed(records) for b in rec["bad"]]
        return Progress(
            last["end"], last["end_byte"], self.ds.count_rows(), self.ds.version, last["done"], bad
        )

    @property
    def complete(self) -> bool:
        """True once the job has read its whole input."""
        return self.progress().done

    def batches(self, batch_size: int) -> Iterator[EncodedBatch]:
        """The rows in input order, ``batch_size`` at a time (bounded memory)."""
        buf: list[pa.RecordBatch] = []
        rows = 0
        for batch in self.ds.to_batches(batch_size=batch_size, scan_in_order=True):
            buf.append(batch)
            rows += batch.num_rows
            if rows >= batch_size:  # fragments may be smaller than batch_size: join them
                yield EncodedBatch.from_arrow(pa.Table.from_batches(buf), self.spec)
                buf, rows = [], 0
        if rows:
            yield EncodedBatch.from_arrow(pa.Table.from_batches(buf), self.spec)


@dataclass
class EncodedBatch:
    """Rows read back: ids, texts, titles, dense vectors (n, dim) and SPLADE rows (CSR)."""

    ids: list[str]
    texts: list[str]
    titles: list[str | None]
    vectors: np.ndarray | None
    sparse: Any

    @classmethod
    def from_arrow(cls, table: pa.Table, spec: JobSpec) -> EncodedBatch:
        from granite_index.encoders.sparse import SparseVectors

        n = table.num_rows
        vectors = sparse = None
        if spec.encoder is not None:
            flat = _values(table, "vector")
            vectors = np.asarray(flat, np.float32).reshape(n, spec.encoder["dim"])
        if spec.splade_encoder is not None:
            offsets = np.asarray(table.column("sparse_indices").combine_chunks().offsets, np.int64)
            sparse = SparseVectors(
                offsets - offsets[0],
                np.asarray(_values(table, "sparse_indices"), np.uint32),
                np.asarray(_values(table, "sparse_values"), np.float32),
                int(spec.splade_encoder["vocab_size"]),
            )
        return cls(
            table.column("id").to_pylist(),
            table.column("text").to_pylist(),
            table.column("title").to_pylist(),
            vectors,
            sparse,
        )


def _values(table: pa.Table, name: str) -> np.ndarray:
    """The flattened values of list column ``name``."""
    return table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)


def open_existing(path: Path) -> EncodedDataset | None:
    """The dataset a job would resume at ``path``, or None to start afresh.

    A folder left by a run killed while creating the dataset (Lance parts, no committed version)
    is removed. Anything else that is not an encoded dataset is an error.
    """
    if not path.exists():
        return None
    if path.is_dir() and _uncommitted_lance(path):
        shutil.rmtree(path)
        return None
    return EncodedDataset.open(path)


def check_resumable(ds: EncodedDataset, spec: JobSpec) -> None:
    """Raise ``EncodeJobError`` naming what differs when ``ds`` was made with other settings."""
    diff = ds.spec.differences(spec)
    if diff:
        raise EncodeJobError(
            f"{ds.path} was encoded with other settings, so this run cannot resume it: "
            + "; ".join(diff)
            + ". Use the original settings, or another --out"
        )


def _uncommitted_lance(path: Path) -> bool:
    """True for an empty folder or one holding only Lance parts and no committed version."""
    entries = {p.name for p in path.iterdir()}
    if not entries <= _LANCE_PARTS:
        return False
    versions = path / "_versions"
    return not versions.is_dir() or not any(versions.iterdir())
