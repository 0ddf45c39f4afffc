"""Dense index: inner-product search over L2-normalised vectors kept in append-only segments.

Structure
---------
Vectors live in immutable :class:`~granite_index.index.dense_segment.DenseSegment` s, each its
own folder of ``.npy`` arrays (memory-mapped once saved): an add makes one new segment, a delete
records the deleted rows of the segments it touches in small per-segment files, and a commit
(:meth:`DenseIndex.save`) writes only those. Small segments are merged like a binary counter up
to :attr:`DenseIndexConfig.merge_max` rows, so an add costs O(its vectors) plus a bounded merge;
:meth:`DenseIndex.optimize` merges the rest (and drops deleted rows) on request, into segments of
at most :attr:`DenseIndexConfig.segment_max` rows (IVF lists are trained per segment, so k-means
stays affordable at tens of millions of vectors).

Search
------
``kind`` chooses how:

- ``"flat"``: always exact (every row's inner product; one matrix product per segment).
- ``"ivf"``: segments of at least ``ivf_min`` rows are clustered by k-means into ``nlist`` lists
  (about 2·sqrt(n)) and stored *grouped by list*; a query scans the ``nprobe`` nearest lists of
  each such segment (exact scores of the rows it reads) and every smaller segment whole. The
  vectors are stored once: a list is a contiguous slice of the same array an exact scan reads.
- ``"hnsw"``: segments of at least ``ivf_min`` rows also get a FAISS HNSW graph (which keeps
  FAISS's own copy of their vectors), searched with ``ef_search``.
- ``"auto"`` (default): exact while the index holds fewer than ``approximate_from`` vectors,
  ``ivf`` past it.

``quantization="int8"`` or ``"binary"`` keeps codes beside the vectors; approximate search of a
segment without IVF lists then scans the codes and rescores the best ``rescore`` rows exactly.
``nprobe``, ``ef_search``, ``rescore`` and ``exact`` can be set per :meth:`DenseIndex.search`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from granite_index.errors import DuplicateIdError, FormatVersionError, UnknownIdError
from granite_index.index.dense_search import DenseSearching
from granite_index.index.dense_segment import (
    DenseSegment,
    Quantization,
    build_segment,
    merge_segments,
)
from granite_index.index.listing import listed_files
from granite_index.validate import check_matrix, preview

IndexKind = Literal["auto", "flat", "ivf", "hnsw"]
Device = Literal["auto", "cpu", "cuda"]
FORMAT_VERSION = 2
#: kinds of earlier versions, read as today's
_LEGACY_KINDS = {"ivfpq": "ivf"}
_KINDS = ("auto", "flat", "ivf", "hnsw")


@dataclass(frozen=True)
class DenseIndexConfig:
    """How the dense index is built and searched; saved beside it (see the module docs).

    ``approximate_from``: live vectors from which ``auto`` searches approximately. ``ivf_min``:
    rows from which a segment gets IVF lists (``ivf``, ``auto``) or an HNSW graph (``hnsw``).
    ``merge_max``: the largest segment an add's merges make; ``segment_max``: the largest one
    :meth:`DenseIndex.optimize` makes (bigger collections get several). ``nlist`` (None: about
    2·sqrt(n) per segment) and ``nprobe`` for IVF; ``hnsw_m``, ``ef_construction``,
    ``ef_search`` for HNSW; ``quantization`` and ``rescore`` (rows rescored exactly per segment)
    for codes.
    """

    dim: int
    kind: IndexKind = "auto"
    approximate_from: int = 200_000
    ivf_min: int = 50_000
    merge_max: int = 16_384
    segment_max: int = 2_000_000
    nlist: int | None = None
    nprobe: int = 24
    quantization: Quantization = "none"
    rescore: int = 200
    hnsw_m: int = 32
    ef_construction: int = 100
    ef_search: int = 128
    format_version: int = FORMAT_VERSION


class DenseIndex(DenseSearching):
    """Inner-product search over L2-normalised vectors, keyed by int64 ids (see module docs).

    Parameters
    ----------
    dim : int
        Vector dimension.
    kind : {"auto", "flat", "ivf", "hnsw"}
        ``flat`` is always exact; ``auto`` is exact below ``approximate_from`` vectors.
    device : {"auto", "cpu", "cuda"}
        ``auto`` runs exact search on the GPU when faiss-gpu or torch sees one.
    **params
        Further :class:`DenseIndexConfig` fields.

    Examples
    --------
    >>> idx = DenseIndex(384)
    >>> idx.add(np.arange(3), vectors)
    >>> idx.search(query_vectors, k=2).ids
    """

    def __init__(
        self, dim: int, kind: IndexKind = "auto", *, device: Device = "auto", **params: Any
    ) -> None:
        kind = _LEGACY_KINDS.get(kind, kind)
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}; got {kind!r}")
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int; got {dim!r}")
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {device!r}")
        known = set(DenseIndexConfig.__dataclass_fields__) - {"dim", "kind", "format_version"}
        legacy = {"pq_m"}  # IVF-PQ's option: nothing to do with it now
        unknown = set(params) - known - legacy
        if unknown:
            raise TypeError(
                f"unknown dense index options {sorted(unknown)}; known: {sorted(known)}"
            )
        params = {k: v for k, v in params.items() if k in known}
        for name in ("approximate_from", "ivf_min", "merge_max", "segment_max"):
            value = params.get(name, 1)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if params.get("quantization", "none") not in ("none", "int8", "binary"):
            raise ValueError(
                f"quantization must be 'none', 'int8' or 'binary'; got {params['quantization']!r}"
            )
        self.config = DenseIndexConfig(dim=dim, kind=kind, **params)
        self.device = device
        self.segments: list[DenseSegment] = []
        self._hnsw: dict[str, faiss.Index] = {}
        self._gpu: Any = None
        self._version = 0  # bumped on every change
        self._allowed: tuple[Any, int, list[Any]] | None = None  # the last filter's rows
        self._ivf_table: tuple[list[int], np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        """Number of live vectors."""
        return sum(s.n_live for s in self.segments)

    @property
    def n_stored(self) -> int:
        """Rows held by the segments: the live ones and the deleted ones not yet merged away."""
        return sum(s.n for s in self.segments)

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def nbytes(self) -> int:
        """Bytes of the segments' arrays (most of them memory-mapped once saved)."""
        return sum(s.nbytes for s in self.segments)

    @property
    def ids(self) -> np.ndarray:
        """Live ids, int64, segment by segment."""
        if not self.segments:
            return np.zeros(0, np.int64)
        return np.concatenate([np.asarray(s.keys)[s.live_rows()] for s in self.segments])

    def __contains__(self, doc_id: int) -> bool:
        return bool(self._find(np.array([int(doc_id)], np.int64))[0][0] >= 0)

    def __repr__(self) -> str:
        return (
            f"DenseIndex({self.config.kind}, dim={self.dim}, vectors={len(self)}, "
            f"segments={len(self.segments)})"
        )

    # ------------------------------------------------------------------ writing
    def add(self, ids: Any, vectors: Any) -> None:
        """Add vectors under new ids (one new segment; small segments then merge).

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
        seg_of, _ = self._find(ids_arr)
        if (seg_of >= 0).any():
            raise DuplicateIdError(f"ids already in the index: {preview(ids_arr[seg_of >= 0])}")
        if len(ids_arr) == 0:
            return
        self.segments.append(self._build(ids_arr, vectors))
        self._merge_tail()
        self._changed()

    def delete(self, ids: Any) -> None:
        """Delete vectors by id; unknown ids raise :class:`UnknownIdError` and delete nothing."""
        ids_arr = np.asarray(ids, dtype=np.int64).ravel()
        if len(np.unique(ids_arr)) != len(ids_arr):
            raise DuplicateIdError("ids to delete holds duplicates")
        seg_of, rows = self._find(ids_arr)
        if (seg_of < 0).any():
            raise UnknownIdError(f"ids not in the index: {preview(ids_arr[seg_of < 0].tolist())}")
        for s in np.unique(seg_of).tolist():
            self.segments[s] = self.segments[s].with_dead(rows[seg_of == s])
        self.segments = [s for s in self.segments if s.n_live]
        self._changed()

    def compact(self) -> None:
        """Rewrite the segments that hold deleted rows without them."""
        self.segments = [self._merge([s]) if s.n_dead else s for s in self.segments if s.n_live]
        self._changed()

    def optimize(self, *, spill_to: str | os.PathLike[str] | None = None) -> None:
        """Merge the segments into as few as ``segment_max`` allows, of about equal size
        (deleted rows dropped; IVF lists or HNSW graphs built per segment past ``ivf_min``):
        one segment up to ``segment_max`` vectors. Costs O(the index): run it when it pays off.

        ``spill_to``: a segments folder (the one :meth:`save` will use) into which each merged
        segment is written as soon as it is made, and then memory-mapped, so memory holds one
        merge at a time (else every merged segment stays in memory until the next save: 15 GB
        for 10M 384-d vectors). A segment no save lists is removed by the owner's clean-up.
        """
        groups = size_groups(self.segments, self.config.segment_max)
        if not (any(len(g) > 1 or g[0].n_dead for g in groups) or len(groups) < len(self.segments)):
            return
        out = []
        for group in groups:
            if len(group) == 1 and not group[0].n_dead:
                out.append(group[0])
                continue
            seg = self._merge(group)
            if spill_to is not None:
                seg.save(Path(spill_to))
            out.append(seg)
        self.segments = out
        self._changed()

    def maintain(self, *, min_run: int = 8, dead_fraction: float = 0.3) -> None:
        """Bounded upkeep (a collection runs it every few hundred writes): merge each run of
        at least ``min_run`` adjacent segments smaller than ``ivf_min`` (up to ``ivf_min`` rows
        per merge, so the result gets IVF lists when it reaches that size), and rewrite the
        segments more than ``dead_fraction`` deleted. Large healthy segments are never touched.
        """
        c = self.config
        out: list[DenseSegment] = []
        run: list[DenseSegment] = []

        def flush() -> None:
            if len(run) >= min_run:
                out.append(self._merge(run))
            else:
                out.extend(run)
            run.clear()

        for seg in self.segments:
            if seg.n_dead > dead_fraction * seg.n:
                seg = self._merge([seg])
            if seg.n < c.ivf_min:
                run.append(seg)
                if sum(s.n_live for s in run) >= c.ivf_min:
                    out.append(self._merge(run))
                    run.clear()
            else:
                flush()
                out.append(seg)
        flush()
        if [s.name for s in out] != [s.name for s in self.segments]:
            self.segments = [s for s in out if s.n_live]
            self._changed()

    def _build(self, ids: np.ndarray, vectors: np.ndarray) -> DenseSegment:
        c = self.config
        big = len(ids) >= c.ivf_min
        return build_segment(
            ids,
            vectors,
            ivf=big and c.kind in ("ivf", "auto"),
            nlist=c.nlist,
            quantization=c.quantization,
        )

    def _merge(self, segments: list[DenseSegment]) -> DenseSegment:
        c = self.config
        big = sum(s.n_live for s in segments) >= c.ivf_min
        return merge_segments(
            segments,
            ivf=big and c.kind in ("ivf", "auto"),
            quantization=c.quantization,
            nlist=c.nlist,
        )

    def _merge_tail(self) -> None:
        """Binary-counter merging of the newest segments while the result stays within
        ``merge_max`` rows: a merge happens when the previous segment is not bigger."""
        segs = self.segments
        while len(segs) >= 2:
            a, b = segs[-2], segs[-1]
            if a.n_live > b.n_live or a.n_live + b.n_live > self.config.merge_max:
                break
            segs[-2:] = [self._merge([a, b])]

    def _changed(self) -> None:
        self._version += 1
        self._allowed = None
        self._ivf_table = None
        self._gpu = None
        live = {s.name for s in self.segments}
        self._hnsw = {k: v for k, v in self._hnsw.items() if k in live}

    def _find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(segment index, row) of each live id, (-1, -1) where absent or deleted."""
        seg_of = np.full(len(ids), -1, np.int64)
        rows = np.full(len(ids), -1, np.int64)
        for i, seg in enumerate(self.segments):
            todo = np.flatnonzero(seg_of < 0)
            if not len(todo):
                break
            r = seg.rows_of(ids[todo])
            hit = r >= 0
            seg_of[todo[hit]] = i
            rows[todo[hit]] = r[hit]
        return seg_of, rows

    # ------------------------------------------------------------------ persistence
    def save(
        self, path: str | os.PathLike[str], *, segments_dir: str | os.PathLike[str] | None = None
    ) -> None:
        """Write the index into folder ``path``: ``index.json`` (the config and the list of
        segments with their deletion files) and the segments not yet in ``segments_dir``
        (default ``path/segments``; several saves may share one, each writing only what is new).
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        seg_dir = Path(segments_dir) if segments_dir is not None else path / "segments"
        for seg in self.segments:
            seg.save(seg_dir)
        meta = {
            "format_version": FORMAT_VERSION,
            "config": asdict(self.config),
            "segments_dir": os.path.relpath(seg_dir, path),
            "segments": [{"name": s.name, "dead": s.dead_file} for s in self.segments],
        }
        (path / "index.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: Device = "auto") -> DenseIndex:
        """Read an index written by :meth:`save` (its arrays memory-mapped), or by an earlier
        version of granite-index (one FAISS file; converted in memory, written anew by the next
        save)."""
        path = Path(path)
        if not (path / "index.json").exists():
            if (path / "config.json").exists():
                return _load_v1(path, device)
            raise FileNotFoundError(f"{path} holds no dense index (no index.json)")
        meta = json.loads((path / "index.json").read_text())
        version = meta.get("format_version", 0)
        if version > FORMAT_VERSION:
            raise FormatVersionError(
                f"{path} holds a dense index of format {version}; this granite-index reads up to "
                f"{FORMAT_VERSION}. Upgrade granite-index."
            )
        cfg = dict(meta["config"])
        cfg.pop("format_version", None)
        dim, kind = cfg.pop("dim"), cfg.pop("kind")
        self = cls(dim, kind, device=device, **cfg)
        seg_dir = Path(os.path.normpath(path / meta["segments_dir"]))
        self.segments = [DenseSegment.load(seg_dir, s["name"], s["dead"]) for s in meta["segments"]]
        return self

    @staticmethod
    def segment_files(path: str | os.PathLike[str]) -> set[str]:
        """Files of the segments folder that the index saved at ``path`` uses (segment folder
        names and ``<segment>/<deletion file>``)."""
        return listed_files(path)


def size_groups(segments: list[DenseSegment], cap: int) -> list[list[DenseSegment]]:
    """Adjacent segments with live rows, grouped for merging into as few parts of at most ``cap``
    live rows as whole segments allow, of about equal size (a segment bigger than ``cap`` is a
    group alone)."""
    out: list[list[DenseSegment]] = []
    run: list[DenseSegment] = []
    for seg in (s for s in segments if s.n_live):
        if seg.n_live > cap:
            out += _balanced(run, cap) + [[seg]]
            run = []
        else:
            run.append(seg)
    return out + _balanced(run, cap)


def _balanced(run: list[DenseSegment], cap: int) -> list[list[DenseSegment]]:
    """``run`` (segments of at most ``cap`` live rows each) cut into contiguous groups of at most
    ``cap`` rows: the fewest equal shares that fit (each segment goes to the share holding its
    middle row), else groups filled up to the cap; then neighbours that fit together joined."""
    if not run:
        return []
    sizes = np.array([s.n_live for s in run], np.int64)
    total = int(sizes.sum())
    middles = np.cumsum(sizes) - sizes / 2
    for n_groups in range(-(-total // cap), len(run) + 1):
        part = np.minimum((middles * n_groups / total).astype(np.int64), n_groups - 1)
        groups = [[run[i] for i in np.flatnonzero(part == j)] for j in range(n_groups)]
        groups = [g for g in groups if g]
        if all(sum(s.n_live for s in g) <= cap for g in groups):
            return _joined(groups, cap)
    return _joined([[s] for s in run], cap)  # no equal cut fits: fill each group up to the cap


def _joined(groups: list[list[DenseSegment]], cap: int) -> list[list[DenseSegment]]:
    """``groups`` with each one joined to the one before it while both fit in ``cap`` rows (small
    segments left at the end by equal shares go together)."""
    out: list[list[DenseSegment]] = []
    for group in groups:
        size = sum(s.n_live for s in group)
        if out and sum(s.n_live for s in out[-1]) + size <= cap:
            out[-1] = out[-1] + group
        else:
            out.append(group)
    return out


def _load_v1(path: Path, device: Device) -> DenseIndex:
    """An index saved as one FAISS file (format 1): its vectors become one in-memory segment."""
    meta = json.loads((path / "config.json").read_text())
    cfg = dict(meta["config"])
    version = cfg.pop("format_version")
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{path} holds a dense index of format {version}; this granite-index reads up to "
            f"{FORMAT_VERSION}. Upgrade granite-index."
        )
    dim, kind = cfg.pop("dim"), cfg.pop("kind")
    keep = {"nlist", "nprobe", "hnsw_m", "ef_construction", "ef_search"}
    params = {k: v for k, v in cfg.items() if k in keep}
    if kind == "ivfpq":
        params.pop("nlist", None)  # chosen per segment now
    self = DenseIndex(dim, kind, device=device, **params)
    ids = np.load(path / "ids.npy")
    alive = np.load(path / "alive.npy").astype(bool)
    if not meta["trained"] or not alive.any():
        return self
    with open(path / "index.faiss", "rb") as fh:
        proc = f"/proc/self/fd/{fh.fileno()}"
        index = faiss.read_index(proc if os.path.exists(proc) else str(path / "index.faiss"))
    if kind == "ivfpq":
        ivf = faiss.extract_index_ivf(index)
        ivf.make_direct_map()
    live = np.flatnonzero(alive)
    vectors = index.reconstruct_batch(live.astype(np.int64))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    self.segments = [self._build(ids[live], vectors)]
    return self
