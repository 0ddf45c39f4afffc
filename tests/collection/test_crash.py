"""A writer process killed (SIGKILL) mid-commit leaves the collection at its last commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from granite_index import Collection
from tests.conftest import unit_rows

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from granite_index import Collection
    from granite_index.collection import store

    path, mode = sys.argv[1], sys.argv[2]
    col = Collection.open(path, device="cpu")
    rng = np.random.default_rng(1)

    def vecs(n):
        x = rng.normal(size=(n, 32)).astype("float32")
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    if mode in ("stall", "stall-field"):  # stop for good just before the manifest is replaced
        real = store.Store.commit
        def stalled(self, manifest):
            print("COMMITTING", flush=True)
            time.sleep(600)
            real(self, manifest)
        store.Store.commit = stalled
        meta = [{"colour": "red"}] * 50 if mode == "stall-field" else None
        col.add([f"new{i}" for i in range(50)], ["text"] * 50, meta, vectors=vecs(50))
    elif mode == "spill":  # optimize: stop for good once the merged dense segment is on disk
        from granite_index.index.dense import DenseIndex
        real = DenseIndex.optimize
        def spilled(self, **kw):
            real(self, **kw)
            print("SPILLED", flush=True)
            time.sleep(600)
        DenseIndex.optimize = spilled
        col.delete([f"d{i}" for i in range(5)])
        col.optimize()
    else:  # add batch after batch until killed
        print("STARTED", flush=True)
        for b in range(10_000):
            col.add([f"b{b}-{i}" for i in range(20)], [f"batch {b}"] * 20, vectors=vecs(20))
    """
)


def _kill_at(tmp_path: Path, col_path: Path, mode: str, line: str) -> None:
    """Run the child in ``mode`` until it prints ``line``, then SIGKILL it."""
    child = _spawn(tmp_path, col_path, mode)
    try:
        assert child.stdout.readline().strip() == line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL


def _spawn(tmp_path: Path, col_path: Path, mode: str) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(script), str(col_path), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture()
def base(tmp_path, tiny_encoder):
    path = tmp_path / "col"
    col = Collection.create(path, encoder=tiny_encoder, device="cpu", sparse="bm25")
    col.add(
        [f"d{i}" for i in range(30)], [f"doc {i}" for i in range(30)], vectors=unit_rows(30, 32)
    )
    return path


def _docs(col: Collection):
    """The collection's Lance documents at its committed version (read as any Lance user would)."""
    import lance

    return lance.dataset(col.path / "docs.lance", version=col.manifest.lance_version)


def _check_consistent(col: Collection) -> None:
    ds = _docs(col)
    assert ds.count_rows() == len(col) == len(col.dense_index) == col.manifest.n_docs
    assert len(col.bm25_index) == len(col)
    keys = np.sort(ds.to_table(columns=["_key"]).column("_key").to_numpy())
    np.testing.assert_array_equal(keys, np.sort(col.dense_index.ids))


def test_kill_before_manifest_swap_keeps_last_commit(tmp_path, base):
    q = unit_rows(5, 32, seed=7)
    before = Collection.open(base, device="cpu").search(q, k=10)
    before_bm25 = Collection.open(base, device="cpu").search(["doc 3", "text"], k=10, mode="bm25")
    _kill_at(tmp_path, base, "stall", "COMMITTING")  # Lance data + index already written
    col = Collection.open(base, device="cpu")
    assert len(col) == 30 and "new0" not in col
    after = col.search(q, k=10)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.scores, before.scores)
    after_bm25 = col.search(["doc 3", "text"], k=10, mode="bm25")
    np.testing.assert_array_equal(after_bm25.ids, before_bm25.ids)
    np.testing.assert_array_equal(after_bm25.scores, before_bm25.scores)
    _check_consistent(col)
    col.add(
        ["later"], ["a later document"], vectors=unit_rows(1, 32, seed=3)
    )  # Lance is rolled back first
    assert len(col) == 31 and _docs(col).count_rows() == 31
    _check_consistent(Collection.open(base, device="cpu"))


@pytest.mark.parametrize("delay", [1.5, 2.3, 3.1])
def test_kill_at_any_moment_loses_no_committed_batch(tmp_path, base, delay):
    child = _spawn(tmp_path, base, "loop")
    try:
        assert child.stdout.readline().strip() == "STARTED"
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    col = Collection.open(base, device="cpu")
    _check_consistent(col)
    n_batches = (len(col) - 30) // 20
    assert len(col) == 30 + 20 * n_batches and n_batches >= 1
    assert all(f"b{b}-{i}" in col for b in range(n_batches) for i in range(20))
    last = n_batches - 1  # the last committed batch is findable by BM25
    hits = col.search([f"batch {last}"], k=len(col), mode="bm25").doc_ids()[0]
    assert {f"b{last}-{i}" for i in range(20)} <= set(hits)
    col.add(["after-crash"], ["x"], vectors=unit_rows(1, 32, seed=5))
    _check_consistent(Collection.open(base, device="cpu"))


def test_kill_after_optimize_spilled_a_dense_segment_keeps_last_commit(tmp_path, base):
    """optimize() writes merged dense segments before its commit (memory holds one at a time):
    killed there, the collection is at its last commit, and the next write removes them."""
    q = unit_rows(5, 32, seed=7)
    segments = base / "dense" / "segments"
    listed = {p.name for p in segments.iterdir()}
    _kill_at(tmp_path, base, "spill", "SPILLED")
    col = Collection.open(base, device="cpu")
    assert len(col) == 25 and "d0" not in col and "d5" in col  # the delete committed
    extra = {p.name for p in segments.iterdir()} - listed
    assert extra, "the merged segment is on disk, named by no commit"
    before = col.search(q, k=10)
    col.add(["later"], ["a later document"], vectors=unit_rows(1, 32, seed=3))
    assert not extra & {p.name for p in segments.iterdir()}  # removed by that commit's clean-up
    _check_consistent(col)
    reopened = Collection.open(base, device="cpu")
    got = reopened.search(q, k=10)
    assert set(before.ids[0][:5]) <= set(got.ids[0]) | {-1}
    _check_consistent(reopened)


def test_kill_after_a_new_metadata_column_keeps_last_commit(tmp_path, base):
    """An add whose metadata brings a new field adds a Lance column before its commit: killed
    there, the collection keeps its schema and documents, and a later add makes the column."""
    _kill_at(tmp_path, base, "stall-field", "COMMITTING")
    col = Collection.open(base, device="cpu")
    assert len(col) == 30 and "colour" not in col.schema.names
    _check_consistent(col)
    col.add(["blue"], ["a blue one"], [{"colour": "blue"}], vectors=unit_rows(1, 32, seed=4))
    assert col.schema.field("colour").type == "string"
    assert col.search(["blue"], k=5, mode="bm25", where="colour = 'blue'").doc_ids() == [["blue"]]
    _check_consistent(Collection.open(base, device="cpu"))
