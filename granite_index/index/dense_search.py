"""Searching a :class:`~granite_index.index.dense.DenseIndex`: exact scans, IVF probes (one
segment at a time, or the nearest lists across segments), HNSW graphs, code scans with exact
rescoring, filters (``allow``), and the GPU. A part of ``DenseIndex`` (mixed into it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from granite_index._kernels.topk import topk_rows
from granite_index.errors import UnknownIdError
from granite_index.index.dense_segment import DenseSegment, hnsw_graph, inner_products
from granite_index.types import SearchResult, empty_result
from granite_index.validate import check_k, check_matrix, preview

#: a filtered search reads a segment's allowed rows alone (a gather, exact) when they are fewer
#: than 1/8 of it and at most GATHER_MAX; more are scanned with the others masked. An IVF
#: segment searched approximately is probed (others masked) unless they are under 1/64 of it.
GATHER_BELOW = 8
GATHER_MAX = 32_768
GATHER_BELOW_IVF = 64


class DenseSearching:
    """Search verbs of the dense index (see :class:`~granite_index.index.dense.DenseIndex`)."""

    config: Any  # DenseIndexConfig
    device: str
    segments: list[DenseSegment]
    _version: int
    _hnsw: dict[str, faiss.Index]
    _gpu: Any
    _allowed: tuple[Any, int, list[Any]] | None
    _ivf_table: tuple[list[int], np.ndarray, np.ndarray, np.ndarray] | None
    _find: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

    # ------------------------------------------------------------------ searching
    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        exact: bool | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        rescore: int | None = None,
        allow: Any = None,
    ) -> SearchResult:
        """Top-k ids by inner product.

        Parameters
        ----------
        queries : array-like of float, shape (n_queries, dim) or (dim,)
        k : int
            Hits per query; fewer live vectors than k pads with id -1, score -inf.
        exact : bool, optional
            Force exact (True) or approximate (False) search; default: by ``kind``.
        nprobe, ef_search, rescore : int, optional
            This call's IVF lists per segment, HNSW beam, and rows rescored after a code scan.
        allow : array-like of int64, optional
            Only these ids may be returned, a filter applied before the top-k: each query gets
            ``min(k, allowed live ids)`` hits (approximate search that finds fewer falls back to
            an exact scan of the allowed rows).

        Returns
        -------
        SearchResult
            ``ids`` int64 and ``scores`` float32, shape (n_queries, k).
        """
        queries = check_matrix(queries, "queries", self.dim)
        k = check_k(k)
        ids, scores = empty_result(len(queries), k)
        n_live = len(self)
        if n_live == 0:
            return SearchResult(ids, scores)
        approx = self._approximate(exact)
        if allow is not None:
            s, key = self._search_allowed(queries, k, allow, approx, nprobe, rescore)
        elif not approx and self._use_gpu():
            s, key = self._search_gpu(queries, min(k, n_live))
        else:
            s, key = self._search_segments(queries, k, approx, nprobe, ef_search, rescore)
        kk = s.shape[1]
        ids[:, :kk] = key
        scores[:, :kk] = s
        return SearchResult(ids, scores)

    def _approximate(self, exact: bool | None) -> bool:
        if exact is not None:
            return not exact
        c = self.config
        if c.kind == "auto":
            return len(self) >= c.approximate_from
        return c.kind != "flat"

    def _search_segments(
        self,
        queries: np.ndarray,
        k: int,
        approx: bool,
        nprobe: int | None,
        ef_search: int | None,
        rescore: int | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        parts_s, parts_k = [], []
        joint: list[int] = []
        if approx and c.kind in ("ivf", "auto"):
            joint = [i for i, seg in enumerate(self.segments) if seg.has_ivf]
            if len(joint) >= 2:  # lists chosen across segments (see _probe_jointly)
                for i, (s, r) in zip(joint, self._probe_jointly(queries, k, joint, nprobe)):
                    parts_s.append(s)
                    parts_k.append(_keys_of(self.segments[i], r))
            else:
                joint = []
        for i, seg in enumerate(self.segments):
            if i in joint:
                continue
            kk = min(k, seg.n)
            if not approx:
                s, r = seg.scan(queries, kk)
            elif c.kind == "hnsw" and seg.n >= c.ivf_min:
                s, r = self._search_hnsw(seg, queries, kk, ef_search or c.ef_search)
            elif seg.has_ivf:
                s, r = seg.probe(queries, kk, nprobe or c.nprobe)
            elif seg.codes is not None:
                s, r = seg.code_scan(queries, kk, rescore or c.rescore)
            else:
                s, r = seg.scan(queries, kk)
            parts_s.append(s)
            parts_k.append(np.where(r >= 0, np.asarray(seg.keys)[np.maximum(r, 0)], -1))
        return _merge_parts(parts_s, parts_k, k)

    def _probe_jointly(
        self,
        queries: np.ndarray,
        k: int,
        which: list[int],
        nprobe: int | None,
        keeps: list[np.ndarray | None] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """IVF search of several segments as one: each query takes the
        ``nprobe * ceil(sqrt(segments))`` lists nearest to it among all their lists, wherever
        they are, and scans them (a segment none of whose lists is near gets no probe). With
        one segment that is ``nprobe`` lists; with many, far fewer scans than ``nprobe`` each.
        ``keeps[j]``: the rows segment ``which[j]`` may return (a filter), or None.
        """
        table = self._ivf_table
        if table is None or table[0] != which:
            cents = [np.asarray(self.segments[i].centroids) for i in which]
            seg_of = np.concatenate([np.full(len(c), j) for j, c in enumerate(cents)])
            list_of = np.concatenate([np.arange(len(c)) for c in cents])
            table = self._ivf_table = (which, np.concatenate(cents), seg_of, list_of)
        _, cents, seg_of, list_of = table
        budget = (nprobe or self.config.nprobe) * int(np.ceil(np.sqrt(len(which))))
        budget = min(budget, len(cents))
        best = np.argpartition(-inner_products(queries, cents), budget - 1, axis=1)[:, :budget]
        out = []
        for j, i in enumerate(which):
            lists = [list_of[b[seg_of[b] == j]] for b in best]
            keep = None if keeps is None else keeps[j]
            seg = self.segments[i]
            out.append(seg.probe_lists(queries, lists, min(k, seg.n), keep))
        return out

    def _search_allowed(
        self,
        queries: np.ndarray,
        k: int,
        allow: np.ndarray,
        approx: bool,
        nprobe: int | None,
        rescore: int | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k among the ids ``allow``. Per segment: few allowed rows are read alone (exact);
        more are scanned with the others masked (exact), or, when approximate, probed (IVF
        segments together, as :meth:`_probe_jointly`) or code-scanned with them masked. A query
        that finds fewer than min(k, allowed ids) is answered again exactly."""
        c = self.config
        parts_s, parts_k = [], []
        joint, keeps = [], []
        n_allowed = 0
        for i, (seg, plan) in enumerate(zip(self.segments, self._allowed_rows(allow))):
            rows = plan[0]
            if not len(rows):
                continue
            n_allowed += len(rows)
            kk = min(k, len(rows))
            if approx and seg.has_ivf and len(rows) * GATHER_BELOW_IVF >= seg.n:
                joint.append(i)
                keeps.append(_keep_mask(plan, seg.n))
                continue
            if len(rows) <= min(seg.n // GATHER_BELOW, GATHER_MAX):
                s, r = seg.gather_scan(queries, kk, rows)
            elif approx and seg.codes is not None and not seg.has_ivf:
                s, r = seg.code_scan(queries, kk, rescore or c.rescore, _keep_mask(plan, seg.n))
            else:
                s, r = seg.scan(queries, kk, _keep_mask(plan, seg.n))
            parts_s.append(s)
            parts_k.append(_keys_of(seg, r))
        if joint:
            for i, (s, r) in zip(joint, self._probe_jointly(queries, k, joint, nprobe, keeps)):
                parts_s.append(s)
                parts_k.append(_keys_of(self.segments[i], r))
        if not parts_s:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        s, key = _merge_parts(parts_s, parts_k, k)
        if approx:
            short = np.flatnonzero((key >= 0).sum(axis=1) < min(k, n_allowed))
            if len(short):
                s2, k2 = self._search_allowed(queries[short], k, allow, False, None, None)
                s[short, : s2.shape[1]], key[short, : k2.shape[1]] = s2, k2
        return s, key

    def _allowed_rows(self, allow: Any) -> list[list[Any]]:
        """Per segment, ``[rows, mask]``: the live rows of the ids ``allow`` (sorted) and a slot
        for their bool mask (made when a search needs it, :func:`_keep_mask`). The last
        filter's are kept (with the ``allow`` object itself, which a caller must not change in
        place) until the index changes: a filter repeated across queries is resolved once."""
        cached = self._allowed
        if cached is not None and cached[0] is allow and cached[1] == self._version:
            return cached[2]
        arr = np.asarray(allow, dtype=np.int64).ravel()
        if arr.size > 1 and not np.all(arr[1:] > arr[:-1]):
            arr = np.unique(arr)
        out = []
        for seg in self.segments:
            rows = seg.rows_of(arr)
            out.append([np.sort(rows[rows >= 0]), None])
        self._allowed = (allow, self._version, out)
        return out

    def _search_hnsw(
        self, seg: DenseSegment, queries: np.ndarray, k: int, ef: int
    ) -> tuple[np.ndarray, np.ndarray]:
        graph = self._hnsw.get(seg.name)
        if graph is None:
            graph = self._hnsw[seg.name] = hnsw_graph(
                seg, self.config.dim, self.config.hnsw_m, self.config.ef_construction
            )
        sel = None
        mask = seg.dead_mask()
        if mask is not None:
            bitmap = np.packbits(~mask, bitorder="little")
            sel = faiss.IDSelectorBitmap(seg.n, faiss.swig_ptr(bitmap))
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(ef, k))
        s, r = graph.search(queries, k, params=params)
        return np.where(r >= 0, s, -np.inf).astype(np.float32), r.astype(np.int64)

    def score(self, queries: Any, ids: Any) -> np.ndarray:
        """Exact inner products of each query with given stored vectors.

        Parameters
        ----------
        queries : array-like of float, shape (n_queries, dim)
        ids : array-like of int64, shape (n_queries, m)
            Ids per query; ``-1`` is padding.

        Returns
        -------
        numpy.ndarray of float32, shape (n_queries, m)
            NaN for padding and ids not in the index.
        """
        queries = check_matrix(queries, "queries", self.dim)
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[0] != len(queries):
            raise ValueError(f"ids must be (n_queries, m) = ({len(queries)}, m); got {ids.shape}")
        flat = ids.astype(np.int64).ravel()
        seg_of, rows = self._find(flat)
        out = np.full(len(flat), np.nan, np.float32)
        q_of = np.repeat(np.arange(len(queries)), ids.shape[1])
        for s in np.unique(seg_of[seg_of >= 0]).tolist():
            at = np.flatnonzero(seg_of == s)
            order = np.argsort(rows[at], kind="stable")  # file order
            at = at[order]
            vectors = np.asarray(self.segments[s].vectors[rows[at]])
            out[at] = np.einsum("ij,ij->i", queries[q_of[at]], vectors)
        return out.reshape(ids.shape)

    def vectors(self, ids: Any) -> np.ndarray:
        """The stored vectors of ``ids`` (int64 (n,)), float32 (n, dim), in that order;
        :class:`UnknownIdError` for an id not in the index."""
        ids_arr = np.asarray(ids, dtype=np.int64).ravel()
        seg_of, rows = self._find(ids_arr)
        if (seg_of < 0).any():
            raise UnknownIdError(f"ids not in the index: {preview(ids_arr[seg_of < 0].tolist())}")
        out = np.empty((len(ids_arr), self.dim), np.float32)
        for s in np.unique(seg_of).tolist():
            at = np.flatnonzero(seg_of == s)
            out[at] = self.segments[s].vectors[rows[at]]
        return out

    def scan_search(
        self, queries: Any, k: int, *, max_cells: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]] | None:
        """Exact top-k by scanning every stored vector, and a lookup of any id's score from the
        same products; None when search is approximate or on the GPU, or when
        ``n_queries x n_stored`` exceeds ``max_cells``.

        The hybrid search uses it to get the dense leg's list and its lookups in one pass.

        Returns
        -------
        (ids, scores, lookup) or None
            ``ids`` int64 and ``scores`` float32 (n_queries, k), best first, padded with
            -1 / -inf; ``lookup(ids)`` maps int64 (n_queries, m) ids to their float32 scores,
            NaN for -1 and for ids not in the index.
        """
        if self._approximate(None) or self._use_gpu():
            return None
        queries = check_matrix(queries, "queries", self.dim)
        k = check_k(k)
        if max_cells is not None and len(queries) * self.n_stored > max_cells:
            return None
        ids, scores = empty_result(len(queries), k)
        if not self.segments:
            return ids, scores, lambda want: np.full(np.shape(want), np.nan, np.float32)
        blocks = [seg.scores_all(queries) for seg in self.segments]
        all_scores = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
        starts = np.cumsum([0] + [s.n for s in self.segments])
        all_keys = np.concatenate([np.asarray(s.keys) for s in self.segments])
        values, pos = topk_rows(all_scores, k)
        ids[:, : pos.shape[1]] = np.where(pos >= 0, all_keys[np.maximum(pos, 0)], -1)
        scores[:, : pos.shape[1]] = values

        def lookup(want: np.ndarray) -> np.ndarray:
            want = np.asarray(want, dtype=np.int64)
            seg_of, rows = self._find(want.ravel())
            at = np.where(seg_of >= 0, starts[np.maximum(seg_of, 0)] + rows, -1)
            at = at.reshape(want.shape)
            got = np.take_along_axis(all_scores, np.maximum(at, 0), axis=1)
            return np.where((at >= 0) & (want >= 0), got, np.nan).astype(np.float32)

        return ids, scores, lookup

    # ------------------------------------------------------------------ GPU
    def _use_gpu(self) -> bool:
        if self.device == "cpu":
            return False
        from granite_index.index.gpu import gpu_available

        available = gpu_available()
        if self.device == "cuda" and not available:
            raise RuntimeError("device='cuda' but neither faiss-gpu nor torch sees a GPU")
        return available

    def _search_gpu(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from granite_index.index.gpu import GpuFlatSearcher

        if self._gpu is None:
            vectors = np.concatenate([np.asarray(s.vectors) for s in self.segments])
            alive = np.ones(len(vectors), bool)
            start = 0
            for s in self.segments:
                mask = s.dead_mask()
                if mask is not None:
                    alive[start : start + s.n] = ~mask
                start += s.n
            keys = np.concatenate([np.asarray(s.keys) for s in self.segments])
            self._gpu = (GpuFlatSearcher(vectors, alive), keys)
        searcher, keys = self._gpu
        scores, pos = searcher.search(queries, k)
        return scores, np.where(pos >= 0, keys[np.maximum(pos, 0)], -1)


def _keys_of(seg: DenseSegment, rows: np.ndarray) -> np.ndarray:
    return np.where(rows >= 0, np.asarray(seg.keys)[np.maximum(rows, 0)], -1)


def _merge_parts(
    parts_s: list[np.ndarray], parts_k: list[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` of per-segment lists (scores, keys), best first."""
    all_s = np.concatenate(parts_s, axis=1)
    all_k = np.concatenate(parts_k, axis=1)
    if len(parts_s) == 1:
        return all_s, all_k
    s, p = topk_rows(np.ascontiguousarray(all_s), k)
    return s, np.where(p >= 0, np.take_along_axis(all_k, np.maximum(p, 0), axis=1), -1)


def _keep_mask(plan: list[Any], n: int) -> np.ndarray:
    """The bool mask (n,) of a segment's allowed rows ``plan[0]``, made once (``plan[1]``)."""
    if plan[1] is None:
        keep = np.zeros(n, bool)
        keep[plan[0]] = True
        plan[1] = keep
    return plan[1]
