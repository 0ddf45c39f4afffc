"""Several handles and processes writing one collection: nothing committed is lost, clashes are
errors that write nothing, a second writer waits for the lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from granite_index import Collection, ConflictError, LockTimeoutError
from granite_index.collection import DenseSpec
from granite_index.fileio import exclusive_lock
from tests.hashing import DOCS, HashingEncoder

ROOT = Path(__file__).resolve().parents[2]


def _lexical(path) -> Collection:
    col = Collection.create(path, dense=False, sparse="bm25")
    col.add(["a"], ["first document"])
    return col


def test_two_stale_handles_keep_each_others_writes(tmp_path):
    _lexical(tmp_path / "c")
    h1, h2 = Collection.open(tmp_path / "c"), Collection.open(tmp_path / "c")
    h1.add(["b"], ["second text"])
    h2.add(["c"], ["third words"])  # h2 had not seen "b": it catches up, then adds
    for col in (h2, Collection.open(tmp_path / "c")):
        assert sorted(col.get(["a", "b", "c"]).column("id").to_pylist()) == ["a", "b", "c"]
        assert len(col) == len(col.bm25_index) == 3
        assert col.search("second", k=1, mode="bm25").doc_ids() == [["b"]]
    assert Collection.open(tmp_path / "c").manifest.commit == 3


def test_a_stale_handle_does_not_bring_back_a_deleted_document(tmp_path):
    _lexical(tmp_path / "c")
    h1, h2 = Collection.open(tmp_path / "c"), Collection.open(tmp_path / "c")
    h1.delete(["a"])
    h2.add(["b"], ["another document"])
    col = Collection.open(tmp_path / "c")
    assert "a" not in col and "b" in col and len(col.bm25_index) == 1
    assert col.search("first document", k=5, mode="bm25").doc_ids() == [["b"]]


def test_clashes_raise_conflict_and_write_nothing(tmp_path):
    _lexical(tmp_path / "c")
    h1, h2 = Collection.open(tmp_path / "c"), Collection.open(tmp_path / "c")
    h1.add(["b"], ["from the first handle"])
    commit = Collection.open(tmp_path / "c").manifest.commit
    with pytest.raises(ConflictError, match=r"added these ids .*'b'"):
        h2.add(["b", "z"], ["from the second handle", "also new"])
    h1.delete(["a"])
    commit = Collection.open(tmp_path / "c").manifest.commit
    with pytest.raises(ConflictError, match=r"deleted these ids .*'a'"):
        h2.delete(["a"])
    col = Collection.open(tmp_path / "c")
    assert col.manifest.commit == commit and "z" not in col
    assert col.get(["b"]).column("text").to_pylist() == ["from the first handle"]
    h2.add(["z"], ["also new"])  # the handle caught up: it goes on writing
    assert sorted(Collection.open(tmp_path / "c").ids_of(np.array([[1, 2]]))[0]) == ["b", "z"]


def test_fit_fusion_on_a_stale_handle_keeps_the_collection_whole(tmp_path):
    enc = HashingEncoder()
    col = Collection.create(tmp_path / "c", encoder=enc, sparse="bm25")
    ids = [f"d{i}" for i in range(len(DOCS))]
    col.add(ids[:6], DOCS[:6])
    stale = Collection.open(tmp_path / "c", encoder=enc)
    col.add(ids[6:], DOCS[6:])
    col.delete(["d0"])
    qrels = {"q1": {"d1": 1}, "q2": {"d7": 1}}
    fit = stale.fit_fusion(["documents ranked", "inverted index terms"], qrels, ["q1", "q2"])
    back = Collection.open(tmp_path / "c", encoder=enc)  # opens: nothing points at removed files
    assert back.manifest.fusion["fusion"] == fit.fusion.to_dict()
    assert len(back) == len(DOCS) - 1 and "d0" not in back and "d11" in back
    assert (back.search(["inverted index"], k=3, mode="hybrid").ids >= 0).all()


def test_upsert_replaces_and_inserts_in_one_commit(tmp_path):
    enc = HashingEncoder()
    col = Collection.create(tmp_path / "c", [DenseSpec(encoder=enc)], lock_timeout=5)
    col.add(["x", "y"], ["red apples", "green pears"], metadata=[{"v": 1}, {"v": 1}])
    commit = col.manifest.commit
    col.upsert(["y", "z"], ["blue berries", "yellow lemons"], metadata=[{"v": 2}, {"v": 2}])
    assert col.manifest.commit == commit + 1 and len(col) == len(col.dense_index) == 3
    back = Collection.open(tmp_path / "c", encoder=enc)
    table = back.get(["x", "y", "z"])
    assert table.column("text").to_pylist() == ["red apples", "blue berries", "yellow lemons"]
    assert table.column("metadata").to_pylist() == ['{"v": 1}', '{"v": 2}', '{"v": 2}']
    np.testing.assert_allclose(back.vectors(["y"]), enc.encode_documents(["blue berries"]))
    assert back.search("blue berries", k=1).doc_ids() == [["y"]]


def test_a_second_writer_waits_for_the_lock(tmp_path):
    _lexical(tmp_path / "c")
    held, release = threading.Event(), threading.Event()

    def hold():
        with exclusive_lock(tmp_path / "c" / ".lock", RuntimeError("busy")):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    impatient = Collection.open(tmp_path / "c", lock_timeout=0.1)
    with pytest.raises(LockTimeoutError, match="waited 0.1 s"):
        impatient.add(["b"], ["never written"])
    patient = Collection.open(tmp_path / "c", lock_timeout=10)
    threading.Timer(0.3, release.set).start()
    t0 = time.monotonic()
    patient.add(["b"], ["written once the lock is free"])
    assert time.monotonic() - t0 >= 0.2
    t.join()
    assert "b" in Collection.open(tmp_path / "c")


WRITER = textwrap.dedent(
    """
    import sys, time
    from granite_index import Collection
    path, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    col = Collection.open(path, lock_timeout=30)
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        ids = [f"{name}-{i}-{j}" for j in range(3)]
        col.add(ids, [f"text {name} {i} {j}" for j in range(3)])
        print(" ".join(ids), flush=True)  # acknowledged: add returned
        if i % 5 == 4:
            col.delete([f"{name}-{i - 4}-0"])
            print("DEL", f"{name}-{i - 4}-0", flush=True)
        i += 1
    """
)


def test_two_processes_writing_lose_nothing(tmp_path):
    _lexical(tmp_path / "c")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "c"), name, "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name in ("p", "q")
    ]
    want = {"a"}
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
        for line in out.splitlines():
            if line.startswith("DEL "):
                want.discard(line.split()[1])
            else:
                want.update(line.split())
    col = Collection.open(tmp_path / "c")
    have = set(col.ids_of(np.arange(col.manifest.next_key)[None, :])[0]) - {None}  # deleted keys
    assert have == want and len(want) > 20
    assert len(col) == len(col.bm25_index) == col.manifest.n_docs == len(want)
    assert col.search("text p", k=1, mode="bm25").ids[0, 0] >= 0
