"""Writing a collection: add, delete, upsert, one commit each, under optimistic concurrency.

A write (1) checks and encodes its documents without the lock (encoding is the slow part);
(2) takes the collection's lock, waiting up to the handle's ``lock_timeout``; (3) catches up: when
another handle or process committed since this handle last read the collection, the handle
rereads the newest commit, so other writers' adds and deletes are kept; (4) checks the change
against that newest state: an id the other writer added (or deleted) since is a
:class:`~granite_index.errors.ConflictError`, and nothing is written; (5) rolls the Lance documents
back past versions no commit names (a writer killed mid-write), writes the new documents and
index folders, and commits the manifest. A part of :class:`~granite_index.collection.Collection`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from granite_index.collection.documents import (
    docs_table,
    metadata_json,
    metadata_records,
    split_table,
    typed_columns,
)
from granite_index.collection.store import Manifest, Store
from granite_index.errors import ConflictError, DuplicateIdError, UnknownIdError
from granite_index.index.dense import DenseIndex
from granite_index.index.idmap import IdMap
from granite_index.index.segment import segment_names
from granite_index.types import SparseVectors
from granite_index.validate import check_ids, check_matrix, check_texts, preview

if TYPE_CHECKING:  # pragma: no cover
    from granite_index.index.sparse import SparseIndex

#: seconds a write waits for another writer's lock by default
LOCK_TIMEOUT = 60.0
#: documents from which an add also brings the Lance index on ``_key`` up to date
KEY_INDEX_ROWS = 50_000
#: writes after which a write runs :meth:`Writing.optimize` (small commits pile up fragments)
AUTO_OPTIMIZE_WRITES = 256


@dataclass(frozen=True)
class _NewDocs:
    """Documents checked and encoded for one write (BM25 terms come later, under the lock)."""

    ids: list[Any]
    id_type: str
    texts: list[str]
    meta: list[str | None]
    records: list[dict | None]
    vectors: np.ndarray | None
    impacts: SparseVectors | None


class Writing:
    """Write verbs over the collection's store and indexes (mixed into ``Collection``)."""

    _store: Store
    _dense: DenseIndex | None
    _bm25: SparseIndex | None
    _splade: SparseIndex | None
    _ids: IdMap
    lock_timeout: float
    _pinned: bool

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
        ConflictError
            Another writer added one of the ids since this handle last read the collection.
        LockTimeoutError
            Another writer held the lock longer than ``lock_timeout``.
        TypeError, ValueError
            Bad ids, empty or non-string texts, mismatched lengths or vector dimension.
        """
        new = self._prepare(ids, texts, metadata, vectors, sparse_vectors, show_progress)
        if new is None:
            return
        present = [i for i, k in zip(new.ids, self._ids.keys_of(new.ids)) if k >= 0]
        if present:
            raise DuplicateIdError(f"ids already in the collection: {preview(present)}")
        self._write(new, (), replace=False)

    def upsert(
        self,
        ids: Any,
        texts: Any = None,
        metadata: Any = None,
        *,
        vectors: Any = None,
        sparse_vectors: SparseVectors | None = None,
        show_progress: Any = False,
    ) -> None:
        """Insert documents, replacing those whose id is already in the collection, in one commit.

        Takes what :meth:`add` takes. A replaced document gets its new text, metadata and
        vectors in every index; readers see the old version or the new one, never both.
        """
        new = self._prepare(ids, texts, metadata, vectors, sparse_vectors, show_progress)
        if new is not None:
            self._write(new, (), replace=True)

    def delete(self, ids: Any) -> None:
        """Delete documents by id in one commit.

        Raises
        ------
        UnknownIdError
            Some ids are not in the collection (nothing is deleted).
        ConflictError
            Another writer deleted one of them since this handle last read the collection.
        """
        ids, _ = check_ids(ids)
        if not ids:
            return
        missing = [i for i, k in zip(ids, self._ids.keys_of(ids)) if k < 0]
        if missing:
            raise UnknownIdError(f"ids not in the collection: {preview(missing)}")
        self._write(None, ids, replace=False)

    def optimize(self) -> None:
        """Compact the collection in one commit: the Lance documents' fragments, each sparse
        index into one segment, the dense index into one segment per ``segment_max`` vectors
        (2M: deleted vectors dropped, IVF lists rebuilt past ``ivf_min``; each merged segment is
        written to disk as it is made); then remove the Lance versions and index files no
        retained commit needs, and files of killed writes. Costs O(the collection).

        Search results are unchanged (approximate dense search may find other neighbours: its
        lists are rebuilt). Every :data:`AUTO_OPTIMIZE_WRITES` writes a lighter pass runs by
        itself: Lance's small fragments, and the dense index's small segments and mostly
        deleted ones (the sparse indexes and the id map merge as they grow).
        """
        self._compact(full=True)

    def _compact(self, *, full: bool) -> None:
        with self._store.writer(self.lock_timeout), self._rollback_on_error():
            self._catch_up()
            m = self._store.manifest
            since = time.time()
            self._store.begin_write()
            lance_version = self._store.compact_docs()
            if full:  # the light pass leaves the sparse indexes to their own merge policy
                for index in (self._bm25, self._splade):
                    if index is not None:
                        index.optimize()
                self._ids.optimize()
            if self._dense is not None and full:  # merged segments spill to disk one by one
                self._dense.optimize(spill_to=self._store.dense_segments())
            elif self._dense is not None:
                self._dense.maintain()
            extra = {**m.extra, "writes_since_optimize": 0, "ids": 1}
            self._write_indexes(m.next(lance_version=lance_version, extra=extra), since)
            self._store.cleanup_docs()
            self._store.remove_leftovers()

    # ------------------------------------------------------------------ the write path
    def _prepare(
        self, ids: Any, texts: Any, metadata: Any, vectors: Any, sparse: Any, show_progress: Any
    ) -> _NewDocs | None:
        """Check the documents and encode them for the dense and SPLADE legs (no lock held)."""
        if texts is None:
            ids, texts, metadata = split_table(ids)
        ids, id_type = check_ids(ids)
        texts = check_texts(texts)
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
        if not ids:
            return None
        records = metadata_records(metadata, len(ids))
        meta = metadata_json(records, len(ids))
        self._check_id_type(id_type)
        vectors, impacts = self._encode_documents(texts, vectors, show_progress, sparse)
        return _NewDocs(ids, id_type, texts, meta, records, vectors, impacts)

    def _check_id_type(self, id_type: str) -> None:
        have = self._store.manifest.id_type
        if have not in (None, id_type):
            raise TypeError(f"this collection's ids are {have}; got {id_type} ids")

    def _write(self, new: _NewDocs | None, delete: Any, *, replace: bool) -> None:
        """One commit: delete ``delete`` (and, with ``replace``, the ids of ``new`` present),
        then add ``new``; under the lock, on the newest commit."""
        with self._store.writer(self.lock_timeout), self._rollback_on_error():
            self._catch_up()
            dead = self._ids.keys_of(delete)
            if new is not None:
                self._check_id_type(new.id_type)
                keys = self._ids.keys_of(new.ids)
                taken = [i for i, k in zip(new.ids, keys) if k >= 0]
                if taken and not replace:
                    raise ConflictError(
                        "another writer added these ids since this handle last read the "
                        f"collection: {preview(taken)}; nothing was written"
                    )
                delete = [*delete, *taken]
                dead = np.concatenate([dead, keys[keys >= 0]])
            gone = [i for i, k in zip(delete, dead) if k < 0]
            if gone:
                raise ConflictError(
                    "another writer deleted these ids since this handle last read the "
                    f"collection: {preview(gone)}; nothing was written"
                )
            self._apply(new, dead.tolist())
        if self._store.manifest.extra.get("writes_since_optimize", 0) >= AUTO_OPTIMIZE_WRITES:
            self._compact(full=False)

    def _apply(self, new: _NewDocs | None, dead: list[int]) -> None:
        """Write the change on the newest commit (lock held): Lance rows, indexes, manifest."""
        m = self._store.manifest
        since = time.time()
        self._store.begin_write()
        lance_version = m.lance_version
        if dead:
            lance_version = self._store.delete_docs(dead)
            for index in (self._dense, self._splade, self._bm25):
                if index is not None:
                    index.delete(dead)
            self._ids.delete_keys(np.asarray(dead, np.int64))
        n_new = 0 if new is None else len(new.ids)
        if new is not None:
            keys = np.arange(m.next_key, m.next_key + n_new, dtype=np.int64)
            schema = self._store.docs_schema()
            stored = new.vectors if schema is not None and "vector" in schema.names else None
            typed = typed_columns(new.records, schema)
            if schema is not None:  # fields first seen now: new (all-null) columns, then rows
                fresh = [pa.field(n, a.type) for n, a in typed.items() if n not in schema.names]
                if fresh:
                    self._store.add_doc_columns(fresh)
            table = docs_table(keys, new.ids, new.texts, new.meta, stored, new.id_type, typed)
            lance_version = self._store.append_docs(table)
            if n_new >= KEY_INDEX_ROWS:  # a bulk add: index its keys now, not at the next pass
                lance_version = self._store.index_keys()
            self._add_to_indexes(keys, new)
            self._ids.add(new.ids, keys, new.id_type)
        writes = int(m.extra.get("writes_since_optimize", 0)) + 1
        self._write_indexes(
            m.next(
                lance_version=lance_version,
                id_type=new.id_type if new is not None else m.id_type,
                next_key=m.next_key + n_new,
                n_docs=m.n_docs - len(dead) + n_new,
                extra={**m.extra, "writes_since_optimize": writes, "ids": 1},
            ),
            since,
        )

    def _add_to_indexes(self, keys: np.ndarray, new: _NewDocs) -> None:
        if self._dense is not None:
            self._dense.add(keys, new.vectors)
        if self._bm25 is not None:  # term ids from the newest vocabulary: under the lock
            self._bm25.add(keys, *self._bm25.encode_texts(new.texts, grow=True))
        if self._splade is not None:
            impacts = new.impacts
            self._splade.add(keys, impacts.indptr, impacts.indices, impacts.values)

    def _catch_up(self) -> bool:
        """Reread the collection when another writer committed since this handle read it;
        True when it moved."""
        latest = self._store.latest()
        if latest.manifest == self._store.manifest:
            return False
        self._store, self._pinned = latest, False
        self._load_state()
        return True

    def _encode_documents(
        self, texts: list[str], vectors: Any, show_progress: Any, sparse_vectors: Any = None
    ) -> tuple[np.ndarray | None, SparseVectors | None]:
        """What the dense and SPLADE indexes need of new documents: vectors and impacts."""
        if self._dense is None:
            if vectors is not None:
                raise ValueError("this collection has no dense index; do not pass vectors")
        elif vectors is None:
            vectors = self.encoder.encode_documents(texts, show_progress=show_progress)
        else:
            vectors = check_matrix(vectors, "vectors", self._dense.dim)
            if len(vectors) != len(texts):
                raise ValueError(f"{len(texts)} ids but {len(vectors)} vectors")
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
        return vectors, impacts

    def _check_sparse_vectors(self, sparse: Any, n: int) -> SparseVectors:
        if self._splade is None:
            raise ValueError("this collection has no SPLADE index; do not pass sparse_vectors")
        if not isinstance(sparse, SparseVectors):
            raise TypeError(f"sparse_vectors must be SparseVectors; got {type(sparse).__name__}")
        if len(sparse) != n:
            raise ValueError(f"{n} ids but {len(sparse)} sparse vectors")
        return sparse

    def _write_indexes(self, new: Manifest, since: float) -> None:
        """Write every index under commit ``new.commit``, fsync all the write made since
        ``since``, then commit ``new`` (the atomic step), then drop the files of commits no
        longer retained."""
        self._store.write_ids(self._ids, new.commit)
        if self._dense is not None:
            self._store.write_dense(self._dense, new.commit)
        for name, index in (("bm25", self._bm25), ("splade", self._splade)):
            if index is not None:
                self._store.write_sparse(index, new.commit, name)
        self._store.sync(new.commit, since)
        self._store.commit(new)
        self._store.prune(segment_names, DenseIndex.segment_files, IdMap.segment_files)

    @contextlib.contextmanager
    def _rollback_on_error(self) -> Iterator[None]:
        """On an error, reread the last commit: the in-memory state may be half-updated."""
        try:
            yield
        except BaseException:
            self._store, self._pinned = self._store.latest(), False
            self._load_state()
            raise
