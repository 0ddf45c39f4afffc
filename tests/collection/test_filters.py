"""Filters (``where=``), paging (``offset=``) and typed metadata in ``Collection.search``."""

from __future__ import annotations

import numpy as np
import pytest

from granite_index import Collection
from granite_index.collection.spec import Bm25Spec, DenseSpec
from tests.hashing import HashingEncoder

WORDS = ["cat", "dog", "fish", "bird", "tree", "river", "stone", "cloud"]


def _docs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=6)) for _ in range(n)]
    meta = [
        {"year": 2000 + i % 25, "lang": "en" if i % 3 else "de", "tags": {"a": i}} for i in range(n)
    ]
    return [f"d{i}" for i in range(n)], texts, meta


@pytest.fixture
def col(tmp_path):
    c = Collection.create(tmp_path / "c", [DenseSpec(encoder=HashingEncoder(32)), Bm25Spec()])
    ids, texts, meta = _docs(300)
    c.add(ids[:200], texts[:200], meta[:200])
    c.add(ids[200:], texts[200:], meta[200:])
    return c


def _year(doc_id: str) -> int:
    return int(doc_id[1:]) % 25 + 2000


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_filter_equals_brute_force_over_the_matching_documents(col, mode):
    queries = ["cat river", "stone cloud bird", "dog"]
    where = "year >= 2020 AND lang = 'en'"
    got = col.search(queries, k=10, mode=mode, where=where)
    full = col.search(queries, k=300, mode=mode, depth=300 if mode == "hybrid" else None)
    for row, full_row, scores in zip(got.doc_ids(), full.doc_ids(), got.scores):
        match = [d for d in full_row if _year(d) >= 2020 and int(d[1:]) % 3]
        assert all(_year(d) >= 2020 and int(d[1:]) % 3 for d in row)
        if mode == "hybrid":  # fusion normalises over the lists it gets: check membership only
            assert len(row) == min(10, len(match))
        else:
            assert row == match[:10]
            assert np.all(np.diff(scores[: len(row)]) <= 0)


def test_selective_filter_still_returns_k_and_approximate_search_falls_back(tmp_path):
    enc = HashingEncoder(32)
    c = Collection.create(
        tmp_path / "c",
        [DenseSpec(encoder=enc, index="ivf", index_params={"ivf_min": 100, "nprobe": 1})],
    )
    ids, texts, meta = _docs(400)
    c.add(ids, texts, meta)
    assert c.dense_index.segments[0].has_ivf
    for where in ("year = 2003", "year < 2013", "lang = 'en'"):
        exact = c.search(["cat fish"], k=10, where=where, exact=True)
        approx = c.search(["cat fish"], k=10, where=where)
        n_match = c.count(where)
        assert (approx.ids >= 0).sum() == min(10, n_match) == (exact.ids >= 0).sum()
    # one document matches: it is the only hit, in every mode the collection has
    hit = c.search(["bird"], k=5, where="id = 'd7'")
    assert hit.doc_ids() == [["d7"]]


def test_offset_pages_through_the_ranking(col):
    for mode in ("dense", "bm25", "hybrid"):
        whole = col.search(["cat tree"], k=9, mode=mode)
        pages = [col.search(["cat tree"], k=3, mode=mode, offset=o) for o in (0, 3, 6)]
        assert sum((p.doc_ids()[0] for p in pages), []) == whole.doc_ids()[0], mode
    with pytest.raises(ValueError, match="offset"):
        col.search("cat", offset=-1)
    with pytest.raises(TypeError, match="offset"):
        col.search("cat", offset=1.5)


def test_metadata_is_typed_when_uniform_and_checked_after(col):
    schema = col.schema
    assert schema.field("year").type == "int64" and schema.field("lang").type == "string"
    assert "tags" not in schema.names  # nested: JSON only
    assert (
        col.get(["d5"]).column("metadata")[0].as_py()
        == '{"year": 2005, "lang": "en", "tags": {"a": 5}}'
    )
    col.add(["x1"], ["cat"], [{"lang": "fr"}])  # a missing field is null
    assert col.search("cat", k=5, mode="bm25", where="lang = 'fr'").doc_ids() == [["x1"]]
    assert col.search("cat", k=5, mode="bm25", where="year IS NULL").doc_ids() == [["x1"]]
    n = len(col)
    with pytest.raises(TypeError, match="year"):
        col.add(["x2"], ["cat"], [{"year": "last year"}])
    assert len(col) == n and "x2" not in col  # nothing written


def test_fields_first_seen_in_a_later_add_become_columns(col, tmp_path):
    """A uniform scalar field new in a later add becomes a typed column (null for earlier
    documents), filters read it at once and after a reopen, and its type is then checked."""
    col.add(["n1", "n2"], ["cat dog", "cat fish"], [{"score": 0.5, "src": "web"}, {"score": 2.0}])
    schema = col.schema
    assert schema.field("score").type == "double" and schema.field("src").type == "string"
    assert col.search("cat", k=10, mode="bm25", where="score > 1").doc_ids() == [["n2"]]
    assert col.count("src = 'web'") == 1 and col.count("score IS NULL") == 300
    hits = col.search("cat", k=400, mode="bm25", where="score IS NULL").doc_ids()[0]
    assert "n1" not in hits and len(hits) == col.count("score IS NULL AND text LIKE '%cat%'")
    hybrid = col.search("cat", k=400, mode="hybrid", where="score IS NULL").doc_ids()[0]
    assert len(hybrid) == 300 and not {"n1", "n2"} & set(hybrid)  # the dense leg finds all
    back = Collection.open(tmp_path / "c", encoder=HashingEncoder(32))
    assert back.search("cat", k=10, mode="dense", where="score >= 0.5").doc_ids()[0] in (
        ["n1", "n2"],
        ["n2", "n1"],
    )
    n = len(col)
    with pytest.raises(TypeError, match="score"):
        col.add(["n3"], ["cat"], [{"score": "high"}])
    assert len(col) == n and "n3" not in col  # nothing written
    col.add(
        ["n4"],
        ["cat"],
        [
            {"tags": [1, 2], "mixed": 1},
        ][:1],
    )  # a list: JSON only
    assert "tags" not in col.schema.names and col.schema.field("mixed").type == "int64"


def test_bad_filters_are_clear(col):
    with pytest.raises(ValueError, match="Columns you can filter on"):
        col.search("cat", where="colour = 'red'")
    with pytest.raises(TypeError, match="where"):
        col.search("cat", where="")


def test_a_filter_sees_new_commits(col):
    before = col.search("fish", k=5, mode="bm25", where="year = 1999")
    assert before.doc_ids() == [[]]
    col.add(["new"], ["fish fish"], [{"year": 1999, "lang": "en", "tags": {"a": 0}}])
    assert col.search("fish", k=5, mode="bm25", where="year = 1999").doc_ids() == [["new"]]


def test_filters_beyond_the_cache_bound_stay_exact(col, monkeypatch):
    from granite_index.collection import searching

    monkeypatch.setattr(searching, "FILTER_CACHE_KEYS", 50)
    checks = {
        "year >= 2010": lambda d: _year(d) >= 2010,  # 180 matches: never kept
        "lang = 'de'": lambda d: int(d[1:]) % 3 == 0,  # 100: never kept
        "year < 2003": lambda d: _year(d) < 2003,  # 36: kept, then pushed out
    }
    full = col.search("cat river", k=300, mode="bm25").doc_ids()[0]
    for where in [*checks, "year >= 2010", "year < 2003"]:
        got = col.search("cat river", k=300, mode="bm25", where=where).doc_ids()[0]
        assert got == [d for d in full if checks[where](d)]
        assert col.count(where) == sum(checks[where](f"d{i}") for i in range(300))
