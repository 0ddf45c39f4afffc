"""Synthetic corpora for scale benchmarks: text drawn from the real BEIR corpora's distributions,
vectors from a Gaussian mixture tied to each document's topic.

Each document picks a *topic* (one real document of SciFact, CISI, MED or CACM) and a length drawn
from the real passage lengths (capped at ``max_words``); each word comes from the topic document
with probability ``p_topic`` and from the pooled unigram distribution otherwise. Words therefore
repeat within a document and cluster by topic (bursty, topical text), unlike i.i.d. tokens.

The document's vector is its topic's cluster centre plus Gaussian noise, L2-normalised, so that
approximate search meets clustered data, not uniform noise. Queries pick a topic, take a few of its
words, and a vector near its centre. Everything is a pure function of the seed and batch number:
batches can be generated in any order, in any process.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from benchmarks.common import BEIR

CORPORA = ("scifact", "cisi", "med", "cacm")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]+")


@dataclass(frozen=True)
class ScaleCorpus:
    """A reproducible synthetic corpus (see module docs)."""

    dim: int = 384
    n_clusters: int = 1024
    noise: float = 0.06
    p_topic: float = 0.6
    max_words: int = 96
    seed: int = 0

    @cached_property
    def _real(self) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, list[str]]:
        vocab: dict[str, int] = {}
        docs: list[np.ndarray] = []
        for name in CORPORA:
            with open(Path(BEIR) / name / "corpus.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    row = json.loads(line)
                    words = _WORD.findall(f"{row.get('title', '')} {row['text']}".lower())
                    if len(words) >= 8:
                        docs.append(np.array([vocab.setdefault(w, len(vocab)) for w in words]))
        counts = np.bincount(np.concatenate(docs), minlength=len(vocab)).astype(np.float64)
        lengths = np.array([len(d) for d in docs])
        words = [""] * len(vocab)
        for w, i in vocab.items():
            words[i] = w
        return docs, np.cumsum(counts / counts.sum()), lengths, words

    @cached_property
    def centres(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 1])
        c = rng.standard_normal((self.n_clusters, self.dim)).astype(np.float32)
        return c / np.linalg.norm(c, axis=1, keepdims=True)

    @property
    def n_topics(self) -> int:
        return len(self._real[0])

    def _vectors(self, topics: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
        v = self.centres[topics % self.n_clusters]
        v = v + rng.standard_normal(v.shape, dtype=np.float32) * np.float32(noise)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def _words(self, topic: int, n: int, rng: np.random.Generator) -> np.ndarray:
        docs, cdf, _, _ = self._real
        src = docs[topic]
        own = src[rng.integers(0, len(src), n)]
        pooled = np.searchsorted(cdf, rng.random(n))
        return np.where(rng.random(n) < self.p_topic, own, pooled)

    def batch(self, start: int, n: int) -> tuple[list[int], list[str], np.ndarray, np.ndarray]:
        """Documents ``start .. start + n``: (ids, texts, vectors float32 (n, dim), topics)."""
        _, _, lengths, words = self._real
        rng = np.random.default_rng([self.seed, 2, start])
        topics = rng.integers(0, self.n_topics, n)
        lens = np.minimum(lengths[rng.integers(0, len(lengths), n)], self.max_words)
        texts = [
            " ".join(words[w] for w in self._words(int(t), int(m), rng))
            for t, m in zip(topics, lens)
        ]
        return list(range(start, start + n)), texts, self._vectors(topics, rng, self.noise), topics

    def queries(self, n: int, n_words: int = 4) -> tuple[list[str], np.ndarray, np.ndarray]:
        """``n`` queries: (texts, vectors float32 (n, dim), topics)."""
        _, _, _, words = self._real
        rng = np.random.default_rng([self.seed, 3])
        topics = rng.integers(0, self.n_topics, n)
        texts = [" ".join(words[w] for w in self._words(int(t), n_words, rng)) for t in topics]
        return texts, self._vectors(topics, rng, self.noise * 2), topics
