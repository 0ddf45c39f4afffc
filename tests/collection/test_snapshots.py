"""Readers read one commit (a snapshot) until they refresh; recent commits stay on disk, so a
reader never meets a missing file; older ones are removed; time travel within the window."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from granite_index import Collection
from granite_index.collection import store
from granite_index.index import DenseIndex
from tests.hashing import HashingEncoder

ROOT = Path(__file__).resolve().parents[2]


def _grow(path, n_commits, start=0):
    col = Collection.open(path, encoder=HashingEncoder())
    for i in range(start, start + n_commits):
        col.add([f"d{i}"], [f"document {i} about topic {i % 3}"])
    return col


def test_by_default_only_the_newest_commit_is_kept(tmp_path):
    Collection.create(tmp_path / "c", encoder=HashingEncoder(), sparse="bm25")
    col = _grow(tmp_path / "c", 3)
    assert [v["commit"] for v in col.versions()] == [3]
    assert sorted(p.name for p in (tmp_path / "c" / "dense").iterdir()) == ["00000003", "segments"]
    # the segments are exactly those commit 3 names: none of an older commit is left behind
    seg_dirs = {p.name for p in (tmp_path / "c" / "dense" / "segments").iterdir()}
    assert seg_dirs == DenseIndex.segment_files(tmp_path / "c" / "dense" / "00000003")
    assert len(seg_dirs) == 2  # 1 + 1 merged, then 1
    assert store.KEEP_COMMITS == 1 and store.RETENTION_SECONDS == 0.0


def test_a_handle_reads_its_snapshot_until_refresh(tmp_path):
    col = Collection.create(tmp_path / "c", encoder=HashingEncoder(), sparse="bm25")
    col.add(["a"], ["apples and pears"])
    reader = Collection.open(tmp_path / "c", encoder=HashingEncoder())
    _grow(tmp_path / "c", 5)
    assert len(reader) == 1 and reader.search("document", k=3, mode="bm25").doc_ids() == [[]]
    assert reader.search("apples", k=1).doc_ids() == [["a"]]  # its files are still there
    assert reader.refresh() is True and len(reader) == 6 and reader.refresh() is False
    assert reader.search("document", k=3, mode="bm25").ids.shape == (1, 3)


def test_time_travel_within_the_window_and_pruning_past_it(tmp_path):
    first = Collection.create(tmp_path / "c", encoder=HashingEncoder(), sparse="bm25")
    first.set_retention(keep_commits=3)
    col = _grow(tmp_path / "c", 6)
    commits = [v["commit"] for v in col.versions()]
    assert commits == [4, 5, 6] and [v["n_docs"] for v in col.versions()] == [4, 5, 6]
    old = Collection.open(tmp_path / "c", version=4, encoder=HashingEncoder())
    assert len(old) == 4 and "d4" not in old and old.manifest.commit == 4
    assert old.search("document", k=10, mode="bm25").ids[0].tolist().count(-1) == 6
    with pytest.raises(ValueError, match=r"keeps no commit 2: retained commits are \[4, 5, 6\]"):
        Collection.open(tmp_path / "c", version=2)
    assert sorted(p.name for p in (tmp_path / "c" / "dense").iterdir()) == [
        *(f"{c:08d}" for c in (4, 5, 6)),
        "segments",
    ]
    # a write from an old snapshot catches up with the newest commit first
    old.add(["late"], ["a late document"])
    assert len(Collection.open(tmp_path / "c")) == 7


def test_the_retention_window_keeps_young_commits(tmp_path):
    Collection.create(tmp_path / "c", dense=False, sparse="bm25").set_retention(seconds=3600)
    col = Collection.open(tmp_path / "c")
    for i in range(4):
        col.add([f"d{i}"], [f"text {i}"])
    assert [v["commit"] for v in col.versions()] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="keep_commits"):
        col.set_retention(keep_commits=0)
    assert (
        Collection.open(tmp_path / "c", version=2).search("text", k=5).doc_ids() == [["d0", "d1"]]
        or len(Collection.open(tmp_path / "c", version=2)) == 2
    )


READER = textwrap.dedent(
    """
    import sys, time
    from granite_index import Collection
    from tests.hashing import HashingEncoder
    path, seconds = sys.argv[1], float(sys.argv[2])
    end, opens, failures = time.monotonic() + seconds, 0, []
    while time.monotonic() < end:
        try:
            col = Collection.open(path, encoder=HashingEncoder())
            n = len(col)
            for mode in ("bm25", "dense", "hybrid"):
                res = col.search(["document topic"], k=5, mode=mode)
                assert (res.ids >= 0).sum() == min(5, n), (mode, n)
            assert col.manifest.n_docs == n == len(col.bm25_index) == len(col.dense_index)
            opens += 1
        except Exception as exc:  # every failure is counted, with its reason
            failures.append(f"{type(exc).__name__}: {exc}")
    print(opens, len(failures))
    for f in failures[:5]:
        print(f)
    """
)


def test_readers_opening_while_a_writer_commits_never_fail(tmp_path):
    col = Collection.create(tmp_path / "c", encoder=HashingEncoder(), sparse="bm25")
    col.add(["a"], ["a first document"])
    script = tmp_path / "reader.py"
    script.write_text(READER)
    reader = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "c"), "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    i = 0
    while reader.poll() is None:  # commit as fast as possible while the reader opens
        col.add([f"w{i}", f"x{i}"], [f"document {i} topic", f"another document {i}"])
        if i % 4 == 3:
            col.delete([f"x{i - 3}"])
        i += 1
    out, err = reader.communicate()
    assert reader.returncode == 0, err[-2000:]
    opens, failures = (int(x) for x in out.split()[:2])
    assert failures == 0, out
    assert opens > 5 and i > 20
    back = Collection.open(tmp_path / "c", encoder=HashingEncoder())
    assert len(back) == back.manifest.n_docs == 1 + 2 * i - i // 4
    np.testing.assert_array_equal(
        back.search("document", k=3, mode="dense").ids,
        Collection.open(tmp_path / "c", encoder=HashingEncoder())
        .search("document", k=3, mode="dense")
        .ids,
    )
