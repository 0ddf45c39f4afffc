"""The one chunked, resumable ingest loop: documents into a collection, one commit per chunk.

:func:`ingest` takes an iterable of :class:`Batch` (texts, maybe with vectors already computed)
and adds, per batch, the documents the collection does not hold yet, in one commit each. A run
stopped part-way keeps every finished batch, and the same call resumes where it stopped.
:func:`index_corpus` (ids + texts in memory) and the encoded-dataset loader of
:mod:`granite_index.jobs` both run through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from granite_index.types import SparseVectors

if TYPE_CHECKING:  # pragma: no cover
    from granite_index.collection.collection import Collection


@dataclass(frozen=True)
class Batch:
    """Documents to add together: ids, texts, optional metadata and precomputed vectors.

    Attributes
    ----------
    ids : list of int or str
    texts : list of str
    metadata : list of dict or None, optional
    vectors : numpy.ndarray of float32, shape (n, dim), optional
        Dense vectors from the collection's encoder.
    sparse_vectors : SparseVectors, optional
        SPLADE rows from the collection's sparse encoder.
    """

    ids: list[Any]
    texts: list[str]
    metadata: list[dict | None] | None = None
    vectors: np.ndarray | None = None
    sparse_vectors: SparseVectors | None = None

    def take(self, rows: Sequence[int]) -> Batch:
        """The documents at positions ``rows``, in that order."""
        rows = list(rows)
        return Batch(
            [self.ids[i] for i in rows],
            [self.texts[i] for i in rows],
            None if self.metadata is None else [self.metadata[i] for i in rows],
            None if self.vectors is None else self.vectors[rows],
            None if self.sparse_vectors is None else self.sparse_vectors.take(rows),
        )


def ingest(
    collection: Collection,
    batches: Iterable[Batch],
    *,
    total: int | None = None,
    initial: int = 0,
    show_progress: bool = True,
    desc: str = "index",
) -> int:
    """Add each batch's documents that ``collection`` lacks, one commit per batch.

    Parameters
    ----------
    collection : Collection
    batches : iterable of Batch
    total : int, optional
        Documents in all batches (for the progress bar).
    initial : int
        Documents already counted as done before the first batch (for the progress bar).
    show_progress : bool
        Show a progress bar; it advances per document as they are encoded.
    desc : str
        The bar's label.

    Returns
    -------
    int
        The number of documents added.
    """
    added = 0
    with tqdm(
        total=total, initial=initial, unit="doc", desc=desc, disable=not show_progress
    ) as bar:
        for batch in batches:
            keep = [i for i, doc_id in enumerate(batch.ids) if doc_id not in collection]
            before = bar.n
            if keep:
                part = batch if len(keep) == len(batch.ids) else batch.take(keep)
                collection.add(
                    part.ids,
                    part.texts,
                    part.metadata,
                    vectors=part.vectors,
                    sparse_vectors=part.sparse_vectors,
                    show_progress=bar,
                )
                added += len(keep)
            # the encoders advanced the bar by the documents they encoded; count the rest
            bar.update(len(batch.ids) - (bar.n - before))
    return added


def index_corpus(
    collection: Collection,
    ids: Sequence[Any],
    texts: Sequence[str],
    metadata: Sequence[dict | None] | None = None,
    *,
    chunk_size: int = 2048,
    show_progress: bool = True,
) -> int:
    """Add the documents not yet in ``collection``, ``chunk_size`` per commit.

    Each chunk is one commit, so an interrupted run keeps every finished chunk and the same
    call resumes where it stopped. Returns the number of documents added.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive; got {chunk_size}")
    if len(ids) != len(texts) or (metadata is not None and len(metadata) != len(ids)):
        raise ValueError("ids, texts and metadata must have the same length")
    todo = [i for i, doc_id in enumerate(ids) if doc_id not in collection]

    def chunks() -> Iterator[Batch]:
        for start in range(0, len(todo), chunk_size):
            part = todo[start : start + chunk_size]
            yield Batch(
                [ids[i] for i in part],
                [texts[i] for i in part],
                None if metadata is None else [metadata[i] for i in part],
            )

    done = len(ids) - len(todo)
    return ingest(collection, chunks(), total=len(ids), initial=done, show_progress=show_progress)
