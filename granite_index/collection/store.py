"""A collection's files: a Lance dataset of documents + vectors, FAISS index folders, and the manifest.

Layout of a collection folder::

    manifest.json        the commit point: format, commit number, Lance version, encoder, index
    docs.lance/          Lance dataset: _key int64, id, text, metadata (JSON), typed metadata
    dense/00000007/      the dense index's listing as of commit 7: segments + deletion files
    dense/segments/      its immutable vector segments, shared by commits (see DenseIndex.save)
    ids/00000007/        the id ↔ key map's listing as of commit 7 (segments + deletion files)
    ids/segments/        its immutable segments: keys, ids, id hashes (see IdMap)
    sparse/00000007/     the BM25 index's per-document arrays + vocabulary as of commit 7
    sparse/segments/     its immutable postings segments, shared by commits (see SparseIndex.save)
    splade/...           the same for the learned-sparse (SPLADE) index
    versions/00000007.json   each retained commit's manifest (time travel, readers' snapshots)
    .lock                held (flock) by the one writer

A commit writes new Lance data (a new Lance version), then the dense and sparse indexes into
fresh folders (new segments and deletion files only), fsyncs all of it and the folders naming it, and last
replaces ``manifest.json`` atomically (write, fsync, rename, fsync the folder). A process killed
before the rename leaves the previous manifest in force: ``open`` reads the Lance dataset at the
version it names, and the next writer restores that version before writing. The files of the
newest ``keep_commits`` commits, and of every commit younger than ``retention_seconds`` (the
collection's policy, :meth:`Store.retention`), are kept for time travel; older ones are removed
after a commit (:meth:`Store.prune`). A reader that meets a file removed while it opened simply
reads the newest commit again (:func:`~granite_index.collection.state.load_newest`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import lance
import pyarrow as pa

from granite_index.errors import (
    FormatVersionError,
    LockTimeoutError,
    NotACollectionError,
    UnsupportedPathError,
)
from granite_index.fileio import (
    exclusive_lock,
    fsync_dir,
    fsync_tree,
    make_temp_dir,
    write_atomic,
)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DOCS = "docs.lance"
DENSE = "dense"
IDS = "ids"
SPARSE = "sparse"
VERSIONS = "versions"
#: default retention: the newest commits whose files are kept (segments are shared between
#: commits; a commit's own files are small listings and per-document arrays) ...
KEEP_COMMITS = 1
#: ... and every commit younger than this many seconds. A collection's own policy is in its
#: manifest (``extra["retention"]``, see :meth:`Store.retention`).
RETENTION_SECONDS = 0.0
#: Lance versions (documents) newer than this are never cleaned up: handles opened on an earlier
#: commit shortly before keep reading its documents
READER_GRACE_SECONDS = 120.0
#: folder of each sparse index kept by a collection (BM25 keeps "sparse" from format 1's start)
SPARSE_DIRS = {"bm25": SPARSE, "splade": "splade"}


@dataclass(frozen=True)
class Manifest:
    """The committed state of a collection (``manifest.json``)."""

    encoder: dict[str, Any] | None
    dense_index: dict[str, Any] | None
    sparse_index: dict[str, Any] | None = None  # the BM25 index
    splade_encoder: dict[str, Any] | None = None
    splade_index: dict[str, Any] | None = None
    fusion: dict[str, Any] | None = None  # the hybrid fusion chosen by Collection.fit_fusion
    commit: int = 0
    lance_version: int | None = None
    id_type: str | None = None
    next_key: int = 0
    n_docs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def next(self, **changes: Any) -> Manifest:
        return replace(self, commit=self.commit + 1, **changes)


def docs_schema(dim: int | None, id_type: str) -> pa.Schema:
    """The reserved columns of ``docs.lance``; with ``dim``, also the ``vector`` column that
    collections made by earlier versions keep (the dense index now stores the vectors itself)."""
    id_field = pa.int64() if id_type == "int" else pa.string()
    fields = [
        pa.field("_key", pa.int64(), nullable=False),
        pa.field("id", id_field, nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("metadata", pa.string()),
    ]
    if dim is not None:
        fields.append(pa.field("vector", pa.list_(pa.float32(), dim), nullable=False))
    return pa.schema(fields)


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def local_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a local folder; an URI (``s3://``, ``gs://``, ``az://``, ``file://``...) is an
    error rather than a local folder named after it (``./s3:/bucket/c``)."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if _URI.match(text):
        scheme = text.split("://", 1)[0]
        hint = (
            f"use the local path itself ({text[len('file://') :]!r})"
            if scheme.lower() == "file"
            else "keep the collection on a local or mounted file system (a FUSE mount of the "
            "bucket works) and copy it to object storage as a folder"
        )
        raise UnsupportedPathError(
            f"{text!r}: collections are local folders; {scheme}:// URIs are not supported: {hint}"
        )
    return Path(text)


class Store:
    """Reads and commits a collection folder. One writer at a time (see :meth:`writer`)."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest
        self._synced: dict[str, int] = {}  # files and folders fsynced, by mtime (see sync)

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        manifest: Manifest,
        dense_index: Any | None,
        sparse_indexes: dict[str, Any] | None = None,
    ) -> Store:
        """Make a new collection folder holding ``manifest`` and the empty indexes (commit 0).

        The folder is assembled beside ``path`` and renamed into place, so a failure leaves nothing.
        ``path`` must not exist or be an empty folder.
        """
        path = local_path(path)
        if path.exists():
            if not path.is_dir() or any(path.iterdir()):
                raise FileExistsError(f"{path} already exists and is not an empty folder")
            path.rmdir()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(path.parent, f".{path.name}.")
        try:
            if dense_index is not None:
                dense_index.save(
                    tmp / DENSE / f"{manifest.commit:08d}", segments_dir=tmp / DENSE / "segments"
                )
            for name, index in (sparse_indexes or {}).items():
                folder = tmp / SPARSE_DIRS[name]
                index.save(folder / f"{manifest.commit:08d}", segments_dir=folder / "segments")
            (tmp / VERSIONS).mkdir()
            write_atomic(tmp / VERSIONS / f"{manifest.commit:08d}.json", manifest.to_json())
            write_atomic(tmp / MANIFEST, manifest.to_json())
            fsync_tree(tmp)
            os.replace(tmp, path)
            fsync_dir(path.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(path, manifest)

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        """True when ``path`` holds a committed manifest."""
        return (local_path(path) / MANIFEST).is_file()

    @classmethod
    def open(cls, path: str | os.PathLike[str], version: int | None = None) -> Store:
        """The collection at ``path`` as of its newest commit, or of commit ``version`` while
        that commit is retained (see :meth:`prune`)."""
        path = local_path(path)
        file = path / MANIFEST
        if not file.is_file():
            what = "does not exist" if not path.exists() else f"has no {MANIFEST}"
            raise NotACollectionError(f"{path} is not a granite-index collection: it {what}")
        if version is not None:
            file = path / VERSIONS / f"{int(version):08d}.json"
            if not file.is_file():
                have = [v["commit"] for v in cls.open(path).versions()]
                raise ValueError(
                    f"{path} keeps no commit {version}: retained commits are {have} (older "
                    "ones are removed after the retention window)"
                )
        try:
            raw = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise NotACollectionError(f"{file} is not valid JSON: {exc}") from exc
        version = raw.get("format_version")
        if not isinstance(version, int):
            raise NotACollectionError(f"{file} has no format_version; not a granite-index manifest")
        if version > FORMAT_VERSION:
            raise FormatVersionError(
                f"{path} was written by a newer granite-index (collection format {version}); this "
                f"version reads format {FORMAT_VERSION} and older. Upgrade: pip install -U granite-index"
            )
        known = {f for f in Manifest.__dataclass_fields__}
        return cls(path, Manifest(**{k: v for k, v in raw.items() if k in known}))

    # ------------------------------------------------------------------ reading
    def versions(self) -> list[dict[str, Any]]:
        """The retained commits, oldest first: ``commit``, ``time`` (seconds since the epoch),
        ``n_docs``."""
        out = {}
        for file in sorted((self.path / VERSIONS).glob("*.json")):
            try:
                raw = json.loads(file.read_text())
            except (OSError, json.JSONDecodeError):  # being pruned, or a torn leftover
                continue
            out[raw["commit"]] = {
                "commit": raw["commit"],
                "time": file.stat().st_mtime,
                "n_docs": raw["n_docs"],
            }
        current = self.manifest
        if current.commit not in out:  # written before versions were kept
            mtime = (self.path / MANIFEST).stat().st_mtime
            out[current.commit] = {
                "commit": current.commit,
                "time": mtime,
                "n_docs": current.n_docs,
            }
        return [out[c] for c in sorted(out)]

    def docs(self) -> lance.LanceDataset | None:
        """The Lance dataset at the committed version (None before the first add)."""
        if self.manifest.lance_version is None:
            return None
        return lance.dataset(self.path / DOCS, version=self.manifest.lance_version)

    def docs_schema(self) -> pa.Schema | None:
        """The schema of the documents' dataset (None before the first add): the reserved
        columns, ``vector`` in collections made before the dense index stored the vectors, and
        the typed metadata columns."""
        ds = self.docs()
        return None if ds is None else ds.schema

    def ids_dir(self, commit: int | None = None) -> Path:
        return self.path / IDS / f"{self.manifest.commit if commit is None else commit:08d}"

    def dense_dir(self, commit: int | None = None) -> Path:
        return self.path / DENSE / f"{self.manifest.commit if commit is None else commit:08d}"

    def sparse_dir(self, commit: int | None = None, name: str = "bm25") -> Path:
        """The folder of sparse index ``name`` ("bm25" or "splade") as of ``commit``."""
        c = self.manifest.commit if commit is None else commit
        return self.path / SPARSE_DIRS[name] / f"{c:08d}"

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def writer(self, timeout: float = 0.0) -> Iterator[None]:
        """Hold the collection's write lock (an flock on ``.lock``; released if the process dies),
        waiting up to ``timeout`` seconds for another writer to finish."""
        busy = LockTimeoutError(
            f"{self.path} is being written by another process (waited {timeout:g} s for its lock)"
        )
        with exclusive_lock(self.path / ".lock", busy, timeout):
            yield

    def latest(self) -> Store:
        """The collection as of its newest commit (read from disk)."""
        return Store.open(self.path)

    def begin_write(self) -> None:
        """Roll the documents back to the committed Lance version: versions past it were written
        by a writer that died before its commit (no manifest ever named them). Call under the
        lock, on the latest manifest, before :meth:`append_docs` / :meth:`delete_docs`."""
        uri = self.path / DOCS
        if self.manifest.lance_version is None:
            shutil.rmtree(uri, ignore_errors=True)  # a first add that never committed
            return
        ds = lance.dataset(uri, version=self.manifest.lance_version)
        if ds.latest_version != self.manifest.lance_version:
            ds.restore()

    def append_docs(self, table: pa.Table) -> int:
        """Append rows; returns the new (uncommitted) Lance version."""
        mode = "append" if (self.path / DOCS).exists() else "create"
        return lance.write_dataset(table, self.path / DOCS, mode=mode).version

    def add_doc_columns(self, fields: list[pa.Field]) -> int:
        """Add all-null columns to the documents (a metadata-only Lance change); returns the new
        (uncommitted) Lance version. Call under the lock after :meth:`begin_write`."""
        ds = lance.dataset(self.path / DOCS)
        ds.add_columns(fields)
        return lance.dataset(self.path / DOCS).version

    def delete_docs(self, keys: list[int]) -> int:
        """Delete rows by ``_key``; returns the new (uncommitted) Lance version."""
        if not (self.path / DOCS).exists():
            raise RuntimeError("nothing to delete from an empty collection")
        ds = lance.dataset(self.path / DOCS)
        for start in range(0, len(keys), 4096):
            chunk = ",".join(str(int(k)) for k in keys[start : start + 4096])
            ds.delete(f"_key IN ({chunk})")
        return lance.dataset(self.path / DOCS).version

    def dense_segments(self) -> Path:
        """The folder of the dense index's segments, shared by every commit."""
        return self.path / DENSE / "segments"

    def write_dense(self, index: Any, commit: int) -> None:
        """Save the dense index for ``commit``: new segments and deletion files into
        ``dense/segments``, then its listing into its own folder (tmp + rename)."""
        final = self.dense_dir(commit)
        _save_into(final, lambda tmp: index.save(tmp, segments_dir=self.dense_segments()))

    def write_ids(self, ids: Any, commit: int) -> None:
        """Save the id ↔ key map for ``commit``: new segments and deletion files into
        ``ids/segments``, then its listing into its own folder (tmp + rename)."""
        final = self.ids_dir(commit)
        _save_into(final, lambda tmp: ids.save(tmp, segments_dir=final.parent / "segments"))

    def write_sparse(self, index: Any, commit: int, name: str = "bm25") -> None:
        """Save sparse index ``name`` for ``commit``: new segments into ``<folder>/segments``,
        then the per-document arrays into their own folder (tmp + rename)."""
        final = self.sparse_dir(commit, name)
        # segments are stored relative to the folder: "../segments"
        _save_into(final, lambda tmp: index.save(tmp, segments_dir=final.parent / "segments"))

    def sync(self, commit: int, since: float) -> None:
        """fsync what a write made for ``commit`` (its index folders, new segments, the Lance
        files written since ``since``, a ``time.time()`` value) and the folders naming them. Call
        before :meth:`commit`: the manifest then names only files that reached the disk."""
        margin = since - 2.0  # file times may be coarser than the clock
        synced = self._synced
        if len(synced) > 4096:  # entries older than the margin are never looked at again
            self._synced = synced = {k: t for k, t in synced.items() if t >= margin * 1e9}
        for folder in (DENSE, IDS, *SPARSE_DIRS.values()):
            if (self.path / folder).exists():
                fsync_tree(self.path / folder / f"{commit:08d}")
                fsync_tree(self.path / folder / "segments", newer_than=margin, synced=synced)
                fsync_dir(self.path / folder)
        fsync_tree(self.path / DOCS, newer_than=margin, synced=synced)
        fsync_dir(self.path)

    def compact_docs(self) -> int | None:
        """Rewrite the Lance documents' small fragments into large ones (deleted rows dropped)
        and bring the B-tree index on ``_key`` up to date (made the first time); returns the new
        (uncommitted) Lance version. Call under the lock after :meth:`begin_write`."""
        if self.manifest.lance_version is None:
            return None
        lance.dataset(self.path / DOCS).optimize.compact_files()
        return self.index_keys()

    def index_keys(self) -> int:
        """Bring the B-tree index on ``_key`` up to date, made the first time (reading and
        deleting documents by key then need not scan every row); returns the new (uncommitted)
        Lance version. Call under the lock."""
        ds = lance.dataset(self.path / DOCS)
        if any(i.get("fields") == ["_key"] for i in ds.list_indices()):
            ds.optimize.optimize_indices()
        else:
            ds.create_scalar_index("_key", "BTREE")
        return lance.dataset(self.path / DOCS).version

    def cleanup_docs(self) -> None:
        """Remove the Lance versions older than the oldest retained commit's, once they are
        :data:`READER_GRACE_SECONDS` old (a handle that opened an earlier commit moments ago may
        still read its documents), and files of crashed writes (safe: the lock is held)."""
        if self.manifest.lance_version is None:
            return
        named = [self.manifest.lance_version]
        for c in self.retained():
            file = self.path / VERSIONS / f"{c:08d}.json"
            if file.is_file():
                named.append(json.loads(file.read_text()).get("lance_version") or 0)
        ds = lance.dataset(self.path / DOCS)
        keep = sum(1 for v in ds.versions() if v["version"] >= min(named))
        ds.cleanup_old_versions(
            older_than=timedelta(seconds=READER_GRACE_SECONDS),
            retain_versions=max(keep, 1),
            delete_unverified=True,
        )

    def remove_leftovers(self) -> None:
        """Remove temporary files and folders of writes that were killed before renaming them."""
        patterns = (".tmp-*", "*/.tmp-*", "*/segments/.tmp-*", "*/segments/*/.tmp-*")
        for pattern in (*patterns, ".*.tmp", "versions/.*.tmp"):
            for leftover in self.path.glob(pattern):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)

    def commit(self, manifest: Manifest) -> None:
        """Make ``manifest`` the collection's state (atomic); its copy under ``versions/`` lets a
        reader open this commit later (see :meth:`prune`)."""
        (self.path / VERSIONS).mkdir(exist_ok=True)
        write_atomic(self.path / VERSIONS / f"{manifest.commit:08d}.json", manifest.to_json())
        write_atomic(self.path / MANIFEST, manifest.to_json())
        self.manifest = manifest

    def retention(self) -> tuple[int, float]:
        """The collection's retention policy: (``keep_commits``, ``retention_seconds``)."""
        policy = self.manifest.extra.get("retention") or {}
        keep = int(policy.get("keep_commits", KEEP_COMMITS))
        return max(keep, 1), float(policy.get("seconds", RETENTION_SECONDS))

    def retained(self, now: float | None = None) -> set[int]:
        """Commits whose files are kept: the newest ``keep_commits``, every commit younger than
        ``retention_seconds`` (:meth:`retention`), and the current one."""
        now = time.time() if now is None else now
        keep_commits, seconds = self.retention()
        versions = self.versions()
        keep = {v["commit"] for v in versions[-keep_commits:]}
        keep |= {v["commit"] for v in versions if now - v["time"] < seconds}
        return keep | {self.manifest.commit}

    def prune(
        self,
        segments_of: Callable[[Path], set[str]],
        dense_files_of: Callable[[Path], set[str]] | None = None,
        id_files_of: Callable[[Path], set[str]] | None = None,
    ) -> None:
        """Remove the files of commits no longer retained (:meth:`retained`): their index
        folders, the segments and deletion files no retained commit uses (``segments_of(folder)``
        names a saved sparse index's segments, ``dense_files_of(folder)`` a dense index's segments
        and ``<segment>/<deletion file>`` s), their ``versions/`` records. Readers of a retained
        commit, and handles opening the newest one while a writer commits, find every file."""
        keep = self.retained()
        names = {f"{c:08d}" for c in keep}
        for folder, files_of in (
            (DENSE, dense_files_of),
            (IDS, id_files_of),
            *((f, segments_of) for f in SPARSE_DIRS.values()),
        ):
            root = self.path / folder
            if not root.is_dir():
                continue
            used: set[str] = set()
            for sub in root.glob("*"):
                if sub.name == "segments":
                    continue
                if sub.name in names:
                    used |= files_of(sub) if files_of is not None else set()
                else:
                    shutil.rmtree(sub, ignore_errors=True)
            _remove_unused(root / "segments", used, deletions=folder in (DENSE, IDS))
        for record in (self.path / VERSIONS).glob("*.json"):
            if record.stem not in names:
                record.unlink(missing_ok=True)


def _remove_unused(segments: Path, used: set[str], *, deletions: bool) -> None:
    """Remove the segment folders of ``segments`` not in ``used`` and, with ``deletions``, the
    ``dead-*.npy`` files of the used ones that ``used`` does not name (``<segment>/<file>``)."""
    for seg in segments.glob("*"):
        if seg.name not in used:
            shutil.rmtree(seg, ignore_errors=True)
        elif deletions:
            for dead in seg.glob("dead-*.npy"):
                if f"{seg.name}/{dead.name}" not in used:
                    dead.unlink(missing_ok=True)


def _save_into(final: Path, save: Any) -> None:
    """Call ``save(folder)`` on a fresh temporary folder, then rename it to ``final``."""
    final.parent.mkdir(exist_ok=True)
    shutil.rmtree(final, ignore_errors=True)  # left by a writer that died before its commit
    tmp = make_temp_dir(final.parent, ".tmp-")
    save(tmp)
    os.replace(tmp, final)
