"""Hard-negative mining with the engine: retrieve with a temporary :class:`granite_index.Collection`,
drop positives and likely false negatives, sample the rest.

For each distinct query: retrieve the top ``depth`` documents (BM25, dense or hybrid), keep
ranks ``[skip, depth)``, drop every document whose text is, contains or is contained in a positive of
that query (over all its examples) and, with a dense model, every document whose cosine to one of its positives
exceeds ``max_similarity`` (near-duplicates of a positive are likely unjudged positives), then
draw ``n_negatives`` of the remaining ones at random (seeded per query).
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from trainer.data import TrainExample

__all__ = ["MiningConfig", "mine_hard_negatives"]

log = logging.getLogger(__name__)
Retriever = Literal["bm25", "dense", "hybrid"]


@dataclass(frozen=True)
class MiningConfig:
    """How hard negatives are mined; saved with the mined data.

    Attributes
    ----------
    retriever : {"bm25", "dense", "hybrid"}
        Candidate generator: BM25, the dense ``model``, or their fusion.
    model : str, optional
        Dense model (folder, Hugging Face id, ``"default"`` for the bundled all-MiniLM-L6-v2);
        needed by ``dense`` / ``hybrid`` and by the false-negative filter.
    depth : int
        Candidates retrieved per query.
    skip : int
        Top ranks never used as negatives (``0 <= skip < depth``).
    n_negatives : int
        Negatives drawn per query (fewer where fewer candidates remain).
    max_similarity : float or None
        Drop candidates whose cosine (with ``model``) to a positive exceeds this; None: no
        filter. Ignored without a model.
    seed : int
        Seed of the draws (each query draws from its own stream, so results do not depend on
        which other queries are mined).
    batch_size : int
        Encoding batch size.
    """

    retriever: Retriever = "bm25"
    model: str | None = None
    depth: int = 100
    skip: int = 0
    n_negatives: int = 7
    max_similarity: float | None = 0.95
    seed: int = 0
    batch_size: int = 32
    format_version: int = 1

    def __post_init__(self) -> None:
        if self.retriever not in ("bm25", "dense", "hybrid"):
            raise ValueError(
                f"retriever must be 'bm25', 'dense' or 'hybrid'; got {self.retriever!r}"
            )
        if self.retriever != "bm25" and not self.model:
            raise ValueError(f"retriever {self.retriever!r} needs a dense model")
        for name in ("depth", "n_negatives", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        if isinstance(self.skip, bool) or not isinstance(self.skip, int):
            raise ValueError(f"skip must be an int; got {self.skip!r}")
        if not 0 <= self.skip < self.depth:
            raise ValueError(f"skip must be in [0, depth={self.depth}); got {self.skip}")
        sim = self.max_similarity
        if sim is not None and (
            isinstance(sim, bool) or not isinstance(sim, int | float) or not math.isfinite(sim)
        ):
            raise ValueError(f"max_similarity must be a finite number or None; got {sim!r}")
        if self.format_version != 1:
            raise ValueError(f"format_version {self.format_version} is not supported (expected 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_inputs(examples: Any, corpus: Any) -> tuple[list[TrainExample], list[str]]:
    from granite_index.validate import check_texts

    if isinstance(examples, TrainExample) or not isinstance(examples, Sequence):
        raise TypeError("examples must be a sequence of TrainExample")
    for i, ex in enumerate(examples):
        if not isinstance(ex, TrainExample):
            raise TypeError(f"examples[{i}] is a {type(ex).__name__}, not a TrainExample")
    corpus = check_texts(corpus, "corpus")
    if not examples:
        raise ValueError("examples is empty")
    return list(examples), corpus


class _Vectors:
    """Dense vectors of corpus documents (encoded on demand) and of positive texts."""

    def __init__(self, encoder: Any, corpus: list[str], doc_vectors: np.ndarray | None) -> None:
        self.encoder, self.corpus, self.docs = encoder, corpus, doc_vectors
        self.cache: dict[int, np.ndarray] = {}

    def ensure_docs(self, ids: np.ndarray) -> None:
        if self.docs is not None:
            return
        todo = sorted({int(i) for i in ids.ravel() if i >= 0} - self.cache.keys())
        if todo:
            vecs = self.encoder.encode_documents([self.corpus[i] for i in todo])
            self.cache.update(zip(todo, vecs))

    def doc(self, ids: list[int]) -> np.ndarray:
        if self.docs is not None:
            return self.docs[ids]
        return np.stack([self.cache[i] for i in ids]) if ids else np.zeros((0, self.encoder.dim))


def _is_positive(doc: str, positives: set[str]) -> bool:
    """``doc`` is a positive, or contains one, or is contained in one (e.g. title + body vs body)."""
    return doc in positives or any(p in doc or doc in p for p in positives)


def _retrieve(
    queries: list[str], corpus: list[str], config: MiningConfig, encoder: Any, root: Path
) -> tuple[np.ndarray, np.ndarray | None]:
    """Top-``depth`` corpus positions per query, and the corpus vectors when dense ones exist."""
    from granite_index import Collection

    ids = list(range(len(corpus)))
    vectors = None
    if config.retriever == "bm25":
        col = Collection.create(root / "col", dense=False, sparse="bm25")
        col.add(ids, corpus)
    else:
        vectors = encoder.encode_documents(corpus)
        sparse = "bm25" if config.retriever == "hybrid" else None
        col = Collection.create(root / "col", encoder=encoder, sparse=sparse)
        col.add(ids, corpus, vectors=vectors)
    k = min(config.depth, len(corpus))
    res = col.search(queries, k=k, mode=config.retriever)
    keys = res.ids  # keys are positions: documents were added in one batch from key 0
    return keys, vectors


def mine_hard_negatives(
    examples: Sequence[TrainExample],
    corpus: Sequence[str],
    config: MiningConfig | None = None,
    *,
    work_dir: str | None = None,
) -> list[TrainExample]:
    """Replace each example's negatives with hard negatives mined from ``corpus``.

    Parameters
    ----------
    examples : sequence of TrainExample
        Queries with positives; examples of the same query text pool their positives.
    corpus : sequence of str
        Documents to mine from (positives may or may not be among them).
    config : MiningConfig, optional
        Default ``MiningConfig()``: BM25, depth 100, 7 negatives, no dense filter.
    work_dir : str, optional
        Where the temporary collection is built (default: the system temp folder); removed after.

    Returns
    -------
    list of TrainExample
        Same order and queries, positives and prompts; ``negatives`` are the mined ones (up to
        ``n_negatives``, best rank first); teacher scores are dropped.
    """
    config = config or MiningConfig()
    if not isinstance(config, MiningConfig):
        raise TypeError(f"config must be a MiningConfig; got {type(config).__name__}")
    examples, corpus = _check_inputs(examples, corpus)
    positives: dict[str, set[str]] = {}
    for ex in examples:
        positives.setdefault(ex.query, set()).update(ex.positives)
    queries = list(positives)
    encoder = None
    if config.model:
        from granite_index import DenseEncoder

        encoder = DenseEncoder(config.model, batch_size=config.batch_size)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="mining-") as tmp:
        ranked, doc_vectors = _retrieve(queries, corpus, config, encoder, Path(tmp))
    filt = encoder is not None and config.max_similarity is not None
    vectors = pos_vectors = None
    if filt:
        vectors = _Vectors(encoder, corpus, doc_vectors)
        vectors.ensure_docs(ranked[:, config.skip :])
        pos_texts = sorted(set().union(*positives.values()))
        pos_vectors = dict(zip(pos_texts, encoder.encode_documents(pos_texts)))
    mined: dict[str, tuple[str, ...]] = {}
    short = dropped = 0
    for qi, query in enumerate(queries):
        pool = [int(d) for d in ranked[qi, config.skip :] if d >= 0]
        pool = [d for d in pool if not _is_positive(corpus[d], positives[query])]
        if vectors is not None and pool:
            pos = np.stack([pos_vectors[t] for t in positives[query]])
            sims = (vectors.doc(pool) @ pos.T).max(axis=1)
            keep = sims <= config.max_similarity
            dropped += int((~keep).sum())
            pool = [d for d, ok in zip(pool, keep) if ok]
        rng = np.random.default_rng([config.seed, qi])
        n = min(config.n_negatives, len(pool))
        short += n < config.n_negatives
        chosen = np.sort(rng.choice(len(pool), size=n, replace=False)) if n else []
        mined[query] = tuple(corpus[pool[i]] for i in chosen)
    log.info(
        "mined %d queries: %d got fewer than %d negatives; %d candidates dropped as too similar "
        "to a positive",
        len(queries),
        short,
        config.n_negatives,
        dropped,
    )
    return [
        replace(ex, negatives=mined[ex.query], positive_scores=None, negative_scores=None)
        for ex in examples
    ]
