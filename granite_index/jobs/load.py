"""Build a collection from an encoded Lance dataset, without encoding the documents again."""

from __future__ import annotations

import os
from typing import Any

from granite_index.collection import Batch, Collection, ingest
from granite_index.jobs.dataset import EncodedBatch, EncodedDataset, EncodeJobError, JobSpec

#: Encoder config fields that do not change document vectors (the model's name is checked
#: through its revision: a content hash, or the Hugging Face commit).
_QUERY_SIDE = {"model", "query_prefix", "query_max_terms"}


def collection_from_encoded(
    path: str | os.PathLike[str],
    encoded: str | os.PathLike[str],
    *,
    index: str = "flat",
    index_params: dict[str, Any] | None = None,
    bm25: bool = False,
    language: str = "en",
    precision: str = "auto",
    batch_size: int = 32,
    device: str = "auto",
    chunk_size: int = 4096,
    partial: bool = False,
    show_progress: bool = False,
) -> Collection:
    """Create the collection ``path`` from the encoded dataset ``encoded`` (or resume it).

    Parameters
    ----------
    path : str or path
        The collection folder. When it already holds a collection, the encoders must match the
        dataset's and only documents it lacks are added (an interrupted build resumes).
    encoded : str or path
        A dataset written by :func:`~granite_index.jobs.encode_corpus`.
    index, index_params :
        The FAISS index (see :meth:`Collection.create`).
    bm25, language :
        Also keep a BM25 index (computed from the stored texts; cheap).
    precision, batch_size, device :
        Query encoding and dense search options.
    chunk_size : int
        Documents per commit.
    partial : bool
        Accept a dataset whose encoding job has not finished.
    show_progress : bool
        Show a progress bar.

    Raises
    ------
    EncodeJobError
        ``encoded`` is not an encoded dataset, is incomplete (unless ``partial``), or was
        encoded with other models than the collection's.
    """
    ds = EncodedDataset.open(encoded)
    progress = ds.progress()
    if not (progress.done or partial):
        raise EncodeJobError(
            f"{encoded} is incomplete ({progress.end} input records encoded so far): re-run its "
            "`granite-index encode` command to finish it, or pass partial=True"
        )
    if Collection.exists(path):
        col = Collection.open(path, precision=precision, batch_size=batch_size, device=device)
    else:
        col = _create(
            path, ds.spec, index, index_params, bm25, language, precision, batch_size, device
        )
    check_encoders(col, ds)
    index_encoded(col, ds, chunk_size=chunk_size, show_progress=show_progress)
    return col


def _create(
    path: Any,
    spec: JobSpec,
    index: str,
    index_params: dict[str, Any] | None,
    bm25: bool,
    language: str,
    precision: str,
    batch_size: int,
    device: str,
) -> Collection:
    encoder = sparse_encoder = None
    if spec.encoder is not None:
        from granite_index.encoders.dense import DenseEncoder

        encoder = DenseEncoder.from_config(spec.encoder, precision=precision, batch_size=batch_size)
    if spec.splade_encoder is not None:
        from granite_index.encoders.sparse import SparseEncoder

        sparse_encoder = SparseEncoder.from_config(spec.splade_encoder, batch_size=batch_size)
    kinds = ["bm25"] * bm25 + ["splade"] * (sparse_encoder is not None)
    return Collection.create(
        path,
        encoder=encoder,
        dense=encoder is not None,
        index=index,
        index_params=index_params,
        device=device,
        sparse=kinds or None,
        language=language,
        sparse_encoder=sparse_encoder,
    )


def check_encoders(col: Collection, ds: EncodedDataset) -> None:
    """Raise ``EncodeJobError`` unless the dataset's encoders are the collection's."""
    m = col.manifest
    for leg, ours, theirs in (
        ("dense", m.encoder, ds.spec.encoder),
        ("SPLADE", m.splade_encoder, ds.spec.splade_encoder),
    ):
        if ours is None:
            continue
        if theirs is None:
            raise EncodeJobError(
                f"the collection has a {leg} index but {ds.path} has no {leg} vectors"
            )
        diff = sorted(
            k
            for k in ours.keys() | theirs.keys()
            if k not in _QUERY_SIDE and ours.get(k) != theirs.get(k)
        )
        if diff:
            raise EncodeJobError(
                f"{ds.path} was encoded with {leg} model {theirs['model']!r} "
                f"({theirs['revision']}) but the collection at {col.path} uses "
                f"{ours['model']!r} ({ours['revision']}); they differ in {', '.join(diff)}"
            )


def index_encoded(
    col: Collection, ds: EncodedDataset, *, chunk_size: int = 4096, show_progress: bool = False
) -> int:
    """Add the dataset's documents that ``col`` lacks, ``chunk_size`` per commit (through the
    collection's one resumable ingest loop). Returns the number of documents added."""
    batches = (_batch(col, b) for b in ds.batches(chunk_size))
    return ingest(col, batches, total=ds.ds.count_rows(), show_progress=show_progress)


def _batch(col: Collection, batch: EncodedBatch) -> Batch:
    """An encoded batch as the collection's ingest takes it (the vectors its legs use)."""
    return Batch(
        list(batch.ids),
        list(batch.texts),
        [{"title": t} if t else None for t in batch.titles],
        vectors=batch.vectors if col.dense_index is not None else None,
        sparse_vectors=batch.sparse if col.splade_index is not None else None,
    )
