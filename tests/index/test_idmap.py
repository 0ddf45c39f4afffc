"""The on-disk id ↔ key map: lookups both ways, deletes, segments written once, collisions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from granite_index import Collection
from granite_index.index import idmap as idmap_module
from granite_index.index.idmap import IdMap
from tests.hashing import HashingEncoder


@pytest.mark.parametrize("id_type", ["int", "str"])
def test_lookups_both_ways_after_adds_and_deletes(id_type, tmp_path):
    make = (lambda i: i * 7 - 3) if id_type == "int" else (lambda i: f"doc-{i}")
    m = IdMap(None, merge_max=64)
    for start in range(0, 300, 30):
        m.add([make(i) for i in range(start, start + 30)], np.arange(start, start + 30), id_type)
    m.delete_keys(np.arange(0, 300, 4))
    live = [i for i in range(300) if i % 4]
    assert len(m) == len(live)
    np.testing.assert_array_equal(m.keys_of([make(i) for i in live]), live)
    assert (m.keys_of([make(i) for i in range(0, 300, 4)]) == -1).all()
    assert m.ids_of(np.array([5, 4, 299])) == [make(5), None, make(299)]
    other = "x" if id_type == "int" else 5
    assert m.keys_of([other, make(1)]).tolist() == [-1, 1]  # the other type is never found
    m.save(tmp_path / "c1", segments_dir=tmp_path / "seg")
    back = IdMap.load(tmp_path / "c1")
    np.testing.assert_array_equal(back.keys_of([make(i) for i in live]), live)
    assert isinstance(back.segments[0].keys, np.memmap)  # opening reads no id
    back.optimize()
    assert len(back.segments) == 1 and back.ids_of(np.array(live[:3])) == [
        make(i) for i in live[:3]
    ]


def test_saves_write_only_new_segments_and_deletion_files(tmp_path):
    m = IdMap("str", merge_max=16)
    m.add([f"a{i}" for i in range(20)], np.arange(20), "str")
    seg = tmp_path / "seg"
    m.save(tmp_path / "c1", segments_dir=seg)
    before = {p: p.stat().st_mtime_ns for p in seg.rglob("*") if p.is_file()}
    m.add(["b"], np.array([20]), "str")
    m.delete_keys(np.array([3]))
    m.save(tmp_path / "c2", segments_dir=seg)
    after = {p: p.stat().st_mtime_ns for p in seg.rglob("*") if p.is_file()}
    assert all(after[p] == t for p, t in before.items())
    new = {str(p.relative_to(seg)) for p in set(after) - set(before)}
    assert len([n for n in new if "/dead-" in n]) == 1
    assert IdMap.segment_files(tmp_path / "c2") >= {n for n in new if "/dead-" in n}


def test_hash_collisions_are_resolved_by_comparing_ids(monkeypatch):
    monkeypatch.setattr(idmap_module, "hash_ids", lambda ids, t: np.zeros(len(ids), np.uint64))
    m = IdMap("str")
    m.add(["x", "y", "z"], np.array([0, 1, 2]), "str")
    m.delete_keys(np.array([1]))
    assert m.keys_of(["z", "y", "x", "w"]).tolist() == [2, -1, 0, -1]


def test_a_collection_without_a_stored_map_builds_it_and_writes_it_next(tmp_path):
    """Collections made before the map was kept on disk open (map built from the documents)."""
    col = Collection.create(tmp_path / "c", encoder=HashingEncoder(), sparse="bm25")
    col.add(["a", "b", "c"], ["apples", "bananas", "cherries"])
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    manifest["extra"].pop("ids")
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))
    import shutil

    shutil.rmtree(tmp_path / "c" / "ids")
    old = Collection.open(tmp_path / "c", encoder=HashingEncoder())
    assert len(old) == 3 and "b" in old and old.search("bananas", k=1).doc_ids() == [["b"]]
    old.delete(["a"])
    again = Collection.open(tmp_path / "c", encoder=HashingEncoder())
    assert (tmp_path / "c" / "ids").is_dir() and len(again) == 2 and "a" not in again
