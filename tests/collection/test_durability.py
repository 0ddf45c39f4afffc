"""Every file a commit names reaches fsync before the manifest that names it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from granite_index import Bm25Spec, Collection, DenseSpec, SpladeSpec
from tests.hashing import DOCS, HashingEncoder, HashingSparseEncoder


@pytest.fixture
def synced(monkeypatch):
    """Record the path of every fsync'd file descriptor, in order."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd):
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def _files(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc to name descriptors")
def test_a_commit_fsyncs_every_file_it_names_before_the_manifest(tmp_path, synced):
    specs = [
        DenseSpec(encoder=HashingEncoder()),
        Bm25Spec(),
        SpladeSpec(encoder=HashingSparseEncoder()),
    ]
    col = Collection.create(tmp_path / "c", specs)
    synced.clear()
    col.add([f"a{i}" for i in range(6)], DOCS[:6])
    start = time.time()
    col.add([f"b{i}" for i in range(6)], DOCS[6:])
    root, commit = col.path, f"{col.manifest.commit:08d}"
    # synced before the second commit's manifest: in this commit, or in the one before it (a
    # file a handle synced once and did not change since is not synced again)
    manifest_at = len(synced) - 1 - synced[::-1].index(str(root / ".manifest.json.tmp"))
    before = set(synced[:manifest_at])
    need = _files(root / "dense" / commit)
    for leg in ("sparse", "splade"):
        need |= _files(root / leg / commit)
        names = [
            s["name"]
            for s in json.loads((root / leg / commit / "index.json").read_text())["segments"]
        ]
        for name in names:  # the segments this commit wrote (older ones: their own commit's)
            seg = _files(root / leg / "segments" / name)
            need |= {f for f in seg if os.stat(f).st_mtime >= start - 1}
    for leg in ("dense", "ids", "sparse", "splade"):  # every file new in a segments folder:
        # postings, vectors, ids, chunks of keys, the vocabulary's term segments
        fresh = _files(root / leg / "segments")
        need |= {f for f in fresh if os.stat(f).st_mtime >= start - 1}
    lance = {p for p in _files(root / "docs.lance") if os.stat(p).st_mtime >= start - 1}
    assert lance, "the add wrote Lance files"
    need |= lance
    assert need - before == set(), sorted(need - before)[:5]
    # and the folders that name them: commit folders, index roots, the collection itself
    for folder in (root / "dense" / commit, root / "sparse" / commit, root / "dense", root):
        assert str(folder) in before
