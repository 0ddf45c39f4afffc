"""BEIR-format datasets and retrieval metrics (through ir-measures / pytrec_eval, not by hand)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ir_measures

from granite_index.types import SearchResult

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10")
_MEASURES = {
    "ndcg": ir_measures.nDCG,
    "recall": ir_measures.R,
    "mrr": ir_measures.RR,
    "map": ir_measures.AP,
    "p": ir_measures.P,
}


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR-format dataset: corpus, all queries, and the qrels of one split.

    Attributes
    ----------
    doc_ids, titles, texts : list of str
        The corpus in file order.
    queries : dict of str to str
        Every query in ``queries.jsonl``.
    qrels : dict of str to dict of str to int
        Relevance judgements of ``split``: ``qrels[query_id][doc_id] = grade``.
    """

    name: str
    split: str
    doc_ids: list[str]
    titles: list[str]
    texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def documents(self) -> list[str]:
        """Text to index per document: ``title + " " + text`` (BEIR's convention), stripped."""
        return [f"{t} {x}".strip() for t, x in zip(self.titles, self.texts)]

    def eval_queries(self) -> tuple[list[str], list[str]]:
        """(query ids, query texts) of the queries that have judgements in this split, sorted by id."""
        qids = sorted(self.qrels, key=_natural)
        return qids, [self.queries[q] for q in qids]


def _natural(s: str) -> tuple[int, Any]:
    return (0, int(s)) if s.isdigit() else (1, s)


def load_beir(path: str | os.PathLike[str], split: str = "test") -> BeirDataset:
    """Load ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/{split}.tsv`` from a BEIR folder.

    Raises
    ------
    FileNotFoundError
        A file is missing (the message lists the splits that exist).
    ValueError
        A malformed line (with file and line number), or qrels naming unknown queries.
    """
    path = Path(path)
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} is not a BEIR folder: {name} is missing")
    qrels_file = path / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        have = sorted(p.stem for p in (path / "qrels").glob("*.tsv"))
        raise FileNotFoundError(f"{path} has no qrels for split {split!r}; splits: {have}")
    doc_ids, titles, texts = [], [], []
    for rec in _jsonl(path / "corpus.jsonl"):
        doc_ids.append(str(rec["_id"]))
        titles.append(rec.get("title") or "")
        texts.append(rec.get("text") or "")
    queries = {str(rec["_id"]): rec["text"] for rec in _jsonl(path / "queries.jsonl")}
    qrels = _read_qrels(qrels_file)
    unknown = [q for q in qrels if q not in queries]
    if unknown:
        raise ValueError(
            f"{qrels_file} names {len(unknown)} queries missing from queries.jsonl, e.g. {unknown[:3]}"
        )
    return BeirDataset(path.name, split, doc_ids, titles, texts, queries, qrels)


def _jsonl(file: Path) -> Any:
    with open(file, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{file}:{n}: not valid JSON ({exc.msg})") from exc
            if "_id" not in rec:
                raise ValueError(f"{file}:{n}: record has no _id")
            yield rec


def _read_qrels(file: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(file, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.strip().split("\t")
            if n == 1 and parts[0] in ("query-id", "query_id", "qid"):
                continue
            if parts == [""]:
                continue
            if len(parts) != 3:
                raise ValueError(f"{file}:{n}: expected 3 tab-separated columns, got {len(parts)}")
            try:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
            except ValueError as exc:
                raise ValueError(f"{file}:{n}: score {parts[2]!r} is not an integer") from exc
    return qrels


def run_from_result(result: SearchResult, query_ids: list[str]) -> dict[str, dict[str, float]]:
    """A TREC-style run ``{query_id: {doc_id: score}}`` from a collection's search result."""
    if len(query_ids) != result.n_queries:
        raise ValueError(f"{len(query_ids)} query ids for {result.n_queries} result rows")
    doc_ids = result.doc_ids()
    run: dict[str, dict[str, float]] = {}
    for qid, ids, scores in zip(query_ids, doc_ids, result.scores):
        run[qid] = {str(d): float(s) for d, s in zip(ids, scores)}
    return run


def run_from_positions(
    result: SearchResult, query_ids: list[str], doc_ids: list[str]
) -> dict[str, dict[str, float]]:
    """A run from a result whose ids are positions in ``doc_ids`` (an index keyed 0..n-1)."""
    if len(query_ids) != result.n_queries:
        raise ValueError(f"{len(query_ids)} query ids for {result.n_queries} result rows")
    return {
        qid: {doc_ids[i]: float(s) for i, s in zip(ids, scores) if i >= 0}
        for qid, ids, scores in zip(query_ids, result.ids.tolist(), result.scores)
    }


def evaluate(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    metrics: tuple[str, ...] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Mean of each metric over the queries of ``qrels`` (a query missing from ``run`` scores 0).

    ``metrics`` are ``name@k`` with name in ndcg, recall, mrr, map, p: e.g. ``"ndcg@10"``.
    """
    measures = {}
    for name in metrics:
        base, _, cut = name.lower().partition("@")
        if base not in _MEASURES or not cut.isdigit():
            raise ValueError(
                f"unknown metric {name!r}; use name@k with name in {sorted(_MEASURES)}"
            )
        measures[name] = _MEASURES[base] @ int(cut)
    full_run = {q: run.get(q, {}) for q in qrels}
    per_query: dict[str, dict[Any, float]] = {q: {} for q in qrels}
    for m in ir_measures.iter_calc(list(measures.values()), qrels, full_run):
        per_query[m.query_id][m.measure] = m.value
    n = len(qrels)
    return {
        name: sum(pq.get(measure, 0.0) for pq in per_query.values()) / n
        for name, measure in measures.items()
    }
