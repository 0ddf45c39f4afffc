"""Immutable postings segments of a :class:`~granite_index.index.sparse.SparseIndex` and their
merge policy.

A segment covers positions ``base .. base + n_docs`` and stores its postings term-major (CSC):
sorted ``term_ids``, ``term_ptr``, then per posting the document (uint32, relative to ``base``)
and a float32 weight (term frequency or impact). Segments are written once and never change;
merging two makes a third (:func:`merge_pair`), dropping deleted documents' postings. The policy
(:func:`merge_tail`) is a binary counter: the newest segment is merged into its predecessor while
the predecessor is not bigger, so an index holds at most log2(n) segments and every posting is
rewritten O(log n) times.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from granite_index._kernels import pruning as PK
from granite_index._kernels import segments as SK
from granite_index._kernels import sparse_scoring as K
from granite_index.index.listing import listed_files
from granite_index.index.pages import release_pages

SEG_ARRAYS = ("term_ids", "term_ptr", "post_doc", "post_w")
#: segments up to this many postings keep a document-major copy in memory for exact lookups
#: (impact scores of given documents: hybrid fusion, approximate search's rescoring)
FORWARD_MAX = 1 << 26


@dataclass
class Segment:
    """Immutable postings for positions ``base .. base + n_docs`` (see module docs)."""

    name: str
    base: int
    n_docs: int
    term_ids: np.ndarray
    term_ptr: np.ndarray
    post_doc: np.ndarray
    post_w: np.ndarray
    # BM25 cache (in memory only): tf / (tf + norm) per posting, valid where ``ready`` is set
    cache: np.ndarray | None = None
    ready: np.ndarray | None = None
    # per term, the largest of its weights (BM25: of its cache), valid where ``bounded`` is set
    tmax: np.ndarray | None = None
    bounded: np.ndarray | None = None
    # the postings document-major (doc_ptr, doc_terms, doc_w), for exact rescoring (in memory)
    fwd: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def n_postings(self) -> int:
        return len(self.post_doc)

    def fill_cache(self, q_terms: np.ndarray, norm: np.ndarray) -> None:
        """Fill the BM25 cache for the query terms not yet in it. A memory-mapped segment then
        releases those terms' term-frequency pages: scoring reads the cache, and a refill (after
        any change) reads them again from the file, so resident memory holds 8 bytes per touched
        posting (document + cached weight), not 12."""
        if self.cache is None or self.ready is None:
            self.cache = np.empty(self.n_postings, np.float32)  # pages are used lazily
            self.ready = np.zeros(len(self.term_ids), np.uint8)
        filled = K.fill_bm25_cache(
            q_terms,
            self.term_ids,
            self.term_ptr,
            self.post_doc,
            self.post_w,
            norm,
            np.int64(self.base),
            self.cache,
            self.ready,
        )
        if isinstance(self.post_w, np.memmap):
            for i in filled.tolist():
                release_pages(self.post_w, int(self.term_ptr[i]), int(self.term_ptr[i + 1]))

    def term_bounds(self, q_terms: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Per term, the largest of its ``vals`` (the BM25 cache, filled for ``q_terms``, or the
        impacts), computed for the query terms not yet bounded (MaxScore's term upper bounds).
        A change of the BM25 statistics clears ``bounded`` with the cache."""
        if self.tmax is None or self.bounded is None:
            self.tmax = np.zeros(len(self.term_ids), np.float32)
            self.bounded = np.zeros(len(self.term_ids), np.uint8)
        PK.term_max(q_terms, self.term_ids, self.term_ptr, vals, self.tmax, self.bounded)
        return self.tmax

    def forward(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The postings document-major (see :func:`~granite_index._kernels.pruning.forward_index`),
        built on first use and kept in memory (8 bytes per posting); None for a segment of more
        than :data:`FORWARD_MAX` postings, whose lookups search the posting lists instead."""
        if self.n_postings > FORWARD_MAX:
            return None
        if self.fwd is None:
            self.fwd = PK.forward_index(
                self.term_ids, self.term_ptr, self.post_doc, self.post_w, np.int64(self.n_docs)
            )
        return self.fwd

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, a).nbytes for a in SEG_ARRAYS)

    def save(self, folder: Path) -> None:
        """Write ``folder/<name>/`` once (segments never change; an existing folder is kept),
        then read the postings from there, memory-mapped: a writer does not keep every
        segment it wrote in memory."""
        final = folder / self.name
        if final.exists():
            return
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{self.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for a in SEG_ARRAYS:
            np.save(tmp / f"{a}.npy", getattr(self, a))
        os.replace(tmp, final)
        for a in SEG_ARRAYS:
            setattr(self, a, np.load(final / f"{a}.npy", mmap_mode="r"))

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any], mmap: bool) -> Segment:
        d = folder / meta["name"]
        mode = "r" if mmap else None
        arrays = {a: np.load(d / f"{a}.npy", mmap_mode=mode) for a in SEG_ARRAYS}
        return cls(meta["name"], int(meta["base"]), int(meta["n_docs"]), **arrays)

    def meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": self.base,
            "n_docs": self.n_docs,
            "n_postings": self.n_postings,
        }


def merge_pair(a: Segment, b: Segment | None, alive: np.ndarray) -> Segment:
    """``a`` and the segment ``b`` that follows it as one new segment, without the postings of
    positions dead in ``alive``; ``b=None`` only drops ``a``'s dead postings."""
    if b is None:
        empty_u = np.zeros(0, np.uint32)
        b_arrays = (empty_u, np.zeros(1, np.int64), empty_u, np.zeros(0, np.float32))
        b_base, b_n = a.base + a.n_docs, 0
    else:
        b_arrays = (b.term_ids, b.term_ptr, b.post_doc, b.post_w)
        b_base, b_n = b.base, b.n_docs
    arrays = SK.merge_segments(
        a.term_ids,
        a.term_ptr,
        a.post_doc,
        a.post_w,
        np.int64(a.base),
        *b_arrays[:4],
        np.int64(b_base),
        alive,
    )
    return Segment(uuid.uuid4().hex, a.base, b_base + b_n - a.base, *arrays)


def merge_all(segments: list[Segment], alive: np.ndarray) -> Segment | None:
    """All ``segments`` (adjacent, in order) as one, without dead postings; None if empty."""
    if not segments:
        return None
    out = segments[0]
    for seg in segments[1:]:
        out = merge_pair(out, seg, alive)
    if len(segments) == 1:  # still drop dead postings of a lone segment
        out = merge_pair(out, None, alive)
    return out


def merge_tail(segments: list[Segment], alive: np.ndarray) -> None:
    """The merge policy, in place: merge the last segment into its predecessor while the
    predecessor holds no more postings (a binary counter)."""
    while len(segments) >= 2 and segments[-2].n_postings <= segments[-1].n_postings:
        b = segments.pop()
        a = segments.pop()
        segments.append(merge_pair(a, b, alive))


def segment_names(path: str | os.PathLike[str]) -> set[str]:
    """Folders of a shared segments folder that a saved index (its ``index.json`` in ``path``)
    uses: its postings segments, its chunks of per-position arrays and deletions, and its
    vocabulary's segments."""
    meta = json.loads((Path(path) / "index.json").read_text())
    names = {m["name"] for m in meta["segments"]}
    names |= {c["name"] for c in meta.get("positions", ())}  # per-position array chunks
    names |= listed_files(Path(path) / "vocab")  # the vocabulary's term segments
    return names | set(meta.get("dead", ()))  # deletion chunks
