"""The one BEIR pipeline: index a BEIR dataset into a collection, search its judged queries, score
the run with ir-measures. The CLI's ``eval``, the trainer's evaluation and the benchmarks call it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from granite_index.collection.ingest import index_corpus
from granite_index.eval import DEFAULT_METRICS, BeirDataset, evaluate, run_from_result
from granite_index.types import SearchResult

if TYPE_CHECKING:  # pragma: no cover
    from granite_index.collection.collection import Collection


@dataclass(frozen=True)
class BeirRun:
    """What :func:`evaluate_beir` measured.

    Attributes
    ----------
    scores : dict of str to float
        Each metric's mean over the judged queries (ir-measures).
    query_ids : list of str
        The judged queries, in the order of ``result``'s rows.
    result : SearchResult
    encode_seconds, search_seconds : float
        Time to encode the queries for every leg used, and to search them.
    """

    scores: dict[str, float]
    query_ids: list[str]
    result: SearchResult
    encode_seconds: float
    search_seconds: float

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)


def index_beir(
    collection: Collection,
    data: BeirDataset,
    *,
    chunk_size: int = 2048,
    show_progress: bool = True,
) -> int:
    """Add the dataset's documents the collection lacks (``title + " " + text``, the title also as
    metadata), ``chunk_size`` per commit; documents with no text are left out. Resumable.

    Returns the number of documents added.
    """
    docs = [
        (doc_id, text, {"title": title} if title else None)
        for doc_id, title, text in zip(data.doc_ids, data.titles, data.documents())
        if text.strip()
    ]
    return index_corpus(
        collection,
        [d[0] for d in docs],
        [d[1] for d in docs],
        [d[2] for d in docs],
        chunk_size=chunk_size,
        show_progress=show_progress,
    )


def evaluate_beir(
    collection: Collection,
    data: BeirDataset,
    *,
    mode: str | None = None,
    k: int = 100,
    metrics: Sequence[str] = DEFAULT_METRICS,
    **search: Any,
) -> BeirRun:
    """Search the dataset's judged queries and score the run.

    Parameters
    ----------
    collection : Collection
        Holding the dataset's documents (see :func:`index_beir`).
    data : BeirDataset
    mode : str, optional
        As :meth:`Collection.search` (default: its default).
    k : int
        Retrieval depth per query.
    metrics : sequence of str
        ``name@k`` as in :func:`granite_index.eval.evaluate`.
    **search :
        Further :meth:`Collection.search` arguments (``legs``, ``fusion``, ``depth`` for hybrid).
        The queries are encoded once, for the legs the search uses.
    """
    qids, texts = data.eval_queries()
    legs = search.get("legs") if mode == "hybrid" else None if mode is None else [mode]
    t0 = time.perf_counter()
    queries = collection.encode_queries(texts, legs)
    t1 = time.perf_counter()
    result = collection.search(queries, k=k, mode=mode, **search)
    t2 = time.perf_counter()
    scores = evaluate(data.qrels, run_from_result(result, qids), tuple(metrics))
    return BeirRun(scores, qids, result, t1 - t0, t2 - t1)
