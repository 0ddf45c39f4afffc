"""Sparse inverted index: BM25 over term frequencies, or dot products over learned-sparse impacts.

Structure
---------
Documents sit at *positions* 0, 1, 2, ... in the order they were added; ``keys`` maps positions to
the caller's int64 ids, ``dl`` holds document lengths (BM25), ``alive`` marks deletions. Postings
live in immutable *segments*, each covering a contiguous range of positions, stored term-major
(CSC): sorted ``term_ids``, ``term_ptr``, then per posting the document (uint32, relative to the
segment's first position) and a float32 weight (term frequency or impact).

- ``add`` builds one new segment; adjacent segments are merged like a binary counter (a segment is
  merged into its predecessor when the predecessor is not bigger), so there are at most
  log2(n) segments and every posting is rewritten O(log n) times. Merging drops deleted postings.
- ``delete`` clears ``alive`` bits (its cost follows the deleted documents); past
  :data:`COMPACT_AT` dead positions the index is rewritten without them.
- BM25 statistics (N, df, avgdl) are global and exact at all times. ``df`` counts the postings in
  the segments, deleted documents' included until a merge drops them; a query term's live
  document frequency subtracts its postings of deleted documents, counted on the term's first
  use after a change and kept until the next one. The postings keep tf, and
  ``tf / (tf + norm)`` is cached in memory per segment, filled per query term on first use and
  dropped on any change, so after any sequence of adds and deletes the scores equal (bit for bit)
  those of an index built from scratch on the surviving documents.
- Search scores each segment with a numba kernel (one accumulator per thread; touched documents
  tracked when a query reads few postings, so that cost follows the postings read, not the
  collection size), keeps a top-k per segment, then merges the per-segment lists. Results are exact.

BM25 is Lucene's (since 8.0): ``idf(t) · tf / (tf + k1 · (1 - b + b · dl / avgdl))`` with
``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``. Defaults ``k1 = 1.2``, ``b = 0.75`` are Lucene's and
Elasticsearch's, the setting behind BEIR's published BM25 numbers.

Persistence: ``save`` writes named ``.npy`` arrays and ``index.json``; ``load`` memory-maps the
postings (``mmap=True``), so opening a large index reads almost nothing until queries touch it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numba
import numpy as np
import pyarrow.feather as feather

from granite_index._kernels import pruning as PK
from granite_index._kernels import segments as SK
from granite_index._kernels import sparse_scoring as K
from granite_index.encoders.analyzer import Analyzer, Vocabulary
from granite_index.errors import DuplicateIdError, FormatVersionError, UnknownIdError
from granite_index.index.listing import same_dir
from granite_index.index.positions import KeyPositions
from granite_index.index.queries import Bm25Stats, PreparedQueries, ptr_from_mask, query_csr
from granite_index.index.segment import Segment, merge_all, merge_tail, segment_names
from granite_index.index.vocab import StoredVocabulary
from granite_index.types import SearchResult
from granite_index.validate import check_k, check_queries, is_text_list, preview

Weighting = Literal["bm25", "impact"]
Strategy = Literal["auto", "exhaustive", "pruned"]
#: 2: no ``df.npy`` (document frequencies are counted from the segments at load)
FORMAT_VERSION = 2
#: fraction of dead positions past which ``delete`` compacts the index
COMPACT_AT = 0.5
#: approximate search (``share``): candidates rescored exactly, ``max(RERANK · k, RERANK_MIN)``
RERANK = 2
RERANK_MIN = 100
#: :meth:`SparseIndex.retrieve` keeps every document's score (the lookups then read them) for
#: indexes of at most this many positions, and batches of at most ``KEEP_CELLS`` scores
KEEP_POSITIONS = 1 << 17
KEEP_CELLS = 1 << 22


class SparseIndex:
    """Exact top-k search over sparse document vectors, with incremental add and delete.

    Parameters
    ----------
    weighting : {"bm25", "impact"}
        ``bm25``: document values are term frequencies and queries are term counts; scored with
        Lucene BM25 using exact global statistics. ``impact``: values are precomputed weights
        (learned sparse, e.g. SPLADE) and the score is the dot product with the query's weights.
    k1, b : float
        BM25 parameters (defaults: Lucene's 1.2 and 0.75).
    analyzer : Analyzer, optional
        Makes the index accept texts (``add_texts`` / string queries); its vocabulary is kept
        with the index.

    Examples
    --------
    >>> idx = SparseIndex.bm25(language="en")
    >>> idx.add_texts([1, 2], ["BM25 ranks documents", "FAISS searches vectors"])
    >>> idx.search(["ranking documents"], k=1).ids
    array([[1]])
    """

    def __init__(
        self,
        weighting: Weighting = "bm25",
        *,
        k1: float = 1.2,
        b: float = 0.75,
        analyzer: Analyzer | None = None,
    ) -> None:
        if weighting not in ("bm25", "impact"):
            raise ValueError(f"weighting must be 'bm25' or 'impact'; got {weighting!r}")
        if not (np.isfinite(k1) and k1 >= 0):
            raise ValueError(f"k1 must be a finite number >= 0; got {k1!r}")
        if not (np.isfinite(b) and 0 <= b <= 1):
            raise ValueError(f"b must be in [0, 1]; got {b!r}")
        self.weighting: Weighting = weighting
        self.k1 = float(k1)
        self.b = float(b)
        self.analyzer = analyzer
        self.vocab: Vocabulary | None = StoredVocabulary() if analyzer is not None else None
        self.segments: list[Segment] = []
        self.keys = np.zeros(0, np.int64)
        self.dl = np.zeros(0, np.float32)
        self.alive = np.zeros(0, np.uint8)
        self.df = np.zeros(0, np.int64)  # postings per term in the segments (see module docs)
        self._dead_df: dict[int, int] = {}  # term → its postings of deleted documents
        self._dead_segs: list[Segment] | None = None  # segments holding deleted documents
        self.n_alive = 0
        self.total_len = 0.0
        self._norm: np.ndarray | None = None
        self._norm_avgdl = 0.0
        self._lookup: KeyPositions | None = None
        self._version = 0  # bumped on every change; stamps PreparedQueries
        self._ascending = True  # keys ascend strictly with positions (a collection's do)
        self._allow_cache: tuple[Any, int, np.ndarray] | None = None  # the last filter's mask
        # persistence of the per-position arrays (see save): chunks written so far, where
        self._chunks: list[dict[str, Any]] = []
        self._dead_chunks: list[str] = []
        self._chunk_dir: Path | None = None
        self._pending_dead: list[np.ndarray] = []
        self._room: dict[str, np.ndarray] = {}  # buffers of keys / dl / alive (see _append)

    @classmethod
    def bm25(cls, language: str = "en", *, k1: float = 1.2, b: float = 0.75, **analyzer: Any):
        """A BM25 index over texts, analysed for ``language`` (see :class:`Analyzer`)."""
        return cls("bm25", k1=k1, b=b, analyzer=Analyzer(language, **analyzer))

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return self.n_alive

    @property
    def n_positions(self) -> int:
        return len(self.keys)

    @property
    def n_postings(self) -> int:
        return sum(s.n_postings for s in self.segments)

    @property
    def nbytes(self) -> int:
        """Bytes of postings + per-document arrays + document frequencies."""
        return (
            sum(s.nbytes for s in self.segments)
            + self.keys.nbytes
            + self.dl.nbytes
            + self.alive.nbytes
            + self.df.nbytes
        )

    @property
    def avgdl(self) -> float:
        return self.total_len / self.n_alive if self.n_alive else 0.0

    def config(self) -> dict[str, Any]:
        return {
            "weighting": self.weighting,
            "k1": self.k1,
            "b": self.b,
            "analyzer": None if self.analyzer is None else self.analyzer.config.to_dict(),
        }

    def __repr__(self) -> str:
        return (
            f"SparseIndex({self.weighting}, docs={self.n_alive}, postings={self.n_postings}, "
            f"segments={len(self.segments)})"
        )

    # ------------------------------------------------------------------ writing
    def add(
        self,
        keys: Any,
        indptr: Any,
        indices: Any,
        values: Any,
        *,
        doc_len: Any = None,
    ) -> None:
        """Add documents given as CSR rows (one per key).

        Parameters
        ----------
        keys : int64 array (n,)
            New ids (not already present).
        indptr, indices, values : CSR arrays
            Row ``i`` holds document ``keys[i]``: term ids ``indices[indptr[i]:indptr[i+1]]``
            (unique within a row) and their term frequencies (bm25) or impacts (impact), >= 0;
            a zero is the same as an absent term.
        doc_len : array (n,), optional
            BM25 document lengths; by default the row sums of ``values``.
        """
        keys = np.asarray(keys, dtype=np.int64).ravel()
        indptr = np.asarray(indptr, dtype=np.int64).ravel()
        indices = np.asarray(indices).ravel()
        values = np.asarray(values, dtype=np.float32).ravel()
        n = len(keys)
        if len(indptr) != n + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            raise ValueError(f"indptr must be non-decreasing, start at 0 and have {n + 1} entries")
        if len(indices) != indptr[-1] or len(values) != indptr[-1]:
            raise ValueError(
                f"indices ({len(indices)}) and values ({len(values)}) must have indptr[-1] = "
                f"{indptr[-1]} entries"
            )
        if len(indices) and (indices.min() < 0 or indices.max() >= 2**32 - 1):
            raise ValueError("term ids must be in [0, 2**32 - 1)")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("values must be finite and >= 0")
        if n == 0:
            return
        self._check_new_keys(keys)
        indices = indices.astype(np.uint32)
        if self.weighting == "bm25":
            rows = np.repeat(np.arange(n), np.diff(indptr))
            dl = np.bincount(rows, weights=values, minlength=n).astype(np.float32)
            if doc_len is not None:
                dl = np.asarray(doc_len, np.float32).ravel()
                if len(dl) != n:
                    raise ValueError(f"doc_len has {len(dl)} entries for {n} documents")
        else:
            dl = np.zeros(n, np.float32)
        present = values > 0  # a zero weight is an absent term (the kernels rely on weights > 0)
        if not present.all():
            indptr, indices, values = (
                ptr_from_mask(indptr, present),
                indices[present],
                values[present],
            )
        n_vocab = int(indices.max()) + 1 if len(indices) else 0
        term_ids, term_ptr, post_doc, post_w = SK.csr_to_csc(indptr, indices, values, n_vocab)
        if SK.has_repeats(term_ptr, post_doc):
            raise ValueError("a row repeats a term id; give each term once with its total count")
        seg = Segment(uuid.uuid4().hex, self.n_positions, n, term_ids, term_ptr, post_doc, post_w)
        self._ascending = self._ascending and _extends(self.keys, keys)
        self.keys = self._append("keys", keys)
        self.dl = self._append("dl", dl)
        self.alive = self._append("alive", np.ones(n, np.uint8))
        if len(self.df) < n_vocab:
            self.df = np.concatenate([self.df, np.zeros(n_vocab - len(self.df), np.int64)])
        self.n_alive += n
        self.total_len += float(dl.sum(dtype=np.float64))
        before = list(self.segments)
        self.segments.append(seg)
        merge_tail(self.segments, self.alive)
        # a merge drops deleted documents' postings; a new segment alone holds none
        self._changed(dead=len(self.segments) != len(before) + 1)
        self._count_postings(before)

    def _append(self, name: str, new: np.ndarray) -> np.ndarray:
        """The per-position array ``name`` with ``new`` after it, written into spare room at the
        end of its buffer when there is some: an add costs its documents, not a copy of every
        position's key, length and flag (130 MB at 10M documents)."""
        cur = getattr(self, name)
        n, m = len(cur), len(new)
        buf = self._room.get(name)
        if buf is None or cur.base is not buf or n + m > len(buf):
            buf = np.empty(n + m + max((n + m) // 4, 1024), cur.dtype)
            buf[:n] = cur
            self._room[name] = buf
        buf[n : n + m] = new
        return buf[: n + m]

    def add_texts(self, keys: Any, texts: Any) -> None:
        """Analyse ``texts`` with the index's analyzer and add them (see :meth:`add`)."""
        indptr, indices, values = self.encode_texts(texts, grow=True)
        self.add(keys, indptr, indices, values)

    def encode_texts(self, texts: Any, *, grow: bool = False):
        """Texts → CSR term counts with this index's analyzer and vocabulary."""
        if self.analyzer is None or self.vocab is None:
            raise ValueError(
                "this index has no analyzer; give term ids (CSR arrays) instead of texts"
            )
        if isinstance(texts, str):
            texts = [texts]
        return self.vocab.encode_texts(self.analyzer, texts, grow=grow)

    def delete(self, keys: Any) -> None:
        """Delete documents by key. Unknown or already deleted keys raise :class:`UnknownIdError`.

        The cost follows the deleted documents: their postings stay in the segments until a
        merge drops them, and BM25's document frequencies subtract them per query term (see
        the module docs).

        Parameters
        ----------
        keys : int64 array (n,)
        """
        keys = np.asarray(keys, dtype=np.int64).ravel()
        if len(keys) == 0:
            return
        if len(np.unique(keys)) != len(keys):
            raise ValueError("keys to delete repeat")
        pos = self._positions(keys)
        missing = keys[pos < 0]
        if len(missing):
            raise UnknownIdError(f"keys not in the index: {preview(missing.tolist())}")
        if self.alive.base is not self._room.get("alive") or not self.alive.flags.writeable:
            self.alive = self._append("alive", np.zeros(0, np.uint8))  # writable, with room
        self.alive[pos] = 0
        self._pending_dead.append(pos.astype(np.int64))
        self.n_alive -= len(pos)
        self.total_len -= float(self.dl[pos].sum(dtype=np.float64))
        if self.n_alive == 0:
            self.total_len = 0.0
        before = self.segments
        self.segments = [s for s in self.segments if self.alive[s.base : s.base + s.n_docs].any()]
        self._count_postings(before)
        self._changed()
        if self.n_positions and 1 - self.n_alive / self.n_positions > COMPACT_AT:
            self.compact()

    def _count_postings(self, before: list[Segment]) -> None:
        """Keep ``df`` (postings per term in the segments) up to date after the segments went
        from ``before`` to ``self.segments``: a cost that follows the segments that changed."""
        now = {s.name for s in self.segments}
        was = {s.name for s in before}
        for seg in before:
            if seg.name not in now:
                self.df[seg.term_ids] -= np.diff(seg.term_ptr)
        for seg in self.segments:
            if seg.name not in was:
                self.df[seg.term_ids] += np.diff(seg.term_ptr)

    def _dead_postings(self, terms: np.ndarray) -> np.ndarray:
        """Per term id (each < ``len(df)``): its postings of deleted documents still in the
        segments; counted on first need after a change (a read of the term's postings), then
        kept until the next change."""
        out = np.zeros(len(terms), np.int64)
        if self.n_alive == self.n_positions or len(terms) == 0:
            return out  # nothing deleted
        if self._dead_segs is None:
            alive = self.alive
            self._dead_segs = [
                s for s in self.segments if not alive[s.base : s.base + s.n_docs].all()
            ]
        cache = self._dead_df
        need = np.unique(np.asarray([t for t in terms.tolist() if t not in cache], np.int64))
        if len(need) and self._dead_segs:
            counts = np.zeros(len(need), np.int64)
            for seg in self._dead_segs:
                counts += SK.dead_postings(
                    need, seg.term_ids, seg.term_ptr, seg.post_doc, np.int64(seg.base), self.alive
                )
            cache.update(zip(need.tolist(), counts.tolist()))
        elif len(need):
            cache.update(dict.fromkeys(need.tolist(), 0))
        return np.fromiter(map(cache.__getitem__, terms.tolist()), np.int64, len(terms))

    def compact(self) -> None:
        """Rewrite the index as one segment without deleted documents (positions renumbered)."""
        remap = np.cumsum(self.alive, dtype=np.int64) - 1
        merged = merge_all(self.segments, self.alive)
        keep = self.alive.astype(bool)
        segments = []
        if merged is not None:
            post_doc = SK.renumber(merged.post_doc, merged.base, 0, remap)
            segments = [
                Segment(
                    uuid.uuid4().hex,
                    0,
                    self.n_alive,
                    merged.term_ids,
                    merged.term_ptr,
                    post_doc,
                    merged.post_w,
                )
            ]
        self.keys = self.keys[keep]
        self.dl = self.dl[keep]
        self.alive = np.ones(self.n_alive, np.uint8)
        before, self.segments = self.segments, segments
        self._count_postings(before)
        self._chunk_dir = None  # positions renumbered: the next save writes them anew
        self._changed()

    def optimize(self) -> None:
        """Merge everything into one segment and drop deleted documents (fastest search); the
        vocabulary's segments into one."""
        self.compact()
        if isinstance(self.vocab, StoredVocabulary):
            self.vocab.optimize()

    def _changed(self, *, dead: bool = True) -> None:
        """Statistics changed: the BM25 norm and every segment's BM25 cache are stale; with
        ``dead``, so are the counts of deleted documents' postings."""
        if dead:
            self._dead_df, self._dead_segs = {}, None
        self._version = self._version + 1
        self._norm = None
        self._lookup = None
        self._clear_term_caches()

    def _clear_term_caches(self) -> None:
        """Empty every segment's BM25 term-score cache and, for BM25, its term bounds (both are
        computed from the norm)."""
        for seg in self.segments:
            if seg.ready is not None:
                seg.ready[:] = 0
            if seg.bounded is not None and self.weighting == "bm25":
                seg.bounded[:] = 0

    def _allowed_mask(self, allow: Any) -> np.ndarray:
        """uint8 (n_positions,): 1 at the live positions of the keys ``allow``. The last filter's
        mask is kept (with the ``allow`` object, which a caller must not change in place) until
        the index changes: a filter repeated across queries is resolved once."""
        cached = self._allow_cache
        if cached is not None and cached[0] is allow and cached[1] == self._version:
            return cached[2]
        mask = np.zeros(self.n_positions, np.uint8)
        pos = self._positions(np.asarray(allow, dtype=np.int64).ravel())
        mask[pos[pos >= 0]] = 1
        self._allow_cache = (allow, self._version, mask)
        return mask

    def _check_new_keys(self, keys: np.ndarray) -> None:
        if self._ascending and _extends(self.keys, keys):
            return  # ascending and past every key so far: new and distinct
        uniq, counts = np.unique(keys, return_counts=True)
        if len(uniq) != len(keys):
            raise DuplicateIdError(f"keys repeat in this add: {preview(uniq[counts > 1].tolist())}")
        present = keys[self._positions(keys) >= 0]
        if len(present):
            raise DuplicateIdError(f"keys already in the index: {preview(present.tolist())}")

    def _positions(self, keys: np.ndarray) -> np.ndarray:
        """Live positions of ``keys`` (-1 where absent or deleted)."""
        if self._lookup is None:
            self._lookup = KeyPositions(self.keys, self.alive, ascending=self._ascending)
        return self._lookup.find(keys)

    # ------------------------------------------------------------------ reading
    def _bm25_norm(self, avgdl: float | None = None) -> np.ndarray:
        """Per position ``k1 · (1 - b + b · dl / avgdl)``, with the index's own average length or
        a corpus-wide one (:class:`Bm25Stats`). The segments' BM25 caches hold term scores for
        one norm: another average length empties them."""
        a = (self.avgdl if avgdl is None else avgdl) or 1.0
        if self._norm is not None and self._norm_avgdl == a:
            return self._norm
        if self._norm is not None:  # the caches were filled for another average length
            self._clear_term_caches()
        self._norm = (self.k1 * (1 - self.b + self.b * (self.dl / np.float32(a)))).astype(
            np.float32
        )
        self._norm_avgdl = a
        return self._norm

    def idf(self, term_ids: np.ndarray) -> np.ndarray:
        """Lucene BM25 idf of term ids over the live documents (0 for unseen terms)."""
        term_ids = np.asarray(term_ids, dtype=np.int64)
        df = np.zeros(len(term_ids), np.float64)
        inside = term_ids < len(self.df)
        known = term_ids[inside]
        df[inside] = self.df[known] - self._dead_postings(known)
        return bm25_idf(df, self.n_alive)

    def _query_batch(self, queries: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if isinstance(queries, str) or (
            isinstance(queries, (list, tuple)) and is_text_list(queries)
        ):
            return self.encode_texts(check_queries(queries))
        return query_csr(queries)

    def prepare(self, queries: Any, stats: Bm25Stats | None = None) -> PreparedQueries:
        """Analyse and weight queries once, for several :meth:`search` / :meth:`score` calls.

        Parameters
        ----------
        queries : as for :meth:`search`
        stats : Bm25Stats, optional
            BM25 only: score with these corpus-wide statistics (idf from their document count
            and frequencies, length normalisation from their average length) instead of the
            index's own, so that an index holding part of a corpus scores its documents
            exactly as one index of the whole corpus would (see :meth:`bm25_stats`). Terms of
            equal weight are then added in the order of their strings (not of this index's
            term ids), so that every part adds them alike. The segments cache term scores for
            one average length: alternating between the index's own statistics and corpus-wide
            ones refills them each time, and the two must not be mixed on one index from
            several threads at once.

        Returns
        -------
        PreparedQueries
            Accepted by :meth:`search` and :meth:`score` of this index until it changes
            (an add, delete or compaction changes BM25's statistics).
        """
        if isinstance(queries, PreparedQueries):
            if stats is not None:
                raise ValueError(
                    "give stats to prepare() with the queries, not with PreparedQueries"
                )
            if queries.index_id != id(self) or queries.version != self._version:
                raise ValueError(
                    "these PreparedQueries were made by another index, or before this index "
                    "changed; prepare them again"
                )
            return queries
        if stats is not None and (self.weighting != "bm25" or self.vocab is None):
            raise ValueError("stats (corpus-wide BM25 statistics) need a BM25 index of texts")
        q_ptr, q_terms, q_vals = self._query_batch(queries)
        n_q = len(q_ptr) - 1
        names = None
        if stats is None:
            q_w = self._weights(q_terms, q_vals)
        else:
            q_w, names = self._corpus_weights(q_terms, q_vals, stats)
        # terms the index has never seen cannot match: drop them (keeps ids inside uint32)
        known = (q_terms < len(self.df)) & (q_w != 0)
        if not known.all():
            q_ptr = ptr_from_mask(q_ptr, known)
            q_terms, q_w = q_terms[known], q_w[known]
            names = None if names is None else names[known]
        # every scoring path adds a document's term scores in this order (weight descending,
        # then term id, or term string with corpus statistics), so scores are bit-identical
        # whatever the path and the segment layout
        rows = np.repeat(np.arange(n_q), np.diff(q_ptr))
        order = np.lexsort((q_terms if names is None else names, -q_w, rows))
        return PreparedQueries(
            q_ptr,
            q_terms[order].astype(np.uint32),
            q_w[order],
            id(self),
            self._version,
            None if stats is None else stats.avgdl,
        )

    def _corpus_weights(
        self, q_terms: np.ndarray, q_vals: np.ndarray, stats: Bm25Stats
    ) -> tuple[np.ndarray, np.ndarray]:
        """Query term weights with corpus-wide idf, and each term's rank among the batch's term
        strings (the order equal weights are added in)."""
        assert self.vocab is not None
        uniq, inverse = np.unique(q_terms, return_inverse=True)
        words = self.vocab.terms_of(uniq.tolist())
        df = np.array([stats.df.get(w, 0) for w in words], np.float64)
        idf = bm25_idf(df, stats.n_docs)
        by_word = np.argsort(np.argsort(np.array(words, dtype=object), kind="stable"))
        return (idf[inverse] * q_vals).astype(np.float32), by_word[inverse]

    def bm25_stats(self, terms: Any) -> Bm25Stats:
        """This index's part of the corpus-wide BM25 statistics: its live documents, their total
        length, and the live document frequency of each of ``terms`` (index terms, e.g.
        ``analyzer.tokens(query)``) that it holds. Merge the parts of every index of a corpus
        (:meth:`Bm25Stats.merge`) and pass the result as ``stats`` to :meth:`search`."""
        if self.weighting != "bm25" or self.vocab is None:
            raise ValueError("bm25_stats is for BM25 indexes of texts")
        words = list(dict.fromkeys(terms))
        ids = self.vocab.lookup(words)
        have = [(w, i) for w, i in zip(words, ids) if i is not None and i < len(self.df)]
        df = {}
        if have:
            tids = np.array([i for _, i in have], np.int64)
            live = self.df[tids] - self._dead_postings(tids)
            df = {w: int(n) for (w, _), n in zip(have, live.tolist()) if n > 0}
        return Bm25Stats(self.n_alive, float(self.total_len), df)

    def score(self, queries: Any, ids: Any, *, stats: Bm25Stats | None = None) -> np.ndarray:
        """The scores of given documents for each query, as :meth:`search` would give them.

        Parameters
        ----------
        queries : as for :meth:`search`, n_queries of them
        ids : array-like of int64, shape (n_queries, m)
            Document keys per query; ``-1`` is padding.
        stats : Bm25Stats, optional
            Corpus-wide BM25 statistics (see :meth:`prepare`).

        Returns
        -------
        numpy.ndarray of float32, shape (n_queries, m)
            Bit-identical to the score :meth:`search` gives the document (0 where it shares no
            term with the query); NaN for padding and for keys not in the index.
        """
        prepared = self.prepare(queries, stats)
        q_ptr, q_terms, q_w = prepared[:3]
        pos = self._id_positions(ids, len(q_ptr) - 1)
        out = self._score_positions(q_ptr, q_terms, q_w, pos, prepared.avgdl)
        out[pos < 0] = np.nan
        return out

    def _id_positions(self, ids: Any, n_q: int) -> np.ndarray:
        """Keys per query, int (n_queries, m), ``-1`` padding → live positions (-1 where padded,
        absent or deleted), after checking their shape and type."""
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[0] != n_q:
            raise ValueError(f"ids must be (n_queries, m) = ({n_q}, m); got {ids.shape}")
        if ids.size and ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers; got {ids.dtype}")
        ids = ids.astype(np.int64)
        pos = self._positions(ids.ravel()).reshape(ids.shape)
        pos[ids < 0] = -1
        return pos

    def _score_positions(
        self,
        q_ptr: np.ndarray,
        q_terms: np.ndarray,
        q_w: np.ndarray,
        pos: np.ndarray,
        avgdl: float | None = None,
    ) -> np.ndarray:
        """Scores of positions ``pos`` (n_queries, m; -1 = none, scored 0), bit-identical to
        search's: impacts from each segment's document-major copy where it has one (a merge of
        the document's terms with the query's), else a binary search per posting list."""
        out = np.zeros(pos.shape, np.float32)
        bm25 = self.weighting == "bm25"
        norm = self._bm25_norm(avgdl) if bm25 else np.zeros(1, np.float32)
        for seg in self.segments:
            base, n_docs = np.int64(seg.base), np.int64(seg.n_docs)
            fwd = None if bm25 else seg.forward()
            if fwd is not None:
                PK.rescore_forward(q_ptr, q_terms, q_w, *fwd, base, n_docs, pos, out)
                continue
            K.score_docs(q_ptr, q_terms, q_w, seg.term_ids, seg.term_ptr, seg.post_doc,
                         seg.post_w, norm, bm25, base, n_docs, pos, out)  # fmt: skip
        return out

    def _weights(self, q_terms: np.ndarray, q_vals: np.ndarray) -> np.ndarray:
        if self.weighting == "bm25":
            return (self.idf(q_terms) * q_vals).astype(np.float32)
        return q_vals.astype(np.float32)

    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        threads: int | None = None,
        oracle: bool = False,
        allow: Any = None,
        strategy: Strategy = "auto",
        share: float | None = None,
        stats: Bm25Stats | None = None,
    ) -> SearchResult:
        """Exact top-k for a batch of queries.

        Parameters
        ----------
        queries : str, list of str, scipy.sparse matrix, (indptr, indices, values), or
            PreparedQueries
            Texts need an analyzer. As term ids, values are counts (bm25) or weights (impact).
        k : int
            Hits per query; rows are padded with id -1 / score -inf when fewer documents match
            (documents sharing no term with the query are never returned).
        threads : int, optional
            Threads for the batch (default: all cores). One query runs on one thread.
        oracle : bool
            Use the plain-numpy twin of the kernels (slow; for tests).
        allow : array-like of int64, optional
            Only these keys may be returned (a filter applied before the top-k, so each query
            gets ``min(k, matching documents)`` hits).
        strategy : {"auto", "exhaustive", "pruned"}
            How each segment is scored; every strategy returns the same (exact) results.
            ``exhaustive`` reads every posting of the query's terms; ``pruned`` skips postings
            that cannot reach the top k (MaxScore: long, low-weight lists are only probed for
            the documents still in the running); ``auto`` prunes where it pays. On every
            corpus of the sparse frontier benchmark (realistic and i.i.d. text, learned-sparse
            vectors, 10k to 1M documents) ``pruned`` measured 4-10x slower than
            ``exhaustive`` (tens of thousands of candidates stay to be probed per query), so
            ``auto`` is exhaustive; ``pruned`` is kept for such measurements.
        share : float in (0, 1], optional
            Approximate search (impact weighting only; learned-sparse vectors): candidates are
            scored with the query's heaviest terms that together carry this share of its total
            weight (a SPLADE query spreads its weight over dozens of expansion terms, most of
            them on long posting lists), then the best ``max(RERANK · k, RERANK_MIN)`` are
            rescored exactly with every term, and the best k returned with exact scores.
            Smaller is faster and finds fewer of the exact top k (the README's recall / latency
            table). ``1.0`` is exact. Default: exact search.
        stats : Bm25Stats, optional
            BM25: score with corpus-wide statistics, as one index of the whole corpus would
            (see :meth:`prepare` and :meth:`bm25_stats`).
        """
        k = check_k(k)
        if strategy not in ("auto", "exhaustive", "pruned"):
            raise ValueError(f"strategy must be 'auto', 'exhaustive' or 'pruned'; got {strategy!r}")
        if share is not None:
            if stats is not None:
                raise ValueError("stats are for BM25 search, share for impact indexes: not both")
            return self._search_approximate(queries, k, share, threads, allow)
        prepared = self.prepare(queries, stats)
        q_ptr, q_terms, q_w = prepared[:3]
        n_q = len(q_ptr) - 1
        if threads is None:
            threads = numba.config.NUMBA_NUM_THREADS
        threads = max(1, int(threads))
        bm25 = self.weighting == "bm25"
        norm = self._bm25_norm(prepared.avgdl) if bm25 else np.zeros(1, np.float32)
        kk = min(k, max(self.n_alive, 1))
        alive, masked = self.alive, self.n_alive < self.n_positions
        if allow is not None:
            alive, masked = self._allowed_mask(allow), True
        parts_s, parts_p = [], []
        for seg in self.segments:
            if oracle:
                s, p = K.score_topk_numpy(q_ptr, q_terms, q_w, seg, norm, alive, kk, bm25)
            else:
                if bm25:
                    seg.fill_cache(q_terms, norm)
                vals = seg.cache if bm25 else seg.post_w
                if strategy == "pruned":  # auto: exhaustive, faster on every benchmark corpus
                    tmax = seg.term_bounds(q_terms, vals)
                    s, p, _ = PK.pruned_topk(
                        q_ptr, q_terms, q_w, seg, vals, tmax, alive, kk, threads
                    )
                else:
                    s, p = K.score_topk(q_ptr, q_terms, q_w, seg, vals, alive, kk, threads, masked)
            parts_s.append(s)
            parts_p.append(p)
        return self._hits(parts_s, parts_p, n_q, k, kk)

    def _hits(self, parts_s: list, parts_p: list, n_q: int, k: int, kk: int) -> SearchResult:
        """The segments' top-kk (scores, positions) merged into keys, padded to k."""
        ids = np.full((n_q, k), -1, np.int64)
        scores = np.full((n_q, k), -np.inf, np.float32)
        if parts_s:
            if len(parts_s) == 1:
                s, p = parts_s[0], parts_p[0]
            else:
                s, p = K.merge_topk(np.hstack(parts_s), np.hstack(parts_p), kk)
            found = p >= 0
            ids[:, :kk] = np.where(found, self.keys[np.where(found, p, 0)], -1)
            scores[:, :kk] = np.where(found, s, -np.inf)
        return SearchResult(ids, scores)

    def retrieve(
        self,
        queries: Any,
        depth: int,
        *,
        threads: int | None = None,
        allow: Any = None,
        **params: Any,
    ) -> tuple[SearchResult, Callable[[np.ndarray], np.ndarray]]:
        """:meth:`search` to ``depth``, and the lookup of any other document's score: what a
        hybrid search asks of a leg.

        Parameters
        ----------
        queries, threads, allow : as for :meth:`search`
        depth : int
            Hits per query (``k`` of :meth:`search`).
        **params
            Further options of :meth:`search`: ``strategy``; ``stats`` (BM25, corpus-wide
            statistics); ``share`` (impact indexes): the
            queries cut to their heaviest terms that carry this share of their weight, and the
            hits and the lookup both score the cut queries (no exact rescoring, unlike
            :meth:`search`: in a hybrid search a leg's scores only feed the fusion, which then
            compares the cut query's scores with each other).

        Returns
        -------
        (SearchResult, lookup)
            ``lookup(ids)`` (int64 (n_queries, m), ``-1`` padding) gives :meth:`score`'s
            float32 scores, bit-identical. On small indexes (at most ``KEEP_POSITIONS``
            positions, ``KEEP_CELLS`` scores per batch) and exhaustive search, the search keeps
            every document's score as it sums them, and the lookup reads them: on a few
            thousand documents, scoring a hybrid search's hundreds of candidates afterwards
            costs about as much as the search. Elsewhere the lookup scores the ids it is given.
        """
        prepared = self.prepare(queries, params.pop("stats", None))
        share = params.pop("share", None)
        if share is not None:
            check_share(share, self.weighting)
            prepared = PreparedQueries(
                *heaviest_terms(*prepared[:3], float(share)), id(self), self._version
            )
        q_ptr, q_terms, q_w = prepared[:3]
        n_q = len(q_ptr) - 1
        keep = (
            params.get("strategy", "auto") in ("auto", "exhaustive")
            and not params.get("oracle")
            and self.segments
            and self.n_positions <= KEEP_POSITIONS
            and n_q * self.n_positions <= KEEP_CELLS
        )
        if not keep:
            res = self.search(prepared, depth, threads=threads, allow=allow, **params)
            return res, partial(self.score, prepared)
        k = check_k(depth)
        threads = max(1, int(threads or numba.config.NUMBA_NUM_THREADS))
        bm25 = self.weighting == "bm25"
        norm = self._bm25_norm(prepared.avgdl) if bm25 else np.zeros(1, np.float32)
        kk = min(k, max(self.n_alive, 1))
        alive = self.alive if allow is None else self._allowed_mask(allow)
        accs = np.zeros((n_q, self.n_positions), np.float32)
        parts_s, parts_p = [], []
        for seg in self.segments:
            if bm25:
                seg.fill_cache(q_terms, norm)
            vals = seg.cache if bm25 else seg.post_w
            s, p = K.score_keep_topk(q_ptr, q_terms, q_w, seg, vals, alive, kk, threads, accs)
            parts_s.append(s)
            parts_p.append(p)
        return self._hits(parts_s, parts_p, n_q, k, kk), partial(
            self._kept_scores, accs, self._version
        )

    def _kept_scores(self, accs: np.ndarray, version: int, ids: Any) -> np.ndarray:
        """:meth:`score` of ``ids`` read from the scores :meth:`retrieve` kept."""
        if version != self._version:
            raise ValueError("this index changed since these scores were kept; retrieve again")
        pos = self._id_positions(ids, accs.shape[0])
        out = np.take_along_axis(accs, np.maximum(pos, 0), axis=1)
        out[pos < 0] = np.nan
        return out

    def _search_approximate(
        self, queries: Any, k: int, share: float, threads: int | None, allow: Any
    ) -> SearchResult:
        """:meth:`search` with ``share``: candidates from the heaviest query terms, rescored."""
        check_share(share, self.weighting)
        q_ptr, q_terms, q_w = self.prepare(queries)[:3]
        n_q = len(q_ptr) - 1
        threads = max(1, int(threads or numba.config.NUMBA_NUM_THREADS))
        depth = min(max(RERANK * k, RERANK_MIN), max(self.n_alive, 1))
        alive, masked = self.alive, self.n_alive < self.n_positions
        if allow is not None:
            alive, masked = self._allowed_mask(allow), True
        c_ptr, c_terms, c_w = heaviest_terms(q_ptr, q_terms, q_w, float(share))
        parts = [
            K.score_topk(c_ptr, c_terms, c_w, seg, seg.post_w, alive, depth, threads, masked)[1]
            for seg in self.segments
        ]
        ids = np.full((n_q, k), -1, np.int64)
        scores = np.full((n_q, k), -np.inf, np.float32)
        if not parts:
            return SearchResult(ids, scores)
        pos = np.hstack(parts)
        exact = self._score_positions(q_ptr, q_terms, q_w, pos)
        kk = min(k, pos.shape[1])
        s, p = K.merge_topk(exact, pos, kk)
        found = p >= 0
        ids[:, :kk] = np.where(found, self.keys[np.where(found, p, 0)], -1)
        scores[:, :kk] = np.where(found, s, -np.inf)
        return SearchResult(ids, scores)

    # ------------------------------------------------------------------ persistence
    def save(
        self, path: str | os.PathLike[str], *, segments_dir: str | os.PathLike[str] | None = None
    ) -> None:
        """Write the index to folder ``path`` (segments under ``path/segments`` unless given).

        Segments are immutable and written once; saving again after a small add writes only the
        new segment and the per-document arrays.
        """
        path = Path(path)
        seg_dir = Path(segments_dir) if segments_dir is not None else path / "segments"
        for seg in self.segments:
            seg.save(seg_dir)
        path.mkdir(parents=True, exist_ok=True)
        self._save_positions(seg_dir)
        if isinstance(self.vocab, StoredVocabulary):  # its new terms' segment only
            self.vocab.save(path / "vocab", segments_dir=seg_dir)
        meta = {
            "format_version": FORMAT_VERSION,
            **self.config(),
            "n_alive": self.n_alive,
            "total_len": self.total_len,
            "n_positions": self.n_positions,
            "n_terms": len(self.df),
            "ascending": self._ascending,
            "positions": self._chunks,
            "dead": self._dead_chunks,
            "segments": [s.meta() for s in self.segments],
            "segments_dir": None if segments_dir is None else os.path.relpath(seg_dir, path),
        }
        (path / "index.json").write_text(json.dumps(meta, indent=2))

    def _save_positions(self, seg_dir: Path) -> None:
        """Write what changed of the per-position arrays since the last save into ``seg_dir``:
        a chunk of ``keys`` / ``dl`` for the new positions, a chunk of the newly deleted
        positions. Chunks are written once and shared by later saves (a commit costs its change);
        after a compaction, or into another folder, everything is written anew."""
        if self._chunk_dir is None or not same_dir(self._chunk_dir, seg_dir):
            self._chunks, self._dead_chunks = [], []
            dead = np.flatnonzero(np.asarray(self.alive) == 0)
            self._pending_dead = [dead] if len(dead) else []
            self._chunk_dir = seg_dir
        start = sum(c["n"] for c in self._chunks)
        if start < self.n_positions:
            self._chunks.append(self._write_chunk(seg_dir, start, self.n_positions))
            # a binary counter, as for segments: at most log2(n) chunks, each position
            # rewritten O(log n) times
            while len(self._chunks) >= 2 and self._chunks[-2]["n"] <= self._chunks[-1]["n"]:
                b, a = self._chunks.pop(), self._chunks.pop()
                self._chunks.append(self._write_chunk(seg_dir, a["start"], b["start"] + b["n"]))
        if self._pending_dead:
            name = f"dead-{uuid.uuid4().hex[:16]}"
            _write_arrays(seg_dir / name, rows=np.concatenate(self._pending_dead))
            self._dead_chunks.append(name)
            self._pending_dead = []

    def _write_chunk(self, seg_dir: Path, start: int, stop: int) -> dict[str, Any]:
        name = f"pos-{uuid.uuid4().hex[:16]}"
        dl = np.asarray(self.dl[start:stop], np.float32)
        _write_arrays(seg_dir / name, keys=self.keys[start:stop], dl=dl)
        return {"name": name, "start": start, "n": stop - start}

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = True) -> SparseIndex:
        """Open an index saved with :meth:`save`; postings are memory-mapped when ``mmap``."""
        path = Path(path)
        file = path / "index.json"
        if not file.is_file():
            raise FileNotFoundError(f"{path} holds no sparse index (no index.json)")
        meta = json.loads(file.read_text())
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise FormatVersionError(
                f"{path} was written by a newer granite-index (sparse format "
                f"{meta['format_version']}); upgrade granite-index"
            )
        analyzer = Analyzer.from_config(meta["analyzer"]) if meta.get("analyzer") else None
        idx = cls(meta["weighting"], k1=meta["k1"], b=meta["b"], analyzer=analyzer)
        mode = "r" if mmap else None
        seg_dir = Path(os.path.normpath(path / (meta.get("segments_dir") or "segments")))
        if "positions" in meta:
            chunks = meta["positions"]
            keys = [np.load(seg_dir / c["name"] / "keys.npy", mmap_mode=mode) for c in chunks]
            dl = [np.load(seg_dir / c["name"] / "dl.npy", mmap_mode=mode) for c in chunks]
            n = int(meta["n_positions"])
            idx.keys = keys[0] if len(keys) == 1 else np.concatenate([np.zeros(0, np.int64), *keys])
            idx.dl = dl[0] if len(dl) == 1 else np.concatenate([np.zeros(0, np.float32), *dl])
            idx.alive = np.ones(n, np.uint8)
            for name in meta["dead"]:
                idx.alive[np.load(seg_dir / name / "rows.npy")] = 0
            idx._chunks, idx._dead_chunks = list(chunks), list(meta["dead"])
            idx._chunk_dir = seg_dir
            idx._ascending = bool(meta["ascending"])
        else:  # saved whole by an earlier version: written as chunks by the next save
            idx.keys = np.load(path / "keys.npy", mmap_mode=mode)
            idx.dl = np.load(path / "dl.npy", mmap_mode=mode)
            idx.alive = np.load(path / "alive.npy")
            idx._ascending = _extends(np.zeros(0, np.int64), np.asarray(idx.keys))
        idx.n_alive = int(meta["n_alive"])
        idx.total_len = float(meta["total_len"])
        idx.segments = [Segment.load(seg_dir, m, mmap) for m in meta["segments"]]
        # postings per term, from the segments' term pointers (format 1 also kept a df.npy of
        # live counts: only its length, the term ids seen, is read)
        n_terms = meta.get("n_terms")
        if n_terms is None:
            n_terms = len(np.load(path / "df.npy", mmap_mode="r"))
        idx.df = np.zeros(int(n_terms), np.int64)
        idx._count_postings([])
        if analyzer is not None:
            if (path / "vocab" / "index.json").is_file():
                idx.vocab = StoredVocabulary.load(path / "vocab")
            else:  # saved whole by an earlier version: written as segments by the next save
                terms = feather.read_table(path / "vocab.arrow").column("term").to_pylist()
                idx.vocab = StoredVocabulary(terms)
        return idx

    @staticmethod
    def segment_names(path: str | os.PathLike[str]) -> set[str]:
        """Segments a saved index refers to (for cleaning up a shared segments folder)."""
        return segment_names(path)


def _extends(keys: np.ndarray, new: np.ndarray) -> bool:
    """True when ``new`` ascends strictly and starts past the last of ``keys``."""
    if len(new) and len(keys) and new[0] <= keys[-1]:
        return False
    return bool(np.all(new[1:] > new[:-1]))


def _write_arrays(folder: Path, **arrays: np.ndarray) -> None:
    """Write named arrays into a new folder (tmp + rename): a chunk is complete or absent."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".tmp-{folder.name}")
    tmp.mkdir()
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr))
    os.replace(tmp, folder)


def bm25_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene BM25 idf of document frequencies ``df`` (float64) among ``n_docs`` live documents;
    0 where ``df`` is 0. One formula for an index's own statistics and corpus-wide ones, so that
    both give the same bits."""
    with np.errstate(divide="ignore", invalid="ignore"):  # statistics a caller got wrong
        return np.where(df > 0, np.log1p((n_docs - df + 0.5) / (df + 0.5)), 0.0)


def check_share(share: Any, weighting: str) -> None:
    """``share`` of approximate search: a number in (0, 1], for impact indexes only."""
    if weighting != "impact":
        raise ValueError(
            "share (approximate search) is for impact indexes (learned-sparse vectors); "
            "BM25 search is always exact"
        )
    if isinstance(share, bool) or not (isinstance(share, (int, float)) and 0 < share <= 1):
        raise ValueError(f"share must be a number in (0, 1]; got {share!r}")


def heaviest_terms(
    q_ptr: np.ndarray, q_terms: np.ndarray, q_w: np.ndarray, share: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query's heaviest terms that carry ``share`` of its weight (terms come heaviest first,
    as :meth:`SparseIndex.prepare` orders them): a prefix per query, down to the first term at
    which the running sum reaches the share. Returns the cut queries as CSR."""
    rows = np.repeat(np.arange(len(q_ptr) - 1), np.diff(q_ptr))
    run = np.cumsum(q_w, dtype=np.float64)
    start = np.concatenate([[0.0], run])[q_ptr[:-1]]
    total = run[q_ptr[1:] - 1] - start if len(q_w) else np.zeros(0)
    before = run - q_w - start[rows]  # weight of the heavier terms of the same query
    keep = before < share * total[rows] if len(q_w) else np.zeros(0, bool)
    return ptr_from_mask(q_ptr, keep), q_terms[keep], q_w[keep]
