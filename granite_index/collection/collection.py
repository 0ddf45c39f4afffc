"""A collection: documents, their vectors and indexes (dense, BM25, learned sparse), persisted as one folder."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from granite_index.collection.documents import (
    hits_table,
    rows_by_key,
)
from granite_index.collection.searching import Searching
from granite_index.collection.spec import LegSpec, check_specs, specs_from_options
from granite_index.collection.state import LoadedState, build_indexes, load_newest, load_state
from granite_index.collection.store import Manifest, Store, docs_schema, local_path
from granite_index.collection.writing import LOCK_TIMEOUT, Writing
from granite_index.errors import UnknownIdError
from granite_index.index.dense import DenseIndex, Device
from granite_index.index.sparse import SparseIndex
from granite_index.search import (
    LEG_NAMES,
    Bm25Leg,
    DenseLeg,
    Leg,
    SpladeLeg,
)
from granite_index.types import SearchResult
from granite_index.validate import as_list, preview

if TYPE_CHECKING:  # the encoders (torch) load only when a collection needs them
    from granite_index.encoders.dense import DenseEncoder
    from granite_index.encoders.sparse import SparseEncoder

Mode = Literal["dense", "bm25", "sparse", "hybrid"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


class Collection(Writing, Searching):
    """Documents + vectors + indexes in one folder; the verbs are add, delete, search, open.

    Create one with :meth:`create`, reopen it with :meth:`open`. Every ``add``, ``upsert`` and
    ``delete`` is one atomic commit: a process killed part-way leaves the collection as of its
    last commit. Several handles and processes may write: each write takes the lock, catches up
    with the commits of the others, and raises :class:`~granite_index.ConflictError` (writing
    nothing) when they touched the same ids.

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
        lock_timeout: float = LOCK_TIMEOUT,
        pinned: bool = False,
    ) -> None:
        self.lock_timeout = float(lock_timeout)
        self._pinned = pinned  # opened at an explicit version: never moved by a retry
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
        lock_timeout: float = LOCK_TIMEOUT,
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
        lock_timeout : float
            Seconds a write waits for another writer's lock (default 60).
        **options :
            The shorthand, when ``legs`` is not given:

            - ``dense`` (bool, True): keep a dense index; ``model`` (local folder, Hugging Face
              id, or None for the bundled all-MiniLM-L6-v2) or ``encoder`` (loaded); ``index``
              (``"auto"`` | ``"flat"`` | ``"ivf"`` | ``"hnsw"``) and ``index_params``; ``precision`` and
              ``batch_size`` for encoding.
            - ``sparse`` ("bm25", "splade" or a list of them): also keep a BM25 index
              (``mode="bm25"``: ``language``, ``bm25_params`` with ``k1``, ``b``, ``stopwords``,
              ``stem``, ``lowercase``) and/or a SPLADE index (``mode="sparse"``:
              ``sparse_model`` or ``sparse_encoder``, ``sparse_params``).

            With two legs or more, ``mode="hybrid"`` fuses them.
        """
        path = local_path(path)  # before any model loads
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
        return cls(
            store, built.encoder, device, built.encoder_options, built.sparse_encoder, lock_timeout
        )

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
        lock_timeout: float = LOCK_TIMEOUT,
        version: int | None = None,
    ) -> Collection:
        """Open a collection as of its last commit (or of commit ``version``). The encoders load
        on first use.

        Parameters
        ----------
        precision, batch_size :
            Encoding options of the encoders loaded from the manifest.
        device : {"auto", "cpu", "cuda"}
            Where the dense index searches.
        encoder, sparse_encoder : optional
            Encoders already loaded, used instead of loading the manifest's (they must be the
            ones the collection was built with).
        lock_timeout : float
            Seconds a write waits for another writer's lock (default 60).
        version : int, optional
            A retained commit to read (see :meth:`versions`): time travel. The handle reads that
            commit until :meth:`refresh`; a write from it first catches up with the newest.

        Raises
        ------
        NotACollectionError
            ``path`` holds no collection.
        UnsupportedPathError
            ``path`` is an URI (``s3://...``): collections are local folders.
        FormatVersionError
            The collection was written by a newer granite-index.
        ValueError
            A given encoder is not the model (name and revision) the collection was built with.
        """
        store = Store.open(path, version)
        m = store.manifest
        for given, saved, what in (
            (encoder, m.encoder, "encoder"),
            (sparse_encoder, m.splade_encoder, "sparse_encoder"),
        ):
            if given is not None:
                _check_same_encoder(given, saved, what, store.path)
        options = {"precision": precision, "batch_size": batch_size}
        pinned = version is not None
        return cls(store, encoder, device, options, sparse_encoder, lock_timeout, pinned)

    def refresh(self) -> bool:
        """Read the newest commit if another handle committed since this one read the collection
        (a handle reads one commit, its snapshot, until then). Returns True when it moved."""
        return self._catch_up()

    def versions(self) -> list[dict[str, Any]]:
        """The commits kept on disk, oldest first: ``commit``, ``time`` (seconds since the epoch),
        ``n_docs``. Any of them opens with ``Collection.open(path, version=commit)``. Which are
        kept is the collection's retention (:meth:`set_retention`; by default only the newest)."""
        return self._store.versions()

    def set_retention(self, keep_commits: int = 1, seconds: float = 0.0) -> None:
        """Keep the files of the newest ``keep_commits`` commits and of every commit younger
        than ``seconds``, for time travel (``Collection.open(path, version=N)``). Saved in the
        manifest (one manifest-only commit). Each retained commit keeps its own copy of the
        dense index: budget disk accordingly."""
        if isinstance(keep_commits, bool) or not isinstance(keep_commits, int) or keep_commits < 1:
            raise ValueError(f"keep_commits must be an int >= 1; got {keep_commits!r}")
        if not isinstance(seconds, (int, float)) or seconds < 0 or seconds != seconds:
            raise ValueError(f"seconds must be a number >= 0; got {seconds!r}")
        policy = {"keep_commits": keep_commits, "seconds": float(seconds)}
        with self._store.writer(self.lock_timeout):
            self._catch_up()
            m = self._store.manifest
            self._store.commit(dataclasses.replace(m, extra={**m.extra, "retention": policy}))

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        """True when ``path`` holds a collection (a committed manifest)."""
        return Store.exists(path)

    def _load_state(self) -> None:
        """(Re)read the committed state: indexes and the id ↔ key maps. A handle on the newest
        commit moves to a newer one if a writer removed a file meanwhile; one opened at an old
        ``version`` does not."""
        if self._pinned:
            state: LoadedState = load_state(self._store, self._device)
        else:
            self._store, state = load_newest(self._store, self._device)
        self._dense, self._bm25, self._splade = state.dense, state.bm25, state.splade
        self._ids = state.ids
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
        return len(self._ids)

    def add_from(
        self,
        source: Any,
        *,
        batch_size: int = 10_000,
        show_progress: bool = True,
        **fields: Any,
    ) -> int:
        """Stream a corpus into the collection without holding it: the documents of ``source``
        the collection lacks, ``batch_size`` per commit, with a progress bar. Calling it again
        after an interruption adds only what is missing.

        ``source`` is a ``.jsonl`` (or ``.jsonl.gz``) file, a BEIR folder, a ``.parquet`` file
        or folder, a Lance dataset, a pyarrow table / record batch / reader / dataset, a pandas
        DataFrame, or an iterable of dicts or of ``Batch``; ``fields`` name its columns
        (``id_field``, ``text_field``, ``title_field``, ``vector_field``, ``metadata_fields``;
        see :func:`~granite_index.collection.sources.read_batches`). Returns the documents added.
        """
        from granite_index.collection.ingest import add_source

        return add_source(
            self, source, batch_size=batch_size, show_progress=show_progress, **fields
        )

    def count(self, where: str | None = None) -> int:
        """Documents in the collection, or those matching the filter ``where`` (Lance SQL over
        the documents' columns, as in :meth:`search`)."""
        if where is None:
            return len(self)
        keys = self._allowed_keys(where)
        return 0 if keys is None else len(keys)

    @property
    def schema(self) -> pa.Schema | None:
        """The Arrow schema of the stored documents (``id``, ``text``, ``metadata`` as JSON, and
        the typed metadata columns that filters read); None before the first add."""
        return self._store.docs_schema()

    def __contains__(self, doc_id: Any) -> bool:
        return bool(self._ids.keys_of([doc_id])[0] >= 0)

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

    # ------------------------------------------------------------------ documents out
    def get(self, ids: Any) -> pa.Table:
        """Documents by id, in the order asked: ``id``, ``text``, ``metadata`` (JSON text) columns."""
        keys = self._keys(as_list(ids, "ids"))
        return self._rows(keys.tolist()).drop_columns(["_key"])

    def vectors(self, ids: Any) -> np.ndarray:
        """Stored document vectors by id, float32 (n, dim)."""
        if self._dense is None:
            raise ValueError(f"{self.path} has no dense index, so no vectors")
        return self._dense.vectors(self._keys(as_list(ids, "ids")))

    def _keys(self, ids: list[Any]) -> np.ndarray:
        """Keys of ``ids`` (int64); UnknownIdError naming those not in the collection."""
        keys = self._ids.keys_of(ids)
        if (keys < 0).any():
            missing = [i for i, k in zip(ids, keys) if k < 0]
            raise UnknownIdError(f"ids not in the collection: {preview(missing)}")
        return keys

    def _rows(self, keys: list[int], columns: list[str] | None = None) -> pa.Table:
        """Rows by key, in the order of ``keys`` (keys must exist)."""
        columns = columns or ["_key", "id", "text", "metadata"]
        empty = docs_schema(self._dim, self.manifest.id_type or "str").empty_table()
        return rows_by_key(self._store.docs(), keys, columns, empty)

    # ------------------------------------------------------------------ DocumentSource
    def ids_of(self, keys: np.ndarray) -> list[list[Any]]:
        """Your document ids of internal keys int64 (n_queries, k), per row, padding dropped."""
        return [self._ids.ids_of(row[row >= 0]) for row in np.asarray(keys)]

    def hits_table(self, result: SearchResult, *, with_documents: bool) -> pa.Table:
        """One row per hit of ``result`` (see :meth:`SearchResult.to_arrow`)."""
        return hits_table(result, self._ids.ids_of, self._rows if with_documents else None)


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
