"""Indexing a corpus into a collection in resumable chunks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from granite_index.collection import Collection


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
    done = len(ids) - len(todo)
    with tqdm(
        total=len(ids), initial=done, unit="doc", desc="index", disable=not show_progress
    ) as bar:
        for start in range(0, len(todo), chunk_size):
            part = todo[start : start + chunk_size]
            collection.add(
                [ids[i] for i in part],
                [texts[i] for i in part],
                None if metadata is None else [metadata[i] for i in part],
                show_progress=bar,
            )
    return len(todo)
