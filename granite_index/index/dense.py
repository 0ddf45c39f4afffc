"""FAISS dense index: exact inner product by default, HNSW and IVF-PQ selectable, int64 ids, deletes."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from granite_index._kernels.topk import topk_rows
from granite_index.errors import DuplicateIdError, FormatVersionError, UnknownIdError
from granite_index.index.positions import KeyPositions
from granite_index.types import SearchResult, empty_result
from granite_index.validate import check_k, check_matrix, preview

IndexKind = Literal["flat", "hnsw", "ivfpq"]
Device = Literal["auto", "cpu", "cuda"]
FORMAT_VERSION = 1
#: fraction of deleted vectors past which ``delete`` rebuilds the index without them
COMPACT_AT = 0.3


@dataclass(frozen=True)
class DenseIndexConfig:
    """How the FAISS index is built; saved beside it.

    ``hnsw_m`` / ``ef_construction`` / ``ef_search`` apply to ``hnsw``; ``nlist`` (None: about
    4·sqrt(n) at training), ``pq_m`` (None: dim/8 sub-quantisers of 8 bits) and ``nprobe`` to ``ivfpq``.
    """

    dim: int
    kind: IndexKind = "flat"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None
    pq_m: int | None = None
    nprobe: int = 16
    format_version: int = FORMAT_VERSION


class DenseIndex:
    """Inner-product search over L2-normalised vectors, keyed by int64 ids.

    Vectors sit in FAISS at positions 0..n-1; ``ids`` maps positions to the caller's ids.
    A delete marks the position dead (searches skip it through a FAISS ID selector) and
    past :data:`COMPACT_AT` dead the index is rebuilt without them.

    Parameters
    ----------
    dim : int
        Vector dimension.
    kind : {"flat", "hnsw", "ivfpq"}
        ``flat`` is exact; ``hnsw`` and ``ivfpq`` are approximate (IVF-PQ trains on its first add,
        which must hold at least 256 vectors).
    device : {"auto", "cpu", "cuda"}
        ``auto`` searches a flat index on the GPU when faiss-gpu or torch sees one.
    **params
        Further :class:`DenseIndexConfig` fields.

    Examples
    --------
    >>> idx = DenseIndex(384)
    >>> idx.add(np.arange(3), vectors)
    >>> idx.search(query_vectors, k=2).ids
    """

    def __init__(
        self, dim: int, kind: IndexKind = "flat", *, device: Device = "auto", **params: Any
    ) -> None:
        if kind not in ("flat", "hnsw", "ivfpq"):
            raise ValueError(f"kind must be 'flat', 'hnsw' or 'ivfpq'; got {kind!r}")
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int; got {dim!r}")
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {device!r}")
        self.config = DenseIndexConfig(dim=dim, kind=kind, **params)
        self.device = device
        self._index: faiss.Index | None = self._new_index(0) if kind != "ivfpq" else None
        self._ids = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=bool)
        self._pos: dict[int, int] = {}
        self._n_dead_in_faiss = 0  # deleted positions still inside the FAISS structure
        self._gpu: Any = None  # lazily built GPU copy (flat only)
        self._lookup: KeyPositions | None = None
        self._xb: tuple[tuple[int, int], np.ndarray] | None = None  # view of a flat index's vectors

    # ------------------------------------------------------------------ building
    def _new_index(self, n_train: int) -> faiss.Index:
        c = self.config
        if c.kind == "flat":
            return faiss.IndexFlatIP(c.dim)
        if c.kind == "hnsw":
            index = faiss.IndexHNSWFlat(c.dim, c.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = c.ef_construction
            index.hnsw.efSearch = c.ef_search
            return index
        nlist = c.nlist or max(1, min(int(4 * math.sqrt(n_train)), n_train // 39))
        pq_m = c.pq_m or max(1, c.dim // 8)
        if c.dim % pq_m:
            raise ValueError(f"pq_m={pq_m} must divide dim={c.dim}")
        self.config = replace(c, nlist=nlist, pq_m=pq_m)
        quantizer = faiss.IndexFlatIP(c.dim)
        index = faiss.IndexIVFPQ(quantizer, c.dim, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = c.nprobe
        return index

    def __len__(self) -> int:
        """Number of live vectors."""
        return len(self._pos)

    @property
    def n_stored(self) -> int:
        """Vectors held by the FAISS structure: the live ones and the deleted ones not yet
        compacted away."""
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def ids(self) -> np.ndarray:
        """Live ids, int64, in insertion order."""
        return self._ids[self._alive]

    def __contains__(self, doc_id: int) -> bool:
        return int(doc_id) in self._pos

    def add(self, ids: Any, vectors: Any) -> None:
        """Add vectors under new ids.

        Parameters
        ----------
        ids : array-like of int, shape (n,)
        vectors : array-like of float, shape (n, dim)
        """
        vectors = check_matrix(vectors, "vectors", self.dim)
        ids_arr = np.asarray(ids)
        if ids_arr.ndim != 1 or not np.issubdtype(ids_arr.dtype, np.integer):
            raise TypeError(
                f"ids must be a 1-D array of integers; got {ids_arr.dtype} {ids_arr.shape}"
            )
        ids_arr = ids_arr.astype(np.int64)
        if len(ids_arr) != len(vectors):
            raise ValueError(f"{len(ids_arr)} ids but {len(vectors)} vectors")
        if len(np.unique(ids_arr)) != len(ids_arr):
            raise DuplicateIdError("ids holds duplicates")
        present = [int(i) for i in ids_arr if int(i) in self._pos]
        if present:
            raise DuplicateIdError(f"ids already in the index: {preview(present)}")
        if len(ids_arr) == 0:
            return
        if self._index is None:  # IVF-PQ: train on the first batch
            if len(vectors) < 256:
                raise ValueError(
                    f"an IVF-PQ index trains on its first add, which needs at least 256 vectors; got "
                    f"{len(vectors)}. Add more at once, or use kind='flat' or 'hnsw'."
                )
            index = self._new_index(len(vectors))
            index.train(vectors)
            self._index = index
        start = len(self._ids)
        positions = np.arange(start, start + len(ids_arr), dtype=np.int64)
        if self.config.kind == "ivfpq":  # IVF stores ids: keep positions stable across removals
            self._index.add_with_ids(vectors, positions)
        else:
            self._index.add(vectors)
        self._ids = np.concatenate([self._ids, ids_arr])
        self._alive = np.concatenate([self._alive, np.ones(len(ids_arr), dtype=bool)])
        self._pos.update(zip(ids_arr.tolist(), range(start, start + len(ids_arr))))
        self._gpu = None
        self._lookup = None

    def delete(self, ids: Any) -> None:
        """Delete vectors by id; unknown ids raise :class:`UnknownIdError` and delete nothing."""
        ids_list = [int(i) for i in np.asarray(ids, dtype=np.int64).ravel()]
        if len(set(ids_list)) != len(ids_list):
            raise DuplicateIdError("ids to delete holds duplicates")
        missing = [i for i in ids_list if i not in self._pos]
        if missing:
            raise UnknownIdError(f"ids not in the index: {preview(missing)}")
        for i in ids_list:
            self._alive[self._pos.pop(i)] = False
        self._n_dead_in_faiss += len(ids_list)
        self._gpu = None
        self._lookup = None
        if self._n_dead_in_faiss >= COMPACT_AT * max(self._index.ntotal, 1):
            self.compact()

    def compact(self) -> None:
        """Drop deleted vectors from FAISS.

        Flat and HNSW are rebuilt from their stored vectors and renumbered; IVF-PQ removes the
        entries from its lists and keeps positions (its codes cannot be re-added losslessly).
        """
        if self._index is None or self._n_dead_in_faiss == 0:
            return
        if self.config.kind == "ivfpq":
            dead = np.flatnonzero(~self._alive).astype(np.int64)
            self._index.remove_ids(faiss.IDSelectorBatch(dead))
        else:
            keep = np.flatnonzero(self._alive)
            vectors = self._index.reconstruct_batch(keep.astype(np.int64))
            self._xb = None  # the view points into the index replaced below
            self._index = self._new_index(len(keep))
            if len(keep):
                self._index.add(vectors)
            self._ids = self._ids[keep]
            self._alive = np.ones(len(keep), dtype=bool)
            self._pos = dict(zip(self._ids.tolist(), range(len(keep))))
        self._n_dead_in_faiss = 0
        self._gpu = None
        self._lookup = None

    # ------------------------------------------------------------------ searching
    def search(self, queries: Any, k: int = 10) -> SearchResult:
        """Top-k ids by inner product.

        Parameters
        ----------
        queries : array-like of float, shape (n_queries, dim) or (dim,)
        k : int
            Hits per query; fewer live vectors than k pads with id -1, score -inf.

        Returns
        -------
        SearchResult
            ``ids`` int64 and ``scores`` float32, shape (n_queries, k).
        """
        queries = check_matrix(queries, "queries", self.dim)
        k = check_k(k)
        ids, scores = empty_result(len(queries), k)
        if len(self) == 0:
            return SearchResult(ids, scores)
        kk = min(k, len(self))
        dist, pos = self._search_positions(queries, kk)
        valid = pos >= 0
        ids[:, :kk] = np.where(valid, self._ids[np.where(valid, pos, 0)], -1)
        scores[:, :kk] = np.where(valid, dist, -np.inf)
        return SearchResult(ids, scores)

    def score(self, queries: Any, ids: Any) -> np.ndarray:
        """Inner products of each query with given stored vectors.

        Parameters
        ----------
        queries : array-like of float, shape (n_queries, dim)
        ids : array-like of int64, shape (n_queries, m)
            Ids per query; ``-1`` is padding.

        Returns
        -------
        numpy.ndarray of float32, shape (n_queries, m)
            NaN for padding and ids not in the index. Flat and HNSW store exact vectors, so this
            is the exact score; IVF-PQ decodes its codes, which is the score its search uses.
        """
        queries = check_matrix(queries, "queries", self.dim)
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[0] != len(queries):
            raise ValueError(f"ids must be (n_queries, m) = ({len(queries)}, m); got {ids.shape}")
        flat = ids.astype(np.int64).ravel()
        pos = self._positions(flat)
        out = np.full(len(flat), np.nan, np.float32)
        found = pos >= 0
        if found.any():
            if self.config.kind == "ivfpq":
                ivf = faiss.extract_index_ivf(self._index)
                if ivf.direct_map.no():
                    ivf.make_direct_map()
            vectors = self._index.reconstruct_batch(pos[found])
            rows = np.repeat(np.arange(len(queries)), ids.shape[1])[found]
            out[found] = np.einsum("ij,ij->i", queries[rows], vectors)
        return out.reshape(ids.shape)

    def scan_search(
        self, queries: Any, k: int, *, max_cells: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]] | None:
        """Top-k by scanning every stored vector of a CPU flat index with one matrix product, and
        a lookup of any id's score from the same product; None for HNSW, IVF-PQ, GPU search, or
        when ``n_queries x n_positions`` exceeds ``max_cells``.

        For one query this is FAISS's inner-product loop and a heap, cheaper than FAISS's search
        call; the hybrid search uses it to get the dense leg's list and its lookups in one pass.

        Parameters
        ----------
        queries : array-like of float, shape (n_queries, dim)
        k : int
        max_cells : int, optional
            Largest score matrix to hold (float32 cells).

        Returns
        -------
        (ids, scores, lookup) or None
            ``ids`` int64 and ``scores`` float32 (n_queries, k), best first (ties: earlier
            position), padded with -1 / -inf; ``lookup(ids)`` maps int64 (n_queries, m) ids to
            their float32 scores, NaN for -1 and for ids not in the index.
        """
        xb = self._flat_vectors()
        if xb is None:
            return None
        queries = check_matrix(queries, "queries", self.dim)
        k = check_k(k)
        if max_cells is not None and len(queries) * len(xb) > max_cells:
            return None
        all_scores = _inner_products(queries, xb)
        if self._n_dead_in_faiss:
            all_scores[:, ~self._alive] = -np.inf
        ids, scores = empty_result(len(queries), k)
        values, pos = topk_rows(all_scores, k)
        found = pos >= 0
        ids[:, : pos.shape[1]] = np.where(found, self._ids[np.maximum(pos, 0)], -1)
        scores[:, : pos.shape[1]] = values

        def lookup(want: np.ndarray) -> np.ndarray:
            want = np.asarray(want, dtype=np.int64)
            at = self._positions(want.ravel()).reshape(want.shape)
            got = np.take_along_axis(all_scores, np.maximum(at, 0), axis=1)
            return np.where((at >= 0) & (want >= 0), got, np.nan).astype(np.float32)

        return ids, scores, lookup

    def _flat_vectors(self) -> np.ndarray | None:
        """Zero-copy (n_positions, dim) view of a CPU flat index's vectors, else None.

        Rebuilt when the index object or its size changes: FAISS moves its storage only when
        vectors are added, and compaction replaces the index (and drops the view first).
        """
        if self.config.kind != "flat" or self._index is None or self._use_gpu():
            return None
        n, d = self._index.ntotal, self._index.d
        key = (id(self._index), n)
        if self._xb is None or self._xb[0] != key:
            if n == 0:
                view = np.zeros((0, d), np.float32)
            else:
                view = faiss.rev_swig_ptr(self._index.get_xb(), n * d).reshape(n, d)
            self._xb = (key, view)
        return self._xb[1]

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        """Live positions of ``ids`` int64 (n,), -1 where absent or deleted (vectorised)."""
        if self._lookup is None:
            self._lookup = KeyPositions(self._ids, self._alive)
        return self._lookup.find(ids)

    def _search_positions(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.config.kind == "flat" and self._use_gpu():
            return self._search_gpu(queries, k)
        if self._n_dead_in_faiss == 0:
            return self._index.search(queries, k, params=self._params(None))
        bitmap = np.packbits(self._alive, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(self._alive), faiss.swig_ptr(bitmap))
        return self._index.search(queries, k, params=self._params(selector))

    def _params(self, selector: Any) -> Any:
        c = self.config
        if c.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=max(c.ef_search, 1))
        if c.kind == "ivfpq":
            return faiss.SearchParametersIVF(sel=selector, nprobe=c.nprobe)
        return faiss.SearchParameters(sel=selector) if selector is not None else None

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
            vectors = self._index.reconstruct_n(0, self._index.ntotal)
            self._gpu = GpuFlatSearcher(vectors, self._alive)
        return self._gpu.search(queries, k)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``index.faiss``, ``ids.npy``, ``alive.npy`` and ``config.json`` into folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self._index is not None:
            faiss.write_index(self._index, str(path / "index.faiss"))
        np.save(path / "ids.npy", self._ids)
        np.save(path / "alive.npy", self._alive)
        meta = {
            "config": asdict(self.config),
            "trained": self._index is not None,
            "dead_in_faiss": self._n_dead_in_faiss,
        }
        (path / "config.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: Device = "auto") -> DenseIndex:
        """Read an index written by :meth:`save`."""
        path = Path(path)
        meta = json.loads((path / "config.json").read_text())
        cfg = dict(meta["config"])
        version = cfg.pop("format_version")
        if version > FORMAT_VERSION:
            raise FormatVersionError(
                f"{path} holds a dense index of format {version}; this granite-index reads up to "
                f"{FORMAT_VERSION}. Upgrade granite-index."
            )
        dim, kind = cfg.pop("dim"), cfg.pop("kind")
        self = cls(dim, kind, device=device, **cfg)
        self._index = _read_faiss(path / "index.faiss") if meta["trained"] else None
        self._ids = np.load(path / "ids.npy")
        self._alive = np.load(path / "alive.npy")
        live = self._ids[self._alive]
        self._pos = dict(zip(live.tolist(), np.flatnonzero(self._alive).tolist()))
        self._n_dead_in_faiss = int(meta["dead_in_faiss"])
        return self


def _read_faiss(file: Path) -> faiss.Index:
    """``faiss.read_index`` through a descriptor opened here: a missing file is a
    FileNotFoundError (FAISS's own is a RuntimeError), and on Linux the index is read whole even
    if a writer removes the file meanwhile."""
    with open(file, "rb") as fh:
        proc = f"/proc/self/fd/{fh.fileno()}"
        return faiss.read_index(proc if os.path.exists(proc) else str(file))


def _inner_products(queries: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """``queries @ xb.T``, float32 (n_queries, n). Below 20 queries (FAISS's own threshold) it
    uses FAISS's single-threaded SIMD loop rather than BLAS: BLAS threads keep spinning after a
    small product and slowed the next query's encoding (torch) by 2x in the latency benchmark."""
    if len(queries) >= 20 or len(xb) == 0:
        return queries @ xb.T
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    out = np.empty((len(queries), len(xb)), np.float32)
    ptr = faiss.swig_ptr(xb)
    for i in range(len(queries)):
        faiss.fvec_inner_products_ny(
            faiss.swig_ptr(out[i]), faiss.swig_ptr(queries[i]), ptr, xb.shape[1], len(xb)
        )
    return out
