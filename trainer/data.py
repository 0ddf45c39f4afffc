"""Training data: readers that turn files into :class:`TrainExample` lists, and a sampler that
draws each batch from one dataset at a time (GTE / Granite multi-dataset training).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

__all__ = [
    "MultiDatasetSampler",
    "TrainExample",
    "perturb_text",
    "read_beir_pairs",
    "read_jsonl_examples",
    "read_title_body_pairs",
    "write_jsonl_examples",
]

T = TypeVar("T")


@dataclass(frozen=True)
class TrainExample:
    """One query with its positive passage(s) and optional hard negatives.

    Attributes
    ----------
    query : str
    positives : tuple of str
        At least one positive passage.
    negatives : tuple of str
        Mined hard negatives (may be empty).
    positive_scores, negative_scores : tuple of float or None
        Teacher scores aligned with ``positives`` / ``negatives``, where the data has them.
    prompt : str
        An instruction that goes with the query (``""`` when none).
    """

    query: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...] = ()
    positive_scores: tuple[float, ...] | None = None
    negative_scores: tuple[float, ...] | None = None
    prompt: str = ""


def read_beir_pairs(
    path: str | os.PathLike[str], split: str = "train", *, min_grade: int = 1
) -> list[TrainExample]:
    """(query, positive) pairs from the qrels of a BEIR split, one example per judged pair.

    Parameters
    ----------
    path : str or path
        A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv``).
    split : str
        The qrels file to read.
    min_grade : int
        Smallest relevance grade counted as positive.

    Returns
    -------
    list of TrainExample
        In qrels order; the passage is ``title + " " + text`` (BEIR's convention).

    Raises
    ------
    FileNotFoundError, ValueError
        From :func:`granite_index.eval.load_beir`; ValueError also for qrels naming documents
        missing from the corpus.
    """
    from granite_index.eval import load_beir

    if isinstance(min_grade, bool) or not isinstance(min_grade, int):
        raise TypeError(f"min_grade must be an int; got {type(min_grade).__name__}")
    ds = load_beir(path, split=split)
    docs = dict(zip(ds.doc_ids, ds.documents()))
    missing = sorted({d for judged in ds.qrels.values() for d in judged if d not in docs})
    if missing:
        raise ValueError(
            f"{path}: qrels/{split}.tsv names {len(missing)} documents missing from corpus.jsonl, "
            f"e.g. {missing[:3]}"
        )
    return [
        TrainExample(query=ds.queries[qid], positives=(docs[did],))
        for qid, judged in ds.qrels.items()
        for did, grade in judged.items()
        if grade >= min_grade
    ]


def _str_list(rec: dict[str, Any], key: str, where: str, *, required: bool) -> tuple[str, ...]:
    value = rec.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: {key!r} must be a list of strings")
    if required and not value:
        raise ValueError(f"{where}: {key!r} is empty; each query needs a positive")
    return tuple(value)


def _scores(rec: dict[str, Any], key: str, n: int, where: str) -> tuple[float, ...] | None:
    value = rec.get(key)
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    )
    if not ok or len(value) != n:
        raise ValueError(f"{where}: {key!r} must be a list of {n} numbers")
    return tuple(float(v) for v in value)


def _example(rec: Any, where: str) -> TrainExample:
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    query = rec.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"{where}: 'query' must be a non-empty string")
    pos = _str_list(rec, "pos", where, required=True)
    neg = _str_list(rec, "neg", where, required=False)
    prompt = rec.get("prompt") or ""
    if not isinstance(prompt, str):
        raise ValueError(f"{where}: 'prompt' must be a string")
    return TrainExample(
        query=query,
        positives=pos,
        negatives=neg,
        positive_scores=_scores(rec, "pos_scores", len(pos), where),
        negative_scores=_scores(rec, "neg_scores", len(neg), where),
        prompt=prompt,
    )


def _json_lines(file: Path) -> Iterator[tuple[str, Any]]:
    """Yield ``("file:line", record)`` for each non-blank line of a JSONL file."""
    with open(file, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{file}:{n}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc.msg})") from exc


def read_jsonl_examples(path: str | os.PathLike[str]) -> list[TrainExample]:
    """Read ``{"query": str, "pos": [str], "neg": [str]}`` lines (the FlagEmbedding format).

    Optional keys: ``pos_scores`` / ``neg_scores`` (teacher scores, one per passage) and
    ``prompt``; other keys are ignored.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a file.
    ValueError
        A malformed line, named by file and line number.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file} is not a file")
    return [_example(rec, where) for where, rec in _json_lines(file)]


def write_jsonl_examples(examples: Sequence[TrainExample], path: str | os.PathLike[str]) -> Path:
    """Write examples in the format :func:`read_jsonl_examples` reads (atomically: temp + rename).

    Returns
    -------
    pathlib.Path
    """
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for i, ex in enumerate(examples):
            if not isinstance(ex, TrainExample):
                raise TypeError(f"examples[{i}] is a {type(ex).__name__}, not a TrainExample")
            rec: dict[str, Any] = {"query": ex.query, "pos": list(ex.positives)}
            rec["neg"] = list(ex.negatives)
            if ex.positive_scores is not None:
                rec["pos_scores"] = list(ex.positive_scores)
            if ex.negative_scores is not None:
                rec["neg_scores"] = list(ex.negative_scores)
            if ex.prompt:
                rec["prompt"] = ex.prompt
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, file)
    return file


def perturb_text(text: str, rng: np.random.Generator, *, span: float = 0.3) -> str:
    """A near-copy of ``text`` that no longer says the same: a pseudo-negative.

    Either deletes one random span of about ``span`` of the words, or swaps two such spans
    (chosen at random). Texts of fewer than 4 words have their word order reversed.

    Parameters
    ----------
    text : str
    rng : numpy.random.Generator
        Source of every random choice (the caller seeds and checkpoints it).
    span : float
        Span length as a share of the words, in (0, 0.5].

    Returns
    -------
    str
        Never equal to ``text`` unless the text is a single repeated word.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str; got {type(text).__name__}")
    if not 0 < span <= 0.5:
        raise ValueError(f"span must be in (0, 0.5]; got {span!r}")
    words = text.split()
    n = len(words)
    if n < 4:
        return " ".join(reversed(words))
    width = max(1, round(span * n))
    if rng.random() < 0.5:  # span deletion
        start = int(rng.integers(0, n - width + 1))
        return " ".join(words[:start] + words[start + width :])
    width = min(width, n // 2)  # span swap: two disjoint spans trade places
    a = int(rng.integers(0, n - 2 * width + 1))
    b = int(rng.integers(a + width, n - width + 1))
    out = words[:a] + words[b : b + width] + words[a + width : b] + words[a : a + width]
    return " ".join(out + words[b + width :])


def read_title_body_pairs(
    path: str | os.PathLike[str], *, min_chars: int = 1
) -> list[TrainExample]:
    """Weak (title, body) pairs from a BEIR corpus: the title as query, the text as positive.

    Parameters
    ----------
    path : str or path
        A BEIR folder or its ``corpus.jsonl``.
    min_chars : int
        Documents whose stripped title or text is shorter are skipped (no title: skipped).

    Returns
    -------
    list of TrainExample
        In corpus order.
    """
    file = Path(path)
    if file.is_dir():
        file = file / "corpus.jsonl"
    if not file.is_file():
        raise FileNotFoundError(f"{file} is not a file (expected a BEIR corpus.jsonl)")
    if isinstance(min_chars, bool) or not isinstance(min_chars, int) or min_chars < 1:
        raise ValueError(f"min_chars must be an int >= 1; got {min_chars!r}")
    out = []
    for where, rec in _json_lines(file):
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        title = rec.get("title") or ""
        text = rec.get("text") or ""
        if not isinstance(title, str) or not isinstance(text, str):
            raise ValueError(f"{where}: 'title' and 'text' must be strings")
        title, text = title.strip(), text.strip()
        if len(title) >= min_chars and len(text) >= min_chars:
            out.append(TrainExample(query=title, positives=(text,)))
    return out


class MultiDatasetSampler(Generic[T]):
    """Endless batches, each drawn from one dataset, the dataset chosen with ``p_i ∝ n_i^α``.

    Within a dataset the examples are visited in a fresh random order each pass; a pass ends
    when fewer than ``batch_size`` unvisited examples remain (they are dropped for that pass).

    Parameters
    ----------
    datasets : mapping of str to sequence
        Named datasets, each with at least ``batch_size`` examples.
    batch_size : int
        Examples per batch.
    alpha : float
        ``α >= 0``: 0 samples datasets uniformly, 1 in proportion to their size (GTE uses 0.5).
    seed : int
        Seed of the dataset choice and of the orders within datasets.

    Examples
    --------
    >>> sampler = MultiDatasetSampler({"a": list(range(8)), "b": list(range(2))}, batch_size=2)
    >>> name, batch = next(iter(sampler))
    """

    def __init__(
        self,
        datasets: Mapping[str, Sequence[T]],
        batch_size: int,
        *,
        alpha: float = 0.5,
        seed: int = 0,
    ) -> None:
        if not isinstance(datasets, Mapping) or not datasets:
            raise ValueError("datasets must be a non-empty mapping of name to examples")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha >= 0:
            raise ValueError(f"alpha must be a number >= 0; got {alpha!r}")
        if not math.isfinite(alpha):
            raise ValueError(f"alpha must be finite; got {alpha!r}")
        for name, data in datasets.items():
            if len(data) == 0:
                raise ValueError(f"dataset {name!r} is empty")
            if len(data) < batch_size:
                raise ValueError(
                    f"dataset {name!r} has {len(data)} examples, fewer than batch_size={batch_size}"
                )
        self.datasets = dict(datasets)
        self.names = list(self.datasets)
        self.batch_size = batch_size
        self.alpha = float(alpha)
        self.seed = seed
        sizes = np.array([len(d) for d in self.datasets.values()], dtype=np.float64)
        weights = sizes**self.alpha
        self.probabilities = weights / weights.sum()

    def __iter__(self) -> Iterator[tuple[str, list[T]]]:
        """Yield ``(dataset name, batch)`` forever; each iteration restarts from ``seed``."""
        rng = np.random.default_rng(self.seed)
        orders = {name: rng.permutation(len(d)) for name, d in self.datasets.items()}
        cursors = dict.fromkeys(self.names, 0)
        while True:
            name = self.names[int(rng.choice(len(self.names), p=self.probabilities))]
            data = self.datasets[name]
            if cursors[name] + self.batch_size > len(data):
                orders[name] = rng.permutation(len(data))
                cursors[name] = 0
            start = cursors[name]
            idx = orders[name][start : start + self.batch_size]
            cursors[name] = start + self.batch_size
            yield name, [data[int(i)] for i in idx]

    def __repr__(self) -> str:
        sizes = {n: len(d) for n, d in self.datasets.items()}
        return (
            f"MultiDatasetSampler(sizes={sizes}, batch_size={self.batch_size}, "
            f"alpha={self.alpha}, seed={self.seed})"
        )
