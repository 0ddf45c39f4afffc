"""A collection: documents, their vectors and the dense index, persisted as one folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from granite_index._validate import as_list, check_ids, check_k, check_matrix, check_texts, preview
from granite_index.dense_index import DenseIndex, Device, IndexKind
from granite_index.errors import DuplicateIdError, UnknownIdError
from granite_index.result import SearchResult
from granite_index.sparse_index import SparseIndex
from granite_index.store import Manifest, Store, docs_schema

if TYPE_CHECKING:  # the dense encoder (torch) loads only when a collection needs it
    from granite_index.encoders.dense import DenseEncoder

Mode = Literal["dense", "bm25"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


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
        dense: bool = True,
        sparse: Literal["bm25"] | None = None,
        language: str = "en",
        bm25_params: dict[str, Any] | None = None,
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
        dense : bool
            Keep a dense index (encode documents with the model). False makes a lexical-only
            collection: no model is loaded and documents are not encoded.
        sparse : {"bm25"}, optional
            Also keep a BM25 inverted index (``search(mode="bm25")``).
        language : str
            The BM25 analyzer's language (ISO 639-1 code; see :class:`~granite_index.Analyzer`).
        bm25_params : dict, optional
            ``k1``, ``b`` (Lucene's 1.2 / 0.75 by default) and analyzer options (``stopwords``,
            ``stem``, ``lowercase``).
        """
        options = {"precision": precision, "batch_size": batch_size}
        if sparse not in (None, "bm25"):
            raise ValueError(f"sparse must be None or 'bm25'; got {sparse!r}")
        if not dense and sparse is None:
            raise ValueError("a collection needs an index: dense=True and/or sparse='bm25'")
        dense_index = None
        if dense:
            if encoder is None:
                from granite_index.encoders.dense import DenseEncoder

                encoder = DenseEncoder(model, **options)
            dense_index = DenseIndex(encoder.dim, index, device="cpu", **(index_params or {}))
        elif encoder is not None or model is not None:
            raise ValueError("model / encoder given but dense=False")
        sparse_index = None
        if sparse == "bm25":
            params = dict(bm25_params or {})
            k1, b = params.pop("k1", 1.2), params.pop("b", 0.75)
            sparse_index = SparseIndex.bm25(language, k1=k1, b=b, **params)
        manifest = Manifest(
            encoder=encoder.config.to_dict() if dense else None,
            dense_index={"kind": index, **(index_params or {})} if dense else None,
            sparse_index=sparse_index.config() if sparse_index is not None else None,
        )
        store = Store.create(path, manifest, dense_index, sparse_index)
        return cls(store, encoder, device, options)

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
        """(Re)read the committed state: indexes and the id ↔ key maps."""
        store = self._store
        m = store.manifest
        self._dense = (
            DenseIndex.load(store.dense_dir(), device=self._device)
            if m.dense_index is not None
            else None
        )
        self._sparse = SparseIndex.load(store.sparse_dir()) if m.sparse_index is not None else None
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
        if self.manifest.encoder is None:
            raise ValueError(f"{self.path} has no dense index (created with dense=False)")
        if self._encoder is None:
            from granite_index.encoders.dense import DenseEncoder

            self._encoder = DenseEncoder.from_config(self.manifest.encoder, **self._encoder_options)
        return self._encoder

    @property
    def dense_index(self) -> DenseIndex | None:
        return self._dense

    @property
    def sparse_index(self) -> SparseIndex | None:
        return self._sparse

    @property
    def modes(self) -> list[str]:
        """The search modes this collection answers."""
        return [m for m, idx in (("dense", self._dense), ("bm25", self._sparse)) if idx is not None]

    @property
    def _dim(self) -> int | None:
        return None if self._dense is None else self._dense.dim

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
            "dense_index": None
            if self._dense is None
            else {**m.dense_index, "dim": self._dense.dim},
            "sparse_index": None
            if self._sparse is None
            else {
                **m.sparse_index,
                "postings": self._sparse.n_postings,
                "segments": len(self._sparse.segments),
                "vocabulary": len(self._sparse.vocab or ()),
            },
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
        if self._dense is None:
            if vectors is not None:
                raise ValueError("this collection has no dense index; do not pass vectors")
        elif vectors is None:
            vectors = self.encoder.encode_documents(texts, show_progress=show_progress)
        else:
            vectors = check_matrix(vectors, "vectors", self._dense.dim)
            if len(vectors) != len(ids):
                raise ValueError(f"{len(ids)} ids but {len(vectors)} vectors")
        terms = self._sparse.encode_texts(texts, grow=True) if self._sparse is not None else None
        if self._dense is None and hasattr(show_progress, "update"):
            show_progress.update(len(ids))
        keys = np.arange(m.next_key, m.next_key + len(ids), dtype=np.int64)
        table = _docs_table(keys, ids, texts, meta, vectors, id_type)
        with self._store.writer(), self._rollback_on_error():
            lance_version = self._store.append_docs(table)
            new = m.next(
                lance_version=lance_version,
                id_type=id_type,
                next_key=m.next_key + len(ids),
                n_docs=m.n_docs + len(ids),
            )
            if self._dense is not None:
                self._dense.add(keys, vectors)
                self._store.write_dense(self._dense, new.commit)
            if self._sparse is not None:
                self._sparse.add(keys, *terms)
                self._store.write_sparse(self._sparse, new.commit)
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
            new = m.next(lance_version=lance_version, n_docs=m.n_docs - len(ids))
            if self._dense is not None:
                self._dense.delete(keys)
                self._store.write_dense(self._dense, new.commit)
            if self._sparse is not None:
                self._sparse.delete(keys)
                self._store.write_sparse(self._sparse, new.commit)
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
    def search(
        self, queries: Any, k: int = 10, *, mode: Mode | None = None, threads: int | None = None
    ) -> SearchResult:
        """Top-k documents for each query.

        Parameters
        ----------
        queries : str, sequence of str, or float array (n_queries, dim)
            Query texts, or query vectors (dense mode only).
        k : int
            Hits per query (padded with id -1 when fewer documents match).
        mode : {"dense", "bm25"}, optional
            Which retriever answers; by default the dense one if the collection has it, else BM25.
        threads : int, optional
            BM25: threads for a batch of queries (default: all cores).

        Returns
        -------
        SearchResult
            Internal keys and scores; ``.doc_ids()`` and ``.to_arrow()`` give your ids and documents.
        """
        if mode is None:
            mode = "dense" if self._dense is not None else "bm25"
        if mode not in ("dense", "bm25"):
            raise ValueError(f"mode must be 'dense' or 'bm25'; got {mode!r}")
        if mode not in self.modes:
            raise ValueError(
                f"this collection has no {mode} index; it answers {self.modes} "
                "(choose dense= / sparse= in Collection.create)"
            )
        k = check_k(k)
        is_text = isinstance(queries, str) or (
            not isinstance(queries, np.ndarray) and _is_text_list(queries)
        )
        if mode == "bm25":
            if not is_text:
                raise TypeError("bm25 search takes query texts (a str or a list of str)")
            texts = [queries] if isinstance(queries, str) else as_list(queries, "queries")
            res = self._sparse.search(texts, k, threads=threads)
            return SearchResult(res.ids, res.scores, self)
        if is_text:
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
        if self._dense is None:
            raise ValueError(f"{self.path} has no dense index, so no vectors")
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
                docs_schema(self._dim, self.manifest.id_type or "str").empty_table().select(columns)
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
    vectors: np.ndarray | None,
    id_type: str,
) -> pa.Table:
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
    return pa.Table.from_arrays(columns, schema=docs_schema(dim, id_type))
