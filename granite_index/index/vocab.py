"""A BM25 vocabulary kept on disk: term ↔ term id through an :class:`IdMap` of str terms.

The in-memory :class:`~granite_index.encoders.analyzer.Vocabulary` holds a Python dict and list
of every term: at millions of terms (real text at 10M documents), opening an index builds them
(seconds, hundreds of MB) and every commit rewrote the whole term list. Here the terms live in
the id map's immutable, memory-mapped segments (terms sorted by 64-bit hash, the term strings in
Arrow): a lookup is a binary search per segment, a commit writes the segment of its new terms
only, and opening reads the segment list. Words already seen keep costing one dict lookup in the
vocabulary's word memo (see ``Vocabulary.encode_texts``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from granite_index.encoders.analyzer import Vocabulary
from granite_index.index.idmap import IdMap


class StoredVocabulary(Vocabulary):
    """A :class:`Vocabulary` whose terms are kept in an :class:`IdMap` (see the module docs)."""

    def __init__(self, terms: list[str] | None = None) -> None:
        super().__init__()
        self._map = IdMap("str")
        self._n = 0
        if terms:
            unique = list(dict.fromkeys(terms))  # a repeat keeps its first id
            self.extend(unique)

    def lookup(self, terms: list[str]) -> list[int | None]:
        if not terms:
            return []
        return [None if k < 0 else k for k in self._map.keys_of(terms).tolist()]

    def extend(self, terms: list[str]) -> list[int]:
        ids = np.arange(self._n, self._n + len(terms), dtype=np.int64)
        if len(terms):
            self._map.add(terms, ids, "str")
            self._n += len(terms)
        return ids.tolist()

    def add(self, term: str) -> int:
        tid = self.get(term)
        return self.extend([term])[0] if tid is None else tid

    def get(self, term: str) -> int | None:
        return self.lookup([term])[0]

    def __contains__(self, term: str) -> bool:
        return self.get(term) is not None

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, tid: int) -> str:
        if not 0 <= tid < self._n:
            raise IndexError(f"term id {tid} out of range (vocabulary of {self._n} terms)")
        return self._map.ids_of(np.array([tid], np.int64))[0]

    def terms_of(self, ids: list[int]) -> list[str]:
        """The terms of term ids, in one read."""
        if not ids:
            return []
        arr = np.asarray(ids, np.int64)
        if arr.min() < 0 or arr.max() >= self._n:
            raise IndexError(f"term ids out of range (vocabulary of {self._n} terms)")
        return list(self._map.ids_of(arr))

    @property
    def terms(self) -> list[str]:
        """Every term, in id order (reads them all: for inspection and tests)."""
        return self._map.ids_of(np.arange(self._n, dtype=np.int64))

    def optimize(self) -> None:
        """Merge the term segments into one."""
        self._map.optimize()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], *, segments_dir: str | os.PathLike[str]) -> None:
        """Write the segment list into folder ``path`` and the segments not yet in
        ``segments_dir`` (a commit writes its new terms only)."""
        self._map.save(path, segments_dir=segments_dir)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StoredVocabulary:
        """Open a vocabulary saved with :meth:`save` (its segments memory-mapped)."""
        self = cls()
        self._map = IdMap.load(Path(path))
        self._n = len(self._map)
        return self

    @staticmethod
    def segment_files(path: str | os.PathLike[str]) -> set[str]:
        """Segment folders (and files) of the shared segments folder a saved vocabulary uses."""
        return IdMap.segment_files(path)
