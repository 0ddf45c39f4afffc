"""The one chunked, resumable ingest loop: documents into a collection, one commit per chunk.

:func:`ingest` takes an iterable of :class:`Batch` (texts, maybe with vectors already computed)
and adds, per batch, the documents the collection does not hold yet, in one commit each. A run
stopped part-way keeps every finished batch, and the same call resumes where it stopped.
:func:`index_corpus` (ids + texts in memory), :func:`add_source` (a file, folder, table or
iterable streamed by :func:`~granite_index.collection.sources.read_batches`) and the
encoded-dataset loader of :mod:`granite_index.jobs` all run through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from tqdm.auto import tqdm

from granite_index.collection.batch import Batch
from granite_index.collection.sources import count_rows, read_batches


class IngestTarget(Protocol):
    """What the ingest loop needs of a :class:`~granite_index.collection.Collection` (named
    here, not imported: the collection imports this module for ``add_from``)."""

    def __contains__(self, doc_id: Any) -> bool: ...

    def add(self, ids: Any, texts: Any = None, metadata: Any = None, **kwargs: Any) -> None: ...


__all__ = ["Batch", "add_source", "index_corpus", "ingest"]


def ingest(
    collection: IngestTarget,
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
    collection: IngestTarget,
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


def add_source(
    collection: IngestTarget,
    source: Any,
    *,
    batch_size: int = 10_000,
    show_progress: bool = True,
    **fields: Any,
) -> int:
    """Stream the documents of ``source`` that ``collection`` lacks into it, one commit per batch.

    The source is read ``batch_size`` documents at a time
    (:func:`~granite_index.collection.sources.read_batches`) and each batch goes through
    :func:`ingest`: documents whose id the collection already holds are skipped, so a run that
    stopped part-way resumes when called again with the same source.

    Parameters
    ----------
    collection : Collection
    source : path, pyarrow data, DataFrame or iterable
        A ``.jsonl`` / ``.jsonl.gz`` file, a BEIR folder, a ``.parquet`` file or folder, a Lance
        dataset, a pyarrow table / record batch / reader / dataset, a pandas DataFrame, or an
        iterable of dicts or of :class:`Batch` (see ``read_batches``).
    batch_size : int
        Documents per batch, and so per commit.
    show_progress : bool
        Show a progress bar (with a total where the source knows its size: parquet, Lance,
        tables, DataFrames).
    **fields :
        ``id_field``, ``text_field``, ``title_field``, ``vector_field``, ``metadata_fields``,
        as ``read_batches`` takes them.

    Returns
    -------
    int
        The number of documents added.

    Raises
    ------
    FileNotFoundError, ValueError, TypeError
        As ``read_batches`` (an unknown source, a missing column, a bad record) and
        :meth:`Collection.add`. Batches committed before the error stay.
    """
    batches = read_batches(source, batch_size=batch_size, **fields)
    total = count_rows(source)
    return ingest(collection, batches, total=total, show_progress=show_progress)
