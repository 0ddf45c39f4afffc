"""A collection: documents, their vectors and indexes (dense, BM25, learned sparse), persisted as one folder."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from granite_index._docs import (
    docs_table,
    hits_table,
    metadata_json,
    rows_by_key,
    sparse_kinds,
    split_table,
)
from granite_index._validate import as_list, check_ids, check_k, check_matrix, check_texts, preview
from granite_index.dense_index import DenseIndex, Device, IndexKind
from granite_index.errors import DuplicateIdError, UnknownIdError
from granite_index.result import SearchResult
from granite_index.sparse_index import SparseIndex
from granite_index.store import Manifest, Store, docs_schema

if TYPE_CHECKING:  # the encoders (torch) load only when a collection needs them
    from granite_index.encoders.dense import DenseEncoder
    from granite_index.encoders.sparse import SparseEncoder, SparseVectors
    from granite_index.fusion import Fusion
    from granite_index.fusion_fit import FitResult
    from granite_index.hybrid import EncodedQueries

Mode = Literal["dense", "bm25", "sparse", "hybrid"]
SparseKind = Literal["bm25", "splade"]
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
        self,
        store: Store,
        encoder: DenseEncoder | None,
        device: Device,
        encoder_options: dict,
        sparse_encoder: SparseEncoder | None = None,
    ) -> None:
        self._store = store
        self._encoder = encoder
        self._sparse_encoder = sparse_encoder
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
        sparse: SparseKind | Sequence[SparseKind] | None = None,
        language: str = "en",
        bm25_params: dict[str, Any] | None = None,
        sparse_model: str | os.PathLike[str] | None = None,
        sparse_encoder: SparseEncoder | None = None,
        sparse_params: dict[str, Any] | None = None,
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
        sparse : "bm25", "splade" or a list of them, optional
            Also keep a BM25 inverted index (``search(mode="bm25")``) and/or a learned-sparse
            SPLADE index (``search(mode="sparse")``). With two or more legs, ``mode="hybrid"``
            fuses them.
        language : str
            The BM25 analyzer's language (ISO 639-1 code; see :class:`~granite_index.Analyzer`).
        bm25_params : dict, optional
            ``k1``, ``b`` (Lucene's 1.2 / 0.75 by default) and analyzer options (``stopwords``,
            ``stem``, ``lowercase``).
        sparse_model : str or path, optional
            SPLADE model (a masked-LM folder or Hugging Face id, e.g.
            ``"ibm-granite/granite-embedding-30m-sparse"``); None: the bundled SPLADE-tiny.
        sparse_encoder : SparseEncoder, optional
            A SPLADE encoder already loaded (then ``sparse_model``/``sparse_params`` are ignored).
        sparse_params : dict, optional
            :class:`~granite_index.encoders.sparse.SparseEncoder` options (``query_max_terms``,
            ``doc_max_terms``, ``max_length``, ``batch_size`` ...).
        """
        options = {"precision": precision, "batch_size": batch_size}
        kinds = sparse_kinds(sparse)
        if not dense and not kinds:
            raise ValueError("a collection needs an index: dense=True and/or sparse=...")
        dense_index = None
        if dense:
            if encoder is None:
                from granite_index.encoders.dense import DenseEncoder

                encoder = DenseEncoder(model, **options)
            dense_index = DenseIndex(encoder.dim, index, device="cpu", **(index_params or {}))
        elif encoder is not None or model is not None:
            raise ValueError("model / encoder given but dense=False")
        indexes = {}
        if "bm25" in kinds:
            params = dict(bm25_params or {})
            k1, b = params.pop("k1", 1.2), params.pop("b", 0.75)
            indexes["bm25"] = SparseIndex.bm25(language, k1=k1, b=b, **params)
        if "splade" in kinds:
            if sparse_encoder is None:
                from granite_index.encoders.sparse import SparseEncoder

                sparse_encoder = SparseEncoder(sparse_model, **(sparse_params or {}))
            indexes["splade"] = SparseIndex("impact")
        elif sparse_encoder is not None or sparse_model is not None:
            raise ValueError("sparse_model / sparse_encoder given but 'splade' not in sparse")
        manifest = Manifest(
            encoder=encoder.config.to_dict() if dense else None,
            dense_index={"kind": index, **(index_params or {})} if dense else None,
            sparse_index=indexes["bm25"].config() if "bm25" in indexes else None,
            splade_encoder=sparse_encoder.config.to_dict() if "splade" in indexes else None,
            splade_index=indexes["splade"].config() if "splade" in indexes else None,
        )
        store = Store.create(path, manifest, dense_index, indexes)
        return cls(store, encoder, device, options, sparse_encoder)

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

    @classmethod
    def from_encoded(
        cls, path: str | os.PathLike[str], encoded: str | os.PathLike[str], **options: Any
    ) -> Collection:
        """Build (or resume building) a collection from a dataset made by ``granite-index encode``.

        No document is encoded again: the dataset's dense vectors and SPLADE rows go straight
        into the indexes, with the encoders named in its metadata. ``options`` are those of
        :func:`granite_index.jobs.collection_from_encoded` (``index``, ``bm25``, ``chunk_size``...).
        """
        from granite_index.jobs.load import collection_from_encoded

        return collection_from_encoded(path, encoded, **options)

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
        self._splade = (
            SparseIndex.load(store.sparse_dir(name="splade"))
            if m.splade_index is not None
            else None
        )
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
    def sparse_encoder(self) -> SparseEncoder:
        """The SPLADE encoder this collection was built with (loaded on first use)."""
        if self.manifest.splade_encoder is None:
            raise ValueError(f"{self.path} has no learned-sparse index (sparse='splade')")
        if self._sparse_encoder is None:
            from granite_index.encoders.sparse import SparseEncoder

            self._sparse_encoder = SparseEncoder.from_config(self.manifest.splade_encoder)
        return self._sparse_encoder

    @property
    def dense_index(self) -> DenseIndex | None:
        return self._dense

    @property
    def sparse_index(self) -> SparseIndex | None:
        """The BM25 index (``mode="bm25"``)."""
        return self._sparse

    @property
    def splade_index(self) -> SparseIndex | None:
        """The learned-sparse index (``mode="sparse"``)."""
        return self._splade

    @property
    def modes(self) -> list[str]:
        """The search modes this collection answers (``hybrid`` when it has two legs or more)."""
        legs = [
            m
            for m, idx in (("bm25", self._sparse), ("sparse", self._splade), ("dense", self._dense))
            if idx is not None
        ]
        return legs + ["hybrid"] if len(legs) > 1 else legs

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
            "splade_encoder": m.splade_encoder,
            "splade_index": None
            if self._splade is None
            else {
                **m.splade_index,
                "postings": self._splade.n_postings,
                "segments": len(self._splade.segments),
            },
            "fusion": m.fusion,
        }

    # ------------------------------------------------------------------ writing
    def add(
        self,
        ids: Any,
        texts: Any = None,
        metadata: Any = None,
        *,
        vectors: Any = None,
        sparse_vectors: SparseVectors | None = None,
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
        sparse_vectors : SparseVectors, optional
            Precomputed SPLADE rows (one per document) from this collection's sparse encoder
            (skips SPLADE encoding).
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
            ids, texts, metadata = split_table(ids)
        ids, id_type = check_ids(ids)
        texts = check_texts(texts)
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
        if not ids:
            return
        meta = metadata_json(metadata, len(ids))
        m = self.manifest
        if m.id_type not in (None, id_type):
            raise TypeError(f"this collection's ids are {m.id_type}; got {id_type} ids")
        present = [i for i in ids if i in self._id_to_key]
        if present:
            raise DuplicateIdError(f"ids already in the collection: {preview(present)}")
        vectors, terms, impacts = self._encode_documents(
            texts, vectors, show_progress, sparse_vectors
        )
        keys = np.arange(m.next_key, m.next_key + len(ids), dtype=np.int64)
        table = docs_table(keys, ids, texts, meta, vectors, id_type)
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
            if self._sparse is not None:
                self._sparse.add(keys, *terms)
            if self._splade is not None:
                self._splade.add(keys, impacts.indptr, impacts.indices, impacts.values)
            self._write_indexes(new)
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
            for index in (self._dense, self._sparse, self._splade):
                if index is not None:
                    index.delete(keys)
            self._write_indexes(new)
        for i, key in zip(ids, keys):
            del self._id_to_key[i]
            self._key_to_id[key] = None

    def _encode_documents(
        self, texts: list[str], vectors: Any, show_progress: Any, sparse_vectors: Any = None
    ) -> tuple[np.ndarray | None, Any, Any]:
        """What each index needs of new documents: dense vectors, BM25 terms, SPLADE impacts."""
        if self._dense is None:
            if vectors is not None:
                raise ValueError("this collection has no dense index; do not pass vectors")
        elif vectors is None:
            vectors = self.encoder.encode_documents(texts, show_progress=show_progress)
        else:
            vectors = check_matrix(vectors, "vectors", self._dense.dim)
            if len(vectors) != len(texts):
                raise ValueError(f"{len(texts)} ids but {len(vectors)} vectors")
        terms = self._sparse.encode_texts(texts, grow=True) if self._sparse is not None else None
        impacts = None
        if sparse_vectors is not None:
            impacts = self._check_sparse_vectors(sparse_vectors, len(texts))
        elif self._splade is not None:
            # a caller's bar counts documents once: the dense encoder advances it when present
            bar = (
                show_progress
                if self._dense is None or not hasattr(show_progress, "update")
                else False
            )
            impacts = self.sparse_encoder.encode_documents(texts, show_progress=bar)
        if self._dense is None and self._splade is None and hasattr(show_progress, "update"):
            show_progress.update(len(texts))
        return vectors, terms, impacts

    def _check_sparse_vectors(self, sparse: Any, n: int) -> SparseVectors:
        from granite_index.encoders.sparse import SparseVectors

        if self._splade is None:
            raise ValueError("this collection has no SPLADE index; do not pass sparse_vectors")
        if not isinstance(sparse, SparseVectors):
            raise TypeError(f"sparse_vectors must be SparseVectors; got {type(sparse).__name__}")
        if len(sparse) != n:
            raise ValueError(f"{n} ids but {len(sparse)} sparse vectors")
        return sparse

    def _write_indexes(self, new: Manifest) -> None:
        """Write every index under commit ``new.commit``, then commit ``new`` (the atomic step)."""
        if self._dense is not None:
            self._store.write_dense(self._dense, new.commit)
        if self._sparse is not None:
            self._store.write_sparse(self._sparse, new.commit)
        if self._splade is not None:
            self._store.write_sparse(self._splade, new.commit, "splade")
        self._store.commit(new)

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
        self,
        queries: Any,
        k: int = 10,
        *,
        mode: Mode | None = None,
        legs: Sequence[str] | None = None,
        fusion: Fusion | dict[str, Any] | None = None,
        depth: int | None = None,
        threads: int | None = None,
    ) -> SearchResult:
        """Top-k documents for each query.

        Parameters
        ----------
        queries : str, sequence of str, float array (n_queries, dim), or EncodedQueries
            Query texts; query vectors (dense mode only); or :meth:`encode_queries` output.
        k : int
            Hits per query (padded with id -1 when fewer documents match).
        mode : {"dense", "bm25", "sparse", "hybrid"}, optional
            Which retriever answers: one leg, or the fusion of several. Default: the dense leg
            if the collection has one, else the learned-sparse one, else BM25.
        legs : sequence of {"bm25", "sparse", "dense"}, optional
            Hybrid: the legs to fuse (default: all the collection has).
        fusion : ConvexFusion, RRF, DBSF or its dict, optional
            Hybrid: how to fuse. Default: the one :meth:`fit_fusion` saved for these legs, else
            an equal-weight convex combination of min-max normalised scores.
        depth : int, optional
            Hybrid: candidates taken from each leg (default max(k, 100)). Scores a leg did not
            return for another leg's candidates are looked up (exact for every leg but IVF-PQ).
        threads : int, optional
            Sparse legs: threads for a batch of queries (default: all cores).

        Returns
        -------
        SearchResult
            Internal keys and scores; ``.doc_ids()`` and ``.to_arrow()`` give your ids and documents.
        """
        from granite_index import hybrid

        if mode is None:
            mode = next(m for m in ("dense", "sparse", "bm25") if m in self.modes)
        if mode not in ("dense", "bm25", "sparse", "hybrid"):
            raise ValueError(f"mode must be 'dense', 'bm25', 'sparse' or 'hybrid'; got {mode!r}")
        if mode not in self.modes:
            raise ValueError(
                f"this collection has no {mode} mode; it answers {self.modes} "
                "(choose dense= / sparse= in Collection.create)"
            )
        if mode != "hybrid" and (legs is not None or fusion is not None or depth is not None):
            raise ValueError("legs, fusion and depth are for mode='hybrid'")
        k = check_k(k)
        if mode == "hybrid":
            use = hybrid.resolve_legs(self, legs)
            strategy = hybrid.resolve_fusion(self, fusion, use)
            encoded = hybrid.as_encoded(self, queries, use)
            ids, scores = hybrid.search(self, encoded, k, use, strategy, depth, threads)
            return SearchResult(ids, scores, self)
        if mode == "dense" and isinstance(queries, np.ndarray):
            res = self._dense.search(check_matrix(queries, "queries", self._dense.dim), k)
            return SearchResult(res.ids, res.scores, self)
        res = self._leg_search(mode, hybrid.as_encoded(self, queries, (mode,)), k, threads)
        return SearchResult(res.ids, res.scores, self)

    def encode_queries(self, queries: Any, legs: Sequence[str] | None = None) -> EncodedQueries:
        """Encode query texts once for the given legs (default: all), for :meth:`search`."""
        from granite_index import hybrid

        return hybrid.encode_queries(self, queries, legs)

    def _leg_index(self, leg: str) -> Any:
        return {"bm25": self._sparse, "sparse": self._splade, "dense": self._dense}[leg]

    def _leg_search(
        self, leg: str, queries: EncodedQueries, k: int, threads: int | None
    ) -> SearchResult:
        q = queries.leg_input(leg)
        if leg == "dense":
            return self._dense.search(q, k)
        return self._leg_index(leg).search(q, k, threads=threads)

    def _leg_score(self, leg: str, queries: EncodedQueries, ids: np.ndarray) -> np.ndarray:
        return self._leg_index(leg).score(queries.leg_input(leg), ids)

    def fit_fusion(
        self,
        queries: Any,
        qrels: dict[str, dict[str, int]],
        query_ids: Sequence[str],
        *,
        legs: Sequence[str] | None = None,
        metric: str = "nDCG@10",
        depth: int | None = None,
        save: bool = True,
    ) -> FitResult:
        """Choose the hybrid fusion on labelled queries (a train split; never the test set).

        Grid-searches convex weights with each normalisation, RRF and DBSF
        (:func:`granite_index.fusion_fit.fit_fusion`) and, with ``save``, stores the best in the
        manifest (one commit): later hybrid searches over the same legs use it.

        Parameters
        ----------
        queries : sequence of str or EncodedQueries
        qrels : dict
            ``{query_id: {doc_id: relevance}}`` (doc ids as in this collection, as strings).
        query_ids : sequence of str
            The id of each query, in order.
        legs : sequence of str, optional
            Legs to fuse (default: all the collection has).
        metric : str
            What to maximise (an ir-measures name, e.g. ``"nDCG@10"``, ``"R@100"``).
        depth : int, optional
            Candidates per leg (default 100).
        save : bool
            Store the chosen fusion in the manifest.

        Returns
        -------
        FitResult
            The chosen fusion, its training score and the table of all tried.
        """
        from granite_index import hybrid

        result = hybrid.fit(self, queries, qrels, query_ids, legs, metric, depth)
        if save:
            # the indexes do not change: the same commit, with a new manifest (atomic rewrite)
            with self._store.writer():
                self._store.commit(dataclasses.replace(self.manifest, fusion=result.saved))
        return result.fit

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
        empty = docs_schema(self._dim, self.manifest.id_type or "str").empty_table()
        return rows_by_key(self._store.docs(), keys, columns, empty)

    def _external_ids(self, keys: np.ndarray) -> list[list[Any]]:
        return [[self._key_to_id[int(k)] for k in row if k >= 0] for row in keys]

    def _hits_table(self, result: SearchResult, *, with_documents: bool) -> pa.Table:
        return hits_table(result, self._key_to_id, self._rows if with_documents else None)
