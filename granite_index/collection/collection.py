"""A collection: documents, their vectors and indexes (dense, BM25, learned sparse), persisted as one folder."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from granite_index.collection.documents import (
    docs_table,
    hits_table,
    metadata_json,
    rows_by_key,
    split_table,
)
from granite_index.collection.searching import Searching
from granite_index.collection.spec import LegSpec, check_specs, specs_from_options
from granite_index.collection.state import LoadedState, build_indexes, load_state
from granite_index.collection.store import Manifest, Store, docs_schema
from granite_index.errors import DuplicateIdError, UnknownIdError
from granite_index.index.dense import DenseIndex, Device
from granite_index.index.segment import segment_names
from granite_index.index.sparse import SparseIndex
from granite_index.search import (
    LEG_NAMES,
    Bm25Leg,
    DenseLeg,
    Leg,
    SpladeLeg,
)
from granite_index.types import SearchResult, SparseVectors
from granite_index.validate import as_list, check_ids, check_matrix, check_texts, preview

if TYPE_CHECKING:  # the encoders (torch) load only when a collection needs them
    from granite_index.encoders.dense import DenseEncoder
    from granite_index.encoders.sparse import SparseEncoder

Mode = Literal["dense", "bm25", "sparse", "hybrid"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


class Collection(Searching):
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
        legs: Sequence[LegSpec] | None = None,
        *,
        device: Device = "auto",
        **options: Any,
    ) -> Collection:
        """Make a new, empty collection at ``path`` (which must not exist, or be an empty folder).

        Parameters
        ----------
        path : str or path
        legs : sequence of DenseSpec, Bm25Spec, SpladeSpec, optional
            The legs to keep, one spec each (see :mod:`granite_index.collection.spec`). Without
            it, ``options`` say the same in short (default: one dense leg, the bundled model).
        device : {"auto", "cpu", "cuda"}
            Where the dense index searches (GPU when present for ``flat``).
        **options :
            The shorthand, when ``legs`` is not given:

            - ``dense`` (bool, True): keep a dense index; ``model`` (local folder, Hugging Face
              id, or None for the bundled all-MiniLM-L6-v2) or ``encoder`` (loaded); ``index``
              (``"flat"`` | ``"hnsw"`` | ``"ivfpq"``) and ``index_params``; ``precision`` and
              ``batch_size`` for encoding.
            - ``sparse`` ("bm25", "splade" or a list of them): also keep a BM25 index
              (``mode="bm25"``: ``language``, ``bm25_params`` with ``k1``, ``b``, ``stopwords``,
              ``stem``, ``lowercase``) and/or a SPLADE index (``mode="sparse"``:
              ``sparse_model`` or ``sparse_encoder``, ``sparse_params``).

            With two legs or more, ``mode="hybrid"`` fuses them.
        """
        if legs is not None and options:
            raise TypeError(f"give legs or the shorthand options, not both: {sorted(options)}")
        specs = check_specs(legs) if legs is not None else specs_from_options(**options)
        built = build_indexes(specs)
        manifest = Manifest(
            encoder=built.encoder.config.to_dict() if built.dense is not None else None,
            dense_index=built.dense_entry,
            sparse_index=built.bm25.config() if built.bm25 is not None else None,
            splade_encoder=built.sparse_encoder.config.to_dict()
            if built.splade is not None
            else None,
            splade_index=built.splade.config() if built.splade is not None else None,
        )
        sparse = {"bm25": built.bm25, "splade": built.splade}
        store = Store.create(
            path, manifest, built.dense, {k: v for k, v in sparse.items() if v is not None}
        )
        return cls(store, built.encoder, device, built.encoder_options, built.sparse_encoder)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        precision: Precision = "auto",
        batch_size: int = 32,
        device: Device = "auto",
        encoder: DenseEncoder | None = None,
        sparse_encoder: SparseEncoder | None = None,
    ) -> Collection:
        """Open a collection as of its last commit. The encoders load on first use.

        Parameters
        ----------
        precision, batch_size :
            Encoding options of the encoders loaded from the manifest.
        device : {"auto", "cpu", "cuda"}
            Where the dense index searches.
        encoder, sparse_encoder : optional
            Encoders already loaded, used instead of loading the manifest's (they must be the
            ones the collection was built with).

        Raises
        ------
        NotACollectionError
            ``path`` holds no collection.
        FormatVersionError
            The collection was written by a newer granite-index.
        ValueError
            A given encoder is not the model (name and revision) the collection was built with.
        """
        store = Store.open(path)
        m = store.manifest
        for given, saved, what in (
            (encoder, m.encoder, "encoder"),
            (sparse_encoder, m.splade_encoder, "sparse_encoder"),
        ):
            if given is not None:
                _check_same_encoder(given, saved, what, store.path)
        options = {"precision": precision, "batch_size": batch_size}
        return cls(store, encoder, device, options, sparse_encoder)

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        """True when ``path`` holds a collection (a committed manifest)."""
        return Store.exists(path)

    def _load_state(self) -> None:
        """(Re)read the committed state: indexes and the id ↔ key maps."""
        state: LoadedState = load_state(self._store, self._device)
        self._dense, self._bm25, self._splade = state.dense, state.bm25, state.splade
        self._id_to_key, self._key_to_id = state.id_to_key, state.key_to_id
        self._legs = self._make_legs()  # the indexes change in place until the next load

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
        """The FAISS index (``mode="dense"``)."""
        return self._dense

    @property
    def bm25_index(self) -> SparseIndex | None:
        """The BM25 index (``mode="bm25"``)."""
        return self._bm25

    @property
    def splade_index(self) -> SparseIndex | None:
        """The learned-sparse index (``mode="sparse"``)."""
        return self._splade

    @property
    def sparse_index(self) -> SparseIndex | None:
        """Deprecated alias of :attr:`bm25_index` (removed in 0.3)."""
        warnings.warn(
            "Collection.sparse_index is the BM25 index and is renamed bm25_index",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._bm25

    def _indexes(self) -> dict[str, DenseIndex | SparseIndex]:
        """The indexes held, by leg name, in :data:`LEG_NAMES` order."""
        have = {"bm25": self._bm25, "sparse": self._splade, "dense": self._dense}
        return {name: have[name] for name in LEG_NAMES if have[name] is not None}

    @property
    def legs(self) -> dict[str, Leg]:
        """This collection's legs by name (``"bm25"``, ``"sparse"``, ``"dense"``), each a
        :class:`~granite_index.search.Leg` over its index (query encoders load on first use)."""
        return dict(self._legs)

    def _make_legs(self) -> dict[str, Leg]:
        out: dict[str, Leg] = {}
        for name, index in self._indexes().items():
            if name == "bm25":
                out[name] = Bm25Leg(index)
            elif name == "sparse":
                out[name] = SpladeLeg(index, lambda t: self.sparse_encoder.encode_queries(t))
            else:
                out[name] = DenseLeg(index, lambda t: self.encoder.encode_queries(t))
        return out

    @property
    def modes(self) -> list[str]:
        """The search modes this collection answers (``hybrid`` when it has two legs or more)."""
        legs = list(self._legs)
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
            if self._bm25 is None
            else {
                **m.sparse_index,
                "postings": self._bm25.n_postings,
                "segments": len(self._bm25.segments),
                "vocabulary": len(self._bm25.vocab or ()),
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
            if self._bm25 is not None:
                self._bm25.add(keys, *terms)
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
            for index in self._indexes().values():
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
        terms = self._bm25.encode_texts(texts, grow=True) if self._bm25 is not None else None
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
        if self._splade is None:
            raise ValueError("this collection has no SPLADE index; do not pass sparse_vectors")
        if not isinstance(sparse, SparseVectors):
            raise TypeError(f"sparse_vectors must be SparseVectors; got {type(sparse).__name__}")
        if len(sparse) != n:
            raise ValueError(f"{n} ids but {len(sparse)} sparse vectors")
        return sparse

    def _write_indexes(self, new: Manifest) -> None:
        """Write every index under commit ``new.commit``, then commit ``new`` (the atomic step),
        then drop the files no commit needs."""
        if self._dense is not None:
            self._store.write_dense(self._dense, new.commit)
        for name, index in (("bm25", self._bm25), ("splade", self._splade)):
            if index is not None:
                self._store.write_sparse(index, new.commit, name)
        self._store.commit(new)
        for name, index in (("bm25", self._bm25), ("splade", self._splade)):
            if index is not None:
                used = segment_names(self._store.sparse_dir(name=name))
                self._store.drop_unused_segments(name, used)

    @contextlib.contextmanager
    def _rollback_on_error(self) -> Iterator[None]:
        """On an error, reread the last commit: the in-memory state may be half-updated."""
        try:
            yield
        except BaseException:
            self._store = Store.open(self.path)
            self._load_state()
            raise

    # ------------------------------------------------------------------ documents out
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

    # ------------------------------------------------------------------ DocumentSource
    def ids_of(self, keys: np.ndarray) -> list[list[Any]]:
        """Your document ids of internal keys int64 (n_queries, k), per row, padding dropped."""
        return [[self._key_to_id[int(k)] for k in row if k >= 0] for row in keys]

    def hits_table(self, result: SearchResult, *, with_documents: bool) -> pa.Table:
        """One row per hit of ``result`` (see :meth:`SearchResult.to_arrow`)."""
        return hits_table(result, self._key_to_id, self._rows if with_documents else None)


def _check_same_encoder(encoder: Any, saved: dict[str, Any] | None, what: str, path: Path) -> None:
    """ValueError unless ``encoder`` is the model (name and revision) the manifest names."""
    if saved is None:
        raise ValueError(f"{what} given, but {path} has no leg that uses one")
    config = encoder.config.to_dict()
    differ = [k for k in ("model", "revision") if config.get(k) != saved.get(k)]
    if differ:
        raise ValueError(
            f"{what} is {config.get('model')!r} ({config.get('revision')}), but {path} was built "
            f"with {saved.get('model')!r} ({saved.get('revision')})"
        )
