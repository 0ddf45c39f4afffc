"""A collection: documents, their vectors and the dense index, persisted as one folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from granite_index._validate import as_list, check_ids, check_k, check_matrix, check_texts, preview
from granite_index.dense_index import DenseIndex, Device, IndexKind
from granite_index.encoders.dense import DenseEncoder, Precision
from granite_index.errors import DuplicateIdError, UnknownIdError
from granite_index.result import SearchResult
from granite_index.store import Manifest, Store, docs_schema

Mode = Literal["dense"]


class Collection:
    """Documents + vectors + indexes in one folder; the verbs are add, delete, search, open.

    Create one with :meth:`create`, reopen it with :meth:`open`. Every ``add`` and ``delete``
    is one atomic commit: a process killed part-way leaves the collection as of its last commit.

    Examples
    --------
    >>> col = Collection.create("runs/demo")                  # bundled all-MiniLM-L6-v2
    >>> col.add(["a", "b"], ["BM25 is a ranking function.", "FAISS searches vectors."])
    >>> hits = col.search("how are documents ranked?", k=1)
    >>> hits.doc_ids()
    [['a']]
    >>> Collection.open("runs/demo").search("how are documents ranked?", k=1).doc_ids()
    [['a']]
    """

    def __init__(
        self, store: Store, encoder: DenseEncoder | None, device: Device, encoder_options: dict
    ) -> None:
        self._store = store
        self._encoder = encoder
        self._device: Device = device
        self._encoder_options = encoder_options
        self._load_state()

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        model: str | os.PathLike[str] | None = None,
        encoder: DenseEncoder | None = None,
        index: IndexKind = "flat",
        index_params: dict[str, Any] | None = None,
        precision: Precision = "auto",
        batch_size: int = 32,
        device: Device = "auto",
    ) -> Collection:
        """Make a new, empty collection at ``path`` (which must not exist, or be an empty folder).

        Parameters
        ----------
        path : str or path
        model : str or path, optional
            Dense model: local folder, Hugging Face id, or None for the bundled all-MiniLM-L6-v2.
        encoder : DenseEncoder, optional
            An encoder already loaded (then ``model``/``precision``/``batch_size`` are ignored).
        index : {"flat", "hnsw", "ivfpq"}
            FAISS index kind; ``flat`` (exact inner product) by default.
        index_params : dict, optional
            Further :class:`~granite_index.dense_index.DenseIndexConfig` fields.
        precision, batch_size :
            Encoding options (not saved: they do not change what is stored beyond bf16 rounding).
        device : {"auto", "cpu", "cuda"}
            Where the dense index searches (GPU when present for ``flat``).
        """
        options = {"precision": precision, "batch_size": batch_size}
        if encoder is None:
            encoder = DenseEncoder(model, **options)
        dense = DenseIndex(encoder.dim, index, device="cpu", **(index_params or {}))
        manifest = Manifest(
            encoder=encoder.config.to_dict(),
            dense_index={"kind": index, **(index_params or {})},
        )
        return cls(Store.create(path, manifest, dense), encoder, device, options)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        precision: Precision = "auto",
        batch_size: int = 32,
        device: Device = "auto",
    ) -> Collection:
        """Open a collection as of its last commit. The encoder loads on first use.

        Raises
        ------
        NotACollectionError
            ``path`` holds no collection.
        FormatVersionError
            The collection was written by a newer granite-index.
        """
        return cls(
            Store.open(path), None, device, {"precision": precision, "batch_size": batch_size}
        )

    def _load_state(self) -> None:
        """(Re)read the committed state: dense index and the id ↔ key maps."""
        store = self._store
        self._dense = DenseIndex.load(store.dense_dir(), device=self._device)
        self._id_to_key: dict[Any, int] = {}
        self._key_to_id: list[Any] = [None] * store.manifest.next_key
        ds = store.docs()
        if ds is not None:
            for batch in ds.to_batches(columns=["_key", "id"]):
                keys = batch.column("_key").to_pylist()
                ids = batch.column("id").to_pylist()
                self._id_to_key.update(zip(ids, keys))
                for key, doc_id in zip(keys, ids):
                    self._key_to_id[key] = doc_id

    # ------------------------------------------------------------------ properties
    @property
    def path(self) -> Path:
        return self._store.path

    @property
    def manifest(self) -> Manifest:
        return self._store.manifest

    @property
    def encoder(self) -> DenseEncoder:
        """The dense encoder this collection was built with (loaded, and revision-checked, on first use)."""
        if self._encoder is None:
            self._encoder = DenseEncoder.from_config(self.manifest.encoder, **self._encoder_options)
        return self._encoder

    @property
    def dense_index(self) -> DenseIndex:
        return self._dense

    def __len__(self) -> int:
        return len(self._id_to_key)

    def __contains__(self, doc_id: Any) -> bool:
        return doc_id in self._id_to_key

    def info(self) -> dict[str, Any]:
        """A summary: path, documents, commit, encoder, index."""
        m = self.manifest
        return {
            "path": str(self.path),
            "n_docs": len(self),
            "commit": m.commit,
            "lance_version": m.lance_version,
            "format_version": m.format_version,
            "id_type": m.id_type,
            "encoder": m.encoder,
            "dense_index": {**m.dense_index, "dim": self._dense.dim},
        }

    # ------------------------------------------------------------------ writing
    def add(
        self,
        ids: Any,
        texts: Any = None,
        metadata: Any = None,
        *,
        vectors: Any = None,
        show_progress: Any = False,
    ) -> None:
        """Add documents in one commit.

        Parameters
        ----------
        ids : sequence of int or str, or a table
            New, unique ids (all int or all str). A pandas DataFrame or Arrow table with
            ``id`` and ``text`` columns may be given alone: its other columns become metadata.
        texts : sequence of str
            Non-empty document texts, one per id.
        metadata : list of dict, DataFrame or Arrow table, optional
            One JSON-serialisable record per document.
        vectors : array-like float32 (n, dim), optional
            Precomputed document vectors from this collection's encoder (skips encoding).
        show_progress : bool or tqdm
            Show a progress bar while encoding (or advance the given one).

        Raises
        ------
        DuplicateIdError
            An id repeats in ``ids`` or is already in the collection.
        TypeError, ValueError
            Bad ids, empty or non-string texts, mismatched lengths or vector dimension.
        """
        if texts is None:
            ids, texts, metadata = _split_table(ids)
        ids, id_type = check_ids(ids)
        texts = check_texts(texts)
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
        if not ids:
            return
        meta = _metadata_json(metadata, len(ids))
        m = self.manifest
        if m.id_type not in (None, id_type):
            raise TypeError(f"this collection's ids are {m.id_type}; got {id_type} ids")
        present = [i for i in ids if i in self._id_to_key]
        if present:
            raise DuplicateIdError(f"ids already in the collection: {preview(present)}")
        if vectors is None:
            vectors = self.encoder.encode_documents(texts, show_progress=show_progress)
        else:
            vectors = check_matrix(vectors, "vectors", self._dense.dim)
            if len(vectors) != len(ids):
                raise ValueError(f"{len(ids)} ids but {len(vectors)} vectors")
        keys = np.arange(m.next_key, m.next_key + len(ids), dtype=np.int64)
        table = _docs_table(keys, ids, texts, meta, vectors, id_type)
        with self._store.writer(), self._rollback_on_error():
            lance_version = self._store.append_docs(table)
            self._dense.add(keys, vectors)
            new = m.next(
                lance_version=lance_version,
                id_type=id_type,
                next_key=m.next_key + len(ids),
                n_docs=m.n_docs + len(ids),
            )
            self._store.write_dense(self._dense, new.commit)
            self._store.commit(new)
        self._id_to_key.update(zip(ids, keys.tolist()))
        self._key_to_id.extend(ids)

    def delete(self, ids: Any) -> None:
        """Delete documents by id in one commit.

        Raises
        ------
        UnknownIdError
            Some ids are not in the collection (nothing is deleted).
        """
        ids, _ = check_ids(ids)
        if not ids:
            return
        missing = [i for i in ids if i not in self._id_to_key]
        if missing:
            raise UnknownIdError(f"ids not in the collection: {preview(missing)}")
        keys = [self._id_to_key[i] for i in ids]
        m = self.manifest
        with self._store.writer(), self._rollback_on_error():
            lance_version = self._store.delete_docs(keys)
            self._dense.delete(keys)
            new = m.next(lance_version=lance_version, n_docs=m.n_docs - len(ids))
            self._store.write_dense(self._dense, new.commit)
            self._store.commit(new)
        for i, key in zip(ids, keys):
            del self._id_to_key[i]
            self._key_to_id[key] = None

    class _Rollback:
        def __init__(self, col: Collection) -> None:
            self.col = col

        def __enter__(self) -> None:
            return None

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
            if exc_type is not None:  # in-memory state may be half-updated: reread the last commit
                self.col._store = Store.open(self.col.path)
                self.col._load_state()
            return False

    def _rollback_on_error(self) -> Collection._Rollback:
        return Collection._Rollback(self)

    # ------------------------------------------------------------------ reading
    def search(self, queries: Any, k: int = 10, *, mode: Mode = "dense") -> SearchResult:
        """Top-k documents for each query.

        Parameters
        ----------
        queries : str, sequence of str, or float array (n_queries, dim)
            Query texts (encoded with the collection's encoder) or query vectors.
        k : int
            Hits per query (padded with id -1 when the collection has fewer documents).
        mode : {"dense"}
            Which retriever answers.

        Returns
        -------
        SearchResult
            Internal keys and scores; ``.doc_ids()`` and ``.to_arrow()`` give your ids and documents.
        """
        if mode != "dense":
            raise ValueError(
                f"mode must be 'dense' (the only index this collection has); got {mode!r}"
            )
        k = check_k(k)
        if isinstance(queries, str) or (
            not isinstance(queries, np.ndarray) and _is_text_list(queries)
        ):
            vectors = self.encoder.encode_queries(queries)
        else:
            vectors = check_matrix(queries, "queries", self._dense.dim)
        res = self._dense.search(vectors, k)
        return SearchResult(res.ids, res.scores, self)

    def get(self, ids: Any) -> pa.Table:
        """Documents by id, in the order asked: ``id``, ``text``, ``metadata`` (JSON text) columns."""
        ids = as_list(ids, "ids")
        missing = [i for i in ids if i not in self._id_to_key]
        if missing:
            raise UnknownIdError(f"ids not in the collection: {preview(missing)}")
        return self._rows([self._id_to_key[i] for i in ids]).drop_columns(["_key"])

    def vectors(self, ids: Any) -> np.ndarray:
        """Stored document vectors by id, float32 (n, dim)."""
        ids = as_list(ids, "ids")
        keys = [self._id_to_key[i] for i in ids]
        table = self._rows(keys, columns=["_key", "vector"])
        return np.asarray(
            table.column("vector").combine_chunks().flatten(), dtype=np.float32
        ).reshape(len(keys), -1)

    def _rows(self, keys: list[int], columns: list[str] | None = None) -> pa.Table:
        """Rows by key, in the order of ``keys`` (keys must exist)."""
        columns = columns or ["_key", "id", "text", "metadata"]
        ds = self._store.docs()
        if ds is None or not keys:
            return (
                docs_schema(self._dense.dim, self.manifest.id_type or "str")
                .empty_table()
                .select(columns)
            )
        unique = sorted(set(keys))
        parts = [
            ds.to_table(
                columns=columns, filter=f"_key IN ({','.join(map(str, unique[s : s + 4096]))})"
            )
            for s in range(0, len(unique), 4096)
        ]
        table = pa.concat_tables(parts)
        where = {k: i for i, k in enumerate(table.column("_key").to_pylist())}
        return table.take(pa.array([where[k] for k in keys], pa.int64()))

    def _external_ids(self, keys: np.ndarray) -> list[list[Any]]:
        return [[self._key_to_id[int(k)] for k in row if k >= 0] for row in keys]

    def _hits_table(self, result: SearchResult, *, with_documents: bool) -> pa.Table:
        q, rank = np.nonzero(result.ids >= 0)
        keys = result.ids[q, rank]
        table = pa.table(
            {
                "query": pa.array(q, pa.int32()),
                "rank": pa.array(rank + 1, pa.int32()),
                "id": pa.array([self._key_to_id[int(k)] for k in keys]),
                "score": pa.array(result.scores[q, rank], pa.float32()),
            }
        )
        if with_documents:
            docs = self._rows(keys.tolist(), columns=["_key", "text", "metadata"])
            table = table.append_column("text", docs.column("text")).append_column(
                "metadata", docs.column("metadata")
            )
        return table


def _is_text_list(queries: Any) -> bool:
    try:
        return len(queries) > 0 and all(isinstance(q, str) for q in queries)
    except TypeError:
        return False


def _split_table(table: Any) -> tuple[list[Any], list[Any], Any]:
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


def _metadata_json(metadata: Any, n: int) -> list[str | None]:
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


def _docs_table(
    keys: np.ndarray,
    ids: list[Any],
    texts: list[str],
    meta: list[str | None],
    vectors: np.ndarray,
    id_type: str,
) -> pa.Table:
    dim = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), pa.float32())
    return pa.Table.from_arrays(
        [
            pa.array(keys, pa.int64()),
            pa.array(ids, pa.int64() if id_type == "int" else pa.string()),
            pa.array(texts, pa.string()),
            pa.array(meta, pa.string()),
            pa.FixedSizeListArray.from_arrays(flat, dim),
        ],
        schema=docs_schema(dim, id_type),
    )
