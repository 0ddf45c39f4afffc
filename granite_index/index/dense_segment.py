"""Immutable segments of a :class:`~granite_index.index.dense.DenseIndex`: the vectors are stored
once, here, and every search structure refers to them.

A segment holds ``n`` rows: ``keys`` int64 (n,), ``vectors`` float32 (n, dim) (memory-mapped once
saved), ``order`` (argsort of ``keys``) and ``sorted_keys`` (``keys[order]``, stored unless the
keys are in order already) for lookups, and, optionally,

- an inverted file (IVF): ``centroids`` float32 (nlist, dim) and ``list_ptr`` int64 (nlist + 1).
  The rows are stored *grouped by list* (list ``c`` is rows ``list_ptr[c]:list_ptr[c + 1]``), so a
  probe reads one contiguous slice of the very vectors an exact scan reads: no second copy;
- quantised codes for scanning: ``int8`` (n, dim) with one scale, or ``binary`` sign bits
  (n, dim / 8 bytes). Candidates found on codes are rescored from the float vectors.

A segment never changes once written. Deletions are a separate small file per generation
(``dead-<uuid>.npy``, the deleted rows, sorted) named by the index listing of each commit, so a
delete writes only the rows it deletes, and a commit writes only its new segment.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from granite_index._kernels.topk import topk_rows
from granite_index.index.listing import dead_mask, same_dir, write_deletions

Quantization = Literal["none", "int8", "binary"]
#: score-matrix cells computed at once while scanning (bounds the temporary memory)
SCAN_CELLS = 1 << 24
SEG_FILES = ("keys", "vectors", "order")


@dataclass
class DenseSegment:
    """Rows ``keys`` / ``vectors`` with optional IVF lists and codes (see module docs)."""

    name: str
    keys: np.ndarray
    vectors: np.ndarray
    order: np.ndarray
    sorted_keys: np.ndarray | None = None  # keys[order]; None: ``keys`` are sorted already
    centroids: np.ndarray | None = None
    list_ptr: np.ndarray | None = None
    codes: np.ndarray | None = None
    quantization: Quantization = "none"
    code_scale: float = 1.0
    dead_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dead_file: str | None = None  # the saved file holding ``dead_rows`` (None: none, or unsaved)
    saved_in: Path | None = None  # the segments folder it was written to (None: in memory only)
    _mask: np.ndarray | None = None
    _binary: faiss.IndexBinaryFlat | None = None
    _sq: faiss.IndexScalarQuantizer | None = None

    # ------------------------------------------------------------------ basics
    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def n_dead(self) -> int:
        return len(self.dead_rows)

    @property
    def n_live(self) -> int:
        return self.n - self.n_dead

    @property
    def has_ivf(self) -> bool:
        return self.centroids is not None

    @property
    def nbytes(self) -> int:
        arrays = (self.keys, self.vectors, self.order, self.centroids, self.list_ptr, self.codes)
        return sum(a.nbytes for a in arrays if a is not None)

    def dead_mask(self) -> np.ndarray | None:
        """bool (n,), True at deleted rows; None when nothing is deleted."""
        if not self.n_dead:
            return None
        if self._mask is None:
            self._mask = dead_mask(self.n, self.dead_rows)
        return self._mask

    def blocked(self, keep: np.ndarray | None) -> np.ndarray | None:
        """bool (n,), True at rows a search must skip: deleted, or outside ``keep`` (a bool
        mask of allowed rows); None when none is skipped."""
        dead = self.dead_mask()
        if keep is None:
            return dead
        return ~keep if dead is None else dead | ~keep

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """Live rows of ``keys`` int64 (m,), -1 where absent or deleted."""
        out = np.full(len(keys), -1, np.int64)
        if self.n == 0 or len(keys) == 0:
            return out
        sorted_keys = self.keys if self.sorted_keys is None else self.sorted_keys
        i = np.minimum(np.searchsorted(sorted_keys, keys), self.n - 1)
        hit = sorted_keys[i] == keys
        rows = np.asarray(self.order[i[hit]])
        out[hit] = rows
        mask = self.dead_mask()
        if mask is not None:
            out[np.flatnonzero(hit)[mask[rows]]] = -1
        return out

    def with_dead(self, rows: np.ndarray) -> DenseSegment:
        """A copy of this segment with ``rows`` also deleted (unsaved deletions)."""
        dead = np.union1d(self.dead_rows, rows).astype(np.int64)
        return replace(self, dead_rows=dead, dead_file=None, _mask=None)

    def live_rows(self) -> np.ndarray:
        mask = self.dead_mask()
        return np.arange(self.n) if mask is None else np.flatnonzero(~mask)

    # ------------------------------------------------------------------ searching
    def scan(
        self, queries: np.ndarray, k: int, keep: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` rows by inner product (among ``keep``, a bool mask of allowed rows):
        ``(scores, rows)`` (n_queries, min(k, n))."""
        out_s, out_r = [], []
        step = max(1, SCAN_CELLS // max(self.n, 1))
        mask = self.blocked(keep)
        for lo in range(0, len(queries), step):
            scores = inner_products(queries[lo : lo + step], self.vectors)
            if mask is not None:
                scores[:, mask] = -np.inf
            s, r = topk_rows(scores, k)
            out_s.append(s)
            out_r.append(r)
        return np.concatenate(out_s), np.concatenate(out_r)

    def scores_all(self, queries: np.ndarray) -> np.ndarray:
        """Inner products with every row, -inf at deleted rows: float32 (n_queries, n)."""
        scores = inner_products(queries, self.vectors)
        mask = self.dead_mask()
        if mask is not None:
            scores[:, mask] = -np.inf
        return scores

    def gather_scan(
        self, queries: np.ndarray, k: int, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` among the live ``rows`` (sorted int64) only, reading just those."""
        scores = inner_products(queries, np.ascontiguousarray(self.vectors[rows]))
        s, p = topk_rows(scores, k)
        return s, np.where(p >= 0, rows[np.maximum(p, 0)], -1)

    def probe(
        self, queries: np.ndarray, k: int, nprobe: int, keep: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows among the ``nprobe`` nearest IVF lists of each query (exact scores;
        among ``keep`` when given)."""
        assert self.centroids is not None
        nprobe = min(nprobe, len(self.centroids))
        cs = inner_products(queries, self.centroids)
        best = np.argpartition(-cs, nprobe - 1, axis=1)[:, :nprobe]
        return self.probe_lists(queries, list(best), k, keep)

    def probe_lists(
        self,
        queries: np.ndarray,
        lists: list[np.ndarray],
        k: int,
        keep: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows among IVF lists ``lists[i]`` for query ``i`` (exact scores)."""
        assert self.list_ptr is not None
        ptr = self.list_ptr
        mask = self.blocked(keep)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_r = np.full((len(queries), k), -1, np.int64)
        for qi in range(len(queries)):
            chosen = np.sort(np.asarray(lists[qi], np.int64))  # contiguous reads in file order
            starts, ends = ptr[chosen], ptr[chosen + 1]
            if not len(chosen) or not (ends > starts).any():
                continue
            rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)])
            scores = np.concatenate(
                [self.vectors[a:b] @ queries[qi] for a, b in zip(starts, ends) if b > a]
            ).astype(np.float32)
            if mask is not None:
                scores[mask[rows]] = -np.inf
            s, p = topk_rows(scores[None, :], k)
            out_s[qi, : s.shape[1]] = s[0]
            out_r[qi, : s.shape[1]] = np.where(p[0] >= 0, rows[np.maximum(p[0], 0)], -1)
        return out_s, out_r

    def code_scan(
        self, queries: np.ndarray, k: int, rescore: int, keep: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by exact scores among the ``rescore`` best rows on the codes (among
        ``keep`` when given)."""
        depth = min(max(rescore, k), self.n)
        if self.quantization == "binary":
            cand = self._binary_candidates(queries, depth)
        else:
            cand = self._int8_candidates(queries, depth)
        mask = self.blocked(keep)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_r = np.full((len(queries), k), -1, np.int64)
        for qi in range(len(queries)):
            rows = cand[qi][cand[qi] >= 0]
            if mask is not None:
                rows = rows[~mask[rows]]
            if not len(rows):
                continue
            rows = np.sort(rows)  # file order: sequential reads of the float vectors
            scores = (self.vectors[rows] @ queries[qi]).astype(np.float32)
            s, p = topk_rows(scores[None, :], k)
            out_s[qi, : s.shape[1]] = s[0]
            out_r[qi, : s.shape[1]] = np.where(p[0] >= 0, rows[np.maximum(p[0], 0)], -1)
        return out_s, out_r

    def _int8_candidates(self, queries: np.ndarray, depth: int) -> np.ndarray:
        """The ``depth`` best rows on the int8 codes, by FAISS's SIMD scan: a uniform 8-bit
        scalar quantiser whose range is set so that it decodes byte ``x + 128`` as ``x``, holding
        the codes as they are stored. (FAISS 1.15's ``QT_8bit_direct*`` kinds returned zero
        scores from 32 dimensions up on this machine's build; ``uniform`` is exact.)"""
        assert self.codes is not None
        if self._sq is None:
            n, d = self.codes.shape
            index = faiss.IndexScalarQuantizer(
                d, faiss.ScalarQuantizer.QT_8bit_uniform, faiss.METRIC_INNER_PRODUCT
            )
            faiss.copy_array_to_vector(np.array([-128.5, 255.0], np.float32), index.sq.trained)
            index.is_trained = True
            raw = (np.asarray(self.codes).view(np.uint8) ^ np.uint8(0x80)).ravel()
            faiss.copy_array_to_vector(raw, index.codes)
            index.ntotal = n
            self._sq = index
        _, rows = self._sq.search(np.ascontiguousarray(queries, dtype=np.float32), depth)
        return rows.astype(np.int64)

    def _binary_candidates(self, queries: np.ndarray, depth: int) -> np.ndarray:
        assert self.codes is not None
        if self._binary is None:
            index = faiss.IndexBinaryFlat(self.codes.shape[1] * 8)
            index.add(np.ascontiguousarray(self.codes))
            self._binary = index
        _, rows = self._binary.search(binary_codes(queries), depth)
        return rows.astype(np.int64)

    # ------------------------------------------------------------------ persistence
    def save(self, segments_dir: Path) -> None:
        """Write the segment's arrays into ``segments_dir/<name>`` (tmp + rename), then its
        deletions when there are any; memory-maps the written arrays."""
        final = segments_dir / self.name
        if self.saved_in is None or not same_dir(self.saved_in, segments_dir):
            segments_dir.mkdir(parents=True, exist_ok=True)
            tmp = segments_dir / f".tmp-{self.name}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            arrays = {"keys": self.keys, "vectors": self.vectors, "order": self.order}
            if self.sorted_keys is not None:
                arrays["sorted_keys"] = self.sorted_keys
            if self.centroids is not None:
                arrays |= {"centroids": self.centroids, "list_ptr": self.list_ptr}
            if self.codes is not None:
                arrays["codes"] = self.codes
            for name, arr in arrays.items():
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr))
            meta = {"n": self.n, "quantization": self.quantization, "code_scale": self.code_scale}
            (tmp / "segment.json").write_text(json.dumps(meta))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            self.dead_file = None
            loaded = DenseSegment.load(segments_dir, self.name)
            self.keys, self.vectors, self.order = loaded.keys, loaded.vectors, loaded.order
            self.sorted_keys = loaded.sorted_keys
            self.centroids, self.list_ptr, self.codes = (
                loaded.centroids,
                loaded.list_ptr,
                loaded.codes,
            )
            self.saved_in = Path(segments_dir)
        if self.n_dead and self.dead_file is None:
            self.dead_file = write_deletions(final, self.dead_rows)

    @classmethod
    def load(cls, segments_dir: Path, name: str, dead_file: str | None = None) -> DenseSegment:
        folder = segments_dir / name
        meta = json.loads((folder / "segment.json").read_text())

        def arr(stem: str) -> np.ndarray | None:
            file = folder / f"{stem}.npy"
            return np.load(file, mmap_mode="r") if file.exists() else None

        dead = np.load(folder / dead_file) if dead_file else np.zeros(0, np.int64)
        return cls(
            name,
            arr("keys"),
            arr("vectors"),
            arr("order"),
            arr("sorted_keys"),
            arr("centroids"),
            arr("list_ptr"),
            arr("codes"),
            meta.get("quantization", "none"),
            float(meta.get("code_scale", 1.0)),
            dead,
            dead_file,
            Path(segments_dir),
        )

    def files(self) -> set[str]:
        """The files this segment's state names, relative to the segments folder."""
        out = {self.name}
        if self.dead_file:
            out.add(f"{self.name}/{self.dead_file}")
        return out


def hnsw_graph(seg: DenseSegment, dim: int, m: int, ef_construction: int) -> faiss.Index:
    """The FAISS HNSW graph of a segment, built on its first approximate search and kept in
    its folder as a cache (``hnsw.faiss``): later handles and processes read it. Writing the
    cache is best effort (a unique temporary name, then a rename; a folder a writer removed
    meanwhile, or a read-only one, only means the graph is built again next time); the segment's
    own files never change."""
    file = None if seg.saved_in is None else seg.saved_in / seg.name / "hnsw.faiss"
    if file is not None and file.exists():
        try:
            return faiss.read_index(str(file))
        except RuntimeError:  # a torn cache file (power loss): build it again
            pass
    graph = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = ef_construction
    graph.add(np.ascontiguousarray(seg.vectors))
    if file is not None:
        tmp = file.with_name(f".tmp-hnsw-{uuid.uuid4().hex[:12]}.faiss")
        try:
            faiss.write_index(graph, str(tmp))
            os.replace(tmp, file)
        except (OSError, RuntimeError):
            tmp.unlink(missing_ok=True)
    return graph


# ---------------------------------------------------------------------- building
def build_segment(
    keys: np.ndarray,
    vectors: np.ndarray,
    *,
    ivf: bool = False,
    nlist: int | None = None,
    quantization: Quantization = "none",
    seed: int = 0,
) -> DenseSegment:
    """A new in-memory segment over ``keys`` int64 (n,) and ``vectors`` float32 (n, dim); with
    ``ivf`` its rows are clustered into ``nlist`` lists (default about 4·sqrt(n)) by k-means on
    a sample, and stored grouped by list."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    centroids = list_ptr = None
    if ivf and len(keys) >= 2:
        centroids, assign = _kmeans(vectors, nlist or default_nlist(len(keys)), seed)
        perm = np.argsort(assign, kind="stable")
        keys, vectors = keys[perm], vectors[perm]
        counts = np.bincount(assign, minlength=len(centroids))
        list_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return _assemble(keys, vectors, centroids, list_ptr, quantization)


def _assemble(
    keys: np.ndarray,
    vectors: np.ndarray,
    centroids: np.ndarray | None,
    list_ptr: np.ndarray | None,
    quantization: Quantization,
) -> DenseSegment:
    """A new in-memory segment of rows already in their final order: its key lookup arrays and
    codes computed here."""
    codes, scale = encode_codes(vectors, quantization)
    order = np.argsort(keys, kind="stable").astype(np.int64)
    in_order = bool(np.all(keys[1:] > keys[:-1]))
    return DenseSegment(
        name=uuid.uuid4().hex[:16],
        keys=keys,
        vectors=vectors,
        order=order,
        sorted_keys=None if in_order else keys[order],
        centroids=centroids,
        list_ptr=list_ptr,
        codes=codes,
        quantization=quantization,
        code_scale=scale,
    )


def merge_segments(
    segments: list[DenseSegment], *, ivf: bool, quantization: Quantization, nlist: int | None
) -> DenseSegment:
    """One segment holding the live rows of ``segments``, in their order (IVF rebuilt). A lone
    segment with IVF lists keeps them: its deleted rows are dropped from their lists, no k-means
    runs (rewriting a 2M-row segment costs a copy, not a clustering)."""
    if len(segments) == 1 and ivf and segments[0].centroids is not None:
        return _without_dead(segments[0], quantization)
    keys = np.concatenate([np.asarray(s.keys)[s.live_rows()] for s in segments])
    vectors = np.concatenate([np.asarray(s.vectors)[s.live_rows()] for s in segments])
    return build_segment(keys, vectors, ivf=ivf, nlist=nlist, quantization=quantization)


def _without_dead(seg: DenseSegment, quantization: Quantization) -> DenseSegment:
    """``seg`` rewritten without its deleted rows, its IVF lists (centroids and the grouping of
    rows by list) kept."""
    live = seg.live_rows()
    keys = np.ascontiguousarray(np.asarray(seg.keys)[live])
    vectors = np.ascontiguousarray(np.asarray(seg.vectors)[live])
    ptr = np.asarray(seg.list_ptr)
    list_of_row = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))[live]
    counts = np.bincount(list_of_row, minlength=len(ptr) - 1)
    list_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return _assemble(keys, vectors, np.array(seg.centroids), list_ptr, quantization)


def default_nlist(n: int) -> int:
    """IVF lists for ``n`` rows: about 2·sqrt(n), with at least 39 rows per list (FAISS's
    advice for training k-means)."""
    return max(1, min(int(2 * np.sqrt(n)), n // 39))


def _kmeans(vectors: np.ndarray, nlist: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means centroids (nlist, dim) trained on at most 32 samples per list (10
    iterations), and each row's nearest centroid (n,)."""
    nlist = max(1, min(nlist, len(vectors)))
    km = faiss.Kmeans(
        vectors.shape[1],
        nlist,
        niter=10,
        spherical=True,
        seed=seed,
        max_points_per_centroid=32,
        verbose=False,
    )
    km.train(vectors)
    centroids = km.centroids.astype(np.float32)
    assign = np.empty(len(vectors), np.int64)
    step = max(1, SCAN_CELLS // max(nlist, 1))
    for lo in range(0, len(vectors), step):
        assign[lo : lo + step] = np.argmax(vectors[lo : lo + step] @ centroids.T, axis=1)
    return centroids, assign


def encode_codes(
    vectors: np.ndarray, quantization: Quantization
) -> tuple[np.ndarray | None, float]:
    """Codes for scanning: int8 (n, dim) with one symmetric scale, or packed sign bits
    (n, ceil(dim / 8)) uint8; None for ``none``."""
    if quantization == "none":
        return None, 1.0
    if quantization == "binary":
        return binary_codes(vectors), 1.0
    if quantization != "int8":
        raise ValueError(f"quantization must be 'none', 'int8' or 'binary'; got {quantization!r}")
    peak = float(np.abs(vectors).max()) if vectors.size else 1.0
    scale = 127.0 / peak if peak > 0 else 1.0
    return np.clip(np.rint(vectors * scale), -127, 127).astype(np.int8), scale


def binary_codes(vectors: np.ndarray) -> np.ndarray:
    """Sign bits of ``vectors`` packed 8 per byte: uint8 (n, ceil(dim / 8))."""
    return np.packbits(vectors > 0, axis=1)


def inner_products(queries: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """``queries @ xb.T``, float32 (n_queries, n). Below 20 queries (FAISS's own threshold) it
    uses FAISS's single-threaded SIMD loop rather than BLAS: BLAS threads keep spinning after a
    small product and slowed the next query's encoding (torch) by 2x in the latency benchmark."""
    if len(queries) >= 20 or len(xb) == 0 or not xb.flags.c_contiguous:
        return np.asarray(queries @ np.asarray(xb).T, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    out = np.empty((len(queries), len(xb)), np.float32)
    ptr = faiss.swig_ptr(np.asarray(xb))
    for i in range(len(queries)):
        faiss.fvec_inner_products_ny(
            faiss.swig_ptr(out[i]), faiss.swig_ptr(queries[i]), ptr, xb.shape[1], len(xb)
        )
    return out
