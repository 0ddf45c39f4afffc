"""The map between a collection's document ids (int or str) and its int64 keys, on disk.

Opening a collection reads no id: the map is a list of immutable segments, each a folder of
memory-mapped arrays written once by the commit that added its documents:

- ``keys.npy`` int64 (n,), ascending (keys are handed out in increasing order);
- ``ids.npy`` int64 (n,) for int ids, or ``ids.arrow`` (an Arrow IPC file of one string column)
  for str ids, in key order;
- ``hashes.npy`` uint64 (n,), the ids' 64-bit hashes sorted, and ``hash_rows.npy`` the row of
  each (for int ids the hash is the id itself).

``key → id`` is a binary search in ``keys``; ``id → key`` a binary search in ``hashes``, then a
comparison with the stored id (so hash collisions are resolved, not trusted). A delete writes a
small per-segment file of deleted rows. Small segments merge like a binary counter up to
``merge_max`` rows; :meth:`IdMap.optimize` merges them all.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from granite_index.index.listing import dead_mask, listed_files, same_dir, write_deletions

FORMAT_VERSION = 1
#: rows up to which segments merge as documents are added
MERGE_MAX = 1 << 17


def hash_ids(ids: Sequence[Any], id_type: str) -> np.ndarray:
    """uint64 hashes of ``ids``: the value itself for int ids, 8 bytes of BLAKE2b for str ids."""
    if id_type == "int":
        return np.asarray(ids, dtype=np.int64).view(np.uint64)
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(i.encode("utf-8"), digest_size=8).digest(), "little")
            for i in ids
        ),
        dtype=np.uint64,
        count=len(ids),
    )


@dataclass
class IdSegment:
    """Ids and keys of one commit's documents, with their hash index (see module docs)."""

    name: str
    keys: np.ndarray
    ids: Any  # numpy int64 array, or a pyarrow StringArray
    hashes: np.ndarray
    hash_rows: np.ndarray
    dead_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dead_file: str | None = None
    saved_in: Path | None = None
    _dead: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def n_live(self) -> int:
        return self.n - len(self.dead_rows)

    def dead_mask(self) -> np.ndarray | None:
        if not len(self.dead_rows):
            return None
        if self._dead is None:
            self._dead = dead_mask(self.n, self.dead_rows)
        return self._dead

    def id_at(self, rows: np.ndarray) -> list[Any]:
        if isinstance(self.ids, np.ndarray):
            return self.ids[rows].tolist()
        return self.ids.take(pa.array(rows, pa.int64())).to_pylist()

    def rows_of_keys(self, keys: np.ndarray) -> np.ndarray:
        """Rows of ``keys`` int64 (m,), -1 where absent or deleted."""
        out = np.full(len(keys), -1, np.int64)
        if not self.n or not len(keys):
            return out
        i = np.minimum(np.searchsorted(self.keys, keys), self.n - 1)
        hit = self.keys[i] == keys
        out[hit] = i[hit]
        mask = self.dead_mask()
        if mask is not None:
            out[(out >= 0) & mask[np.maximum(out, 0)]] = -1
        return out

    def rows_of_ids(self, ids: Sequence[Any], hashes: np.ndarray) -> np.ndarray:
        """Live rows of ``ids`` (their ``hashes`` given), -1 where absent."""
        out = np.full(len(ids), -1, np.int64)
        if not self.n or not len(ids):
            return out
        lo = np.searchsorted(self.hashes, hashes, side="left")
        hi = np.searchsorted(self.hashes, hashes, side="right")
        mask = self.dead_mask()
        cand = np.flatnonzero(hi > lo)
        single = cand[hi[cand] - lo[cand] == 1]
        rows = np.asarray(self.hash_rows[lo[single]])
        for j, row, value in zip(single.tolist(), rows.tolist(), self.id_at(rows)):
            if value == ids[j] and (mask is None or not mask[row]):
                out[j] = row
        for j in cand[hi[cand] - lo[cand] > 1].tolist():  # hash collisions: compare each
            rows = np.asarray(self.hash_rows[lo[j] : hi[j]])
            for row, value in zip(rows.tolist(), self.id_at(rows)):
                if value == ids[j] and (mask is None or not mask[row]):
                    out[j] = row
                    break
        return out

    def with_dead(self, rows: np.ndarray) -> IdSegment:
        dead = np.union1d(self.dead_rows, rows).astype(np.int64)
        return replace(self, dead_rows=dead, dead_file=None, _dead=None)

    # ------------------------------------------------------------------ persistence
    def save(self, segments_dir: Path, id_type: str) -> None:
        final = segments_dir / self.name
        if self.saved_in is None or not same_dir(self.saved_in, segments_dir):
            segments_dir.mkdir(parents=True, exist_ok=True)
            tmp = segments_dir / f".tmp-{self.name}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            for name in ("keys", "hashes", "hash_rows"):
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(self, name)))
            if id_type == "int":
                np.save(tmp / "ids.npy", np.asarray(self.ids, np.int64))
            else:
                table = pa.table({"id": pa.array(self.ids, pa.string())})
                with pa.OSFile(str(tmp / "ids.arrow"), "wb") as sink:
                    with pa.ipc.new_file(sink, table.schema) as writer:
                        writer.write_table(table)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            self.dead_file = None
            loaded = IdSegment.load(segments_dir, self.name, None)
            self.keys, self.ids = loaded.keys, loaded.ids
            self.hashes, self.hash_rows = loaded.hashes, loaded.hash_rows
            self.saved_in = Path(segments_dir)
        if len(self.dead_rows) and self.dead_file is None:
            self.dead_file = write_deletions(final, self.dead_rows)

    @classmethod
    def load(cls, segments_dir: Path, name: str, dead_file: str | None) -> IdSegment:
        folder = segments_dir / name
        if (folder / "ids.npy").exists():
            ids: Any = np.load(folder / "ids.npy", mmap_mode="r")
        else:
            column = pa.ipc.open_file(pa.memory_map(str(folder / "ids.arrow"))).read_all()["id"]
            # one chunk (as written) stays a view of the map: open reads none of its strings
            ids = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        dead = np.load(folder / dead_file) if dead_file else np.zeros(0, np.int64)
        return cls(
            name,
            np.load(folder / "keys.npy", mmap_mode="r"),
            ids,
            np.load(folder / "hashes.npy", mmap_mode="r"),
            np.load(folder / "hash_rows.npy", mmap_mode="r"),
            dead,
            dead_file,
            Path(segments_dir),
        )


def _segment(keys: np.ndarray, ids: list[Any], id_type: str) -> IdSegment:
    order = np.argsort(keys, kind="stable")
    keys = np.asarray(keys, np.int64)[order]
    ids = [ids[i] for i in order.tolist()]
    hashes = hash_ids(ids, id_type)
    hash_rows = np.argsort(hashes, kind="stable").astype(np.int64)
    stored: Any = np.asarray(ids, np.int64) if id_type == "int" else pa.array(ids, pa.string())
    return IdSegment(uuid.uuid4().hex[:16], keys, stored, hashes[hash_rows], hash_rows)


class IdMap:
    """Document ids ↔ int64 keys of a collection, in memory-mapped segments (module docs).

    Parameters
    ----------
    id_type : {"int", "str"}, optional
        None until the first ids are added (then set by :meth:`add`).
    """

    def __init__(self, id_type: str | None, *, merge_max: int = MERGE_MAX) -> None:
        if id_type not in ("int", "str", None):
            raise ValueError(f"id_type must be 'int' or 'str'; got {id_type!r}")
        self.id_type = id_type
        self.merge_max = merge_max
        self.segments: list[IdSegment] = []

    def __len__(self) -> int:
        return sum(s.n_live for s in self.segments)

    def keys_of(self, ids: Sequence[Any]) -> np.ndarray:
        """int64 keys of ``ids``, -1 for ids not in the collection."""
        ids = list(ids)
        out = np.full(len(ids), -1, np.int64)
        if not ids or not self.segments:
            return out
        try:
            hashes = hash_ids(ids, self.id_type)
        except (TypeError, ValueError, OverflowError, AttributeError):
            # ids of the other type (or unhashable): one by one, those of our type only
            ok = [i for i, v in enumerate(ids) if _of_type(v, self.id_type)]
            if ok:
                out[ok] = self.keys_of([ids[i] for i in ok])
            return out
        for seg in self.segments:
            todo = np.flatnonzero(out < 0)
            if not len(todo):
                break
            rows = seg.rows_of_ids([ids[i] for i in todo.tolist()], hashes[todo])
            hit = rows >= 0
            out[todo[hit]] = np.asarray(seg.keys)[rows[hit]]
        return out

    def ids_of(self, keys: np.ndarray) -> list[Any]:
        """The ids of ``keys`` (int64 (m,)), in that order; None for a key not in the map
        (deleted since a result was computed, or never given)."""
        keys = np.asarray(keys, np.int64).ravel()
        out: list[Any] = [None] * len(keys)
        if not self.segments or not len(keys):
            return out
        # segments hold ascending, disjoint key ranges: each key is looked up in one
        firsts = np.array([int(s.keys[0]) for s in self.segments], np.int64)
        seg_of = np.searchsorted(firsts, keys, side="right") - 1
        for i in np.unique(seg_of[seg_of >= 0]).tolist():
            at = np.flatnonzero(seg_of == i)
            rows = self.segments[i].rows_of_keys(keys[at])
            hit = rows >= 0
            for j, value in zip(at[hit].tolist(), self.segments[i].id_at(rows[hit])):
                out[j] = value
        return out

    def add(self, ids: Sequence[Any], keys: np.ndarray, id_type: str) -> None:
        """Map new ``ids`` (all of ``id_type``, the map's) to new ``keys`` (larger than every
        key so far)."""
        if self.id_type is None:
            self.id_type = id_type
        elif id_type != self.id_type:
            raise TypeError(f"the ids are {self.id_type}; got {id_type} ids")
        if not len(keys):
            return
        self.segments.append(_segment(np.asarray(keys, np.int64), list(ids), self.id_type))
        segs = self.segments
        while len(segs) >= 2 and segs[-2].n_live <= segs[-1].n_live:
            if segs[-2].n_live + segs[-1].n_live > self.merge_max:
                break
            segs[-2:] = [self._merge(segs[-2:])]

    def delete_keys(self, keys: np.ndarray) -> None:
        """Forget the documents of ``keys``."""
        keys = np.asarray(keys, np.int64).ravel()
        for i, seg in enumerate(self.segments):
            rows = seg.rows_of_keys(keys)
            if (rows >= 0).any():
                self.segments[i] = seg.with_dead(rows[rows >= 0])
        self.segments = [s for s in self.segments if s.n_live]

    def optimize(self) -> None:
        """Merge every segment into one, deleted rows dropped."""
        if len(self.segments) > 1 or any(len(s.dead_rows) for s in self.segments):
            self.segments = [self._merge(self.segments)] if len(self) else []

    def _merge(self, segments: list[IdSegment]) -> IdSegment:
        """One segment of the live rows of ``segments``: their stored hashes and id arrays are
        reused (no id becomes a Python object, none is hashed again)."""
        keys, ids, hashes = [], [], []
        for seg in segments:
            mask = seg.dead_mask()
            rows = np.arange(seg.n) if mask is None else np.flatnonzero(~mask)
            row_hash = np.empty(seg.n, np.uint64)
            row_hash[np.asarray(seg.hash_rows)] = seg.hashes  # each row's hash, in row order
            keys.append(np.asarray(seg.keys)[rows])
            hashes.append(row_hash[rows])
            if isinstance(seg.ids, np.ndarray):
                ids.append(pa.array(np.asarray(seg.ids)[rows], pa.int64()))
            else:
                ids.append(seg.ids.take(pa.array(rows, pa.int64())))
        all_keys = np.concatenate(keys)
        order = np.argsort(all_keys, kind="stable")
        all_hashes = np.concatenate(hashes)[order]
        all_ids = pa.concat_arrays(ids).take(pa.array(order, pa.int64()))
        stored: Any = all_ids.to_numpy() if self.id_type == "int" else all_ids
        hash_rows = np.argsort(all_hashes, kind="stable").astype(np.int64)
        return IdSegment(
            uuid.uuid4().hex[:16], all_keys[order], stored, all_hashes[hash_rows], hash_rows
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], *, segments_dir: str | os.PathLike[str]) -> None:
        """Write ``index.json`` into ``path`` and the segments (and deletion files) not yet in
        ``segments_dir``."""
        path, seg_dir = Path(path), Path(segments_dir)
        path.mkdir(parents=True, exist_ok=True)
        for seg in self.segments:
            seg.save(seg_dir, self.id_type)
        meta = {
            "format_version": FORMAT_VERSION,
            "id_type": self.id_type,
            "merge_max": self.merge_max,
            "segments_dir": os.path.relpath(seg_dir, path),
            "segments": [{"name": s.name, "dead": s.dead_file} for s in self.segments],
        }
        (path / "index.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IdMap:
        path = Path(path)
        meta = json.loads((path / "index.json").read_text())
        self = cls(meta["id_type"], merge_max=int(meta.get("merge_max", MERGE_MAX)))
        seg_dir = Path(os.path.normpath(path / meta["segments_dir"]))
        self.segments = [IdSegment.load(seg_dir, s["name"], s["dead"]) for s in meta["segments"]]
        return self

    @staticmethod
    def segment_files(path: str | os.PathLike[str]) -> set[str]:
        """Files of the segments folder the map saved at ``path`` uses (see DenseIndex)."""
        return listed_files(path)


def _of_type(value: Any, id_type: str) -> bool:
    if id_type == "int":
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    return isinstance(value, str)
