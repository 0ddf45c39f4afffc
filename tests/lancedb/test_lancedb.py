"""The LanceDB plugin against a real local LanceDB: registry, sparse columns, sparse and hybrid
search (checked against brute force), version tracking, filters, the reranker, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pytest
from lancedb.embeddings import get_registry
from lancedb.pydantic import LanceModel, Vector

import granite_index.lancedb as gl
from granite_index.fusion import DBSF, RRF, Candidates, ConvexFusion
from granite_index.lancedb import sparse as sparse_mod
from tests.conftest import BEIR

N_DOCS = 48
QUERIES = [
    "cancer metastasis in patients",
    "protein expression in cells",
    "brain development imaging",
    "insulin resistance and diabetes",
]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _titles(n: int) -> list[str]:
    out = []
    with open(BEIR / "scifact" / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            title = json.loads(line)["title"].strip()
            if title:
                out.append(title)
            if len(out) == n:
                return out
    raise AssertionError("SciFact has too few titles")


@pytest.fixture(scope="module")
def dense_func():
    return get_registry().get("granite").create(precision="fp32")


@pytest.fixture(scope="module")
def sparse_func():
    return get_registry().get("granite-sparse").create()


@pytest.fixture(scope="module")
def base(tmp_path_factory, dense_func, sparse_func):
    """A table built through a LanceModel (LanceDB embeds), with a sparse field; encoded once."""
    func = dense_func

    class Doc(LanceModel):
        text: str = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()
        id: int
        group: int

    db = lancedb.connect(tmp_path_factory.mktemp("lancedb"))
    tbl = db.create_table("docs", schema=Doc)
    texts = _titles(N_DOCS)
    tbl.add([{"text": t, "id": i, "group": i % 4} for i, t in enumerate(texts)])
    gl.add_sparse_column(tbl, "text", encoder=sparse_func)
    return db, tbl


_copies = iter(range(10**6))


def _copy(base) -> object:
    """A fresh table with the same rows, vectors, sparse columns and metadata (no encoding)."""
    db, tbl = base
    return db.create_table(f"copy{next(_copies)}", data=tbl.to_arrow(), schema=tbl.schema)


def _brute_sparse(tbl, sparse_func, query: str, k: int, where: str | None = None):
    """Top-k (row ids, scores) by the dot product with every stored sparse row (or the encoded
    text where the columns are null)."""
    t = tbl.search().where(where).with_row_id(True).limit(None).to_arrow() if where else None
    t = t if t is not None else tbl.search().with_row_id(True).limit(None).to_arrow()
    q = sparse_func.encode_queries([query]).tocsr().toarray()[0]
    ids = t.column("_rowid").to_numpy().astype(np.int64)
    scores = np.zeros(len(ids), np.float64)
    for i, (ind, val, text) in enumerate(
        zip(
            t.column("sparse_indices").to_pylist(),
            t.column("sparse_values").to_pylist(),
            t.column("text").to_pylist(),
        )
    ):
        if ind is None:
            r = sparse_func.encode_documents([text])
            ind, val = r.indices, r.values
        scores[i] = float(np.dot(q[np.asarray(ind, np.int64)], np.asarray(val, np.float64)))
    keep = scores > 0
    ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order]


def _check_sparse(tbl, sparse_func, query, k=10, where=None):
    got = gl.sparse_search(tbl, query, k, where=where, with_row_id=True)
    ids, scores = _brute_sparse(tbl, sparse_func, query, k, where)
    assert len(ids) > 0
    np.testing.assert_array_equal(got.column("_rowid").to_numpy().astype(np.int64), ids)
    np.testing.assert_allclose(got.column("_score").to_numpy(), scores, rtol=1e-5)
    return got


# ---------------------------------------------------------------- registry and LanceModel


def test_registry_has_both_functions_with_full_config(dense_func, sparse_func):
    assert get_registry().get("granite") is gl.GraniteEmbeddings
    assert get_registry().get("granite-sparse") is gl.GraniteSparseEmbeddings
    assert dense_func.ndims() == 384
    dump = dense_func.safe_model_dump()
    assert dump["name"] == "bundled:all-MiniLM-L6-v2" and "batch_size" in dump
    again = gl.GraniteEmbeddings.create(**dump)
    assert again.encoder is dense_func.encoder  # one loaded model per configuration
    assert sparse_func.ndims() == sparse_func.encoder.vocab_size


def test_lancemodel_embeds_on_add_and_searches_by_text(base, dense_func):
    _, tbl = base
    assert json.loads(tbl.schema.metadata[b"embedding_functions"])[0]["name"] == "granite"
    t = tbl.to_arrow()
    stored = np.stack(t.column("vector").to_numpy(zero_copy_only=False))
    texts = t.column("text").to_pylist()
    np.testing.assert_allclose(
        stored[:3], dense_func.encoder.encode_documents(texts[:3]), atol=1e-4
    )
    q = QUERIES[2]
    hits = tbl.search(q).limit(3).to_arrow().column("text").to_pylist()
    expect = np.argsort(-(stored @ dense_func.encoder.encode_queries([q])[0]))[:3]
    assert hits == [texts[i] for i in expect]


def test_reopen_in_new_process_searches(base, sparse_func):
    db, tbl = base
    q = QUERIES[0]
    dense = tbl.search(q).limit(5).with_row_id(True).to_arrow().column("_rowid").to_pylist()
    sparse = gl.sparse_search(tbl, q, 5, with_row_id=True).column("_rowid").to_pylist()
    code = f"""
import json, lancedb
import granite_index.lancedb as gl
tbl = lancedb.connect({str(db.uri)!r}).open_table("docs")
d = tbl.search({q!r}).limit(5).with_row_id(True).to_arrow().column("_rowid").to_pylist()
s = gl.sparse_search(tbl, {q!r}, 5, with_row_id=True).column("_rowid").to_pylist()
print(json.dumps({{"dense": d, "sparse": s}}))
"""
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"dense": dense, "sparse": sparse}


# ---------------------------------------------------------------- sparse search


def test_sparse_search_equals_brute_force(base, sparse_func):
    _, tbl = base
    for q in QUERIES:
        got = _check_sparse(tbl, sparse_func, q, k=10)
        assert set(tbl.schema.names) < set(got.column_names) | {"_rowid"}
        assert "_rowid" not in gl.sparse_search(tbl, q, 3).column_names
    df = gl.sparse_search(tbl, QUERIES[0], 3).to_pandas()
    assert list(df["_score"]) == sorted(df["_score"], reverse=True)


@pytest.mark.parametrize("direct", [0.0, 1.0])
def test_filter_excluding_best_matches_is_exact(base, sparse_func, monkeypatch, direct):
    """Both strategies (score only the kept rows / search deeper) give the filtered top-k."""
    monkeypatch.setattr(sparse_mod, "DIRECT_FRACTION", direct)
    _, tbl = base
    q = QUERIES[1]
    best = _brute_sparse(tbl, sparse_func, q, 8)[0]
    ids = tbl.search().with_row_id(True).limit(None).to_arrow()
    by_row = dict(zip(ids.column("_rowid").to_pylist(), ids.column("id").to_pylist()))
    drop = ", ".join(str(by_row[int(r)]) for r in best[:6])
    for where in (f"id NOT IN ({drop})", f"id NOT IN ({drop}) AND group = 3"):
        got = _check_sparse(tbl, sparse_func, q, k=5, where=where)
        assert not set(got.column("_rowid").to_pylist()) & {int(r) for r in best[:6]}
    assert gl.sparse_search(tbl, q, 5, where="id > 1000").num_rows == 0


def test_sparse_index_follows_adds_deletes_compaction_and_checkout(base, sparse_func):
    tbl = _copy(base)
    q = QUERIES[0]
    _check_sparse(tbl, sparse_func, q)
    index = gl.cached_index(tbl)
    v0 = tbl.version
    # plain add: sparse columns null, encoded when the index catches up; gl.add writes them
    tbl.add([{"text": "Cancer metastasis in patients with tumours", "id": 100, "group": 0}])
    gl.add(tbl, [{"text": "Metastatic cancer in older patients", "id": 101, "group": 1}])
    assert tbl.to_arrow().column("sparse_indices").null_count == 1
    got = _check_sparse(tbl, sparse_func, q)
    assert {100, 101} <= set(got.column("id").to_pylist())
    assert gl.cached_index(tbl) is index  # updated in place, not rebuilt
    assert len(index) == N_DOCS + 2
    top = got.column("id").to_pylist()[:3]
    tbl.delete(f"id IN ({', '.join(map(str, top))})")
    got = _check_sparse(tbl, sparse_func, q)
    assert not set(top) & set(got.column("id").to_pylist())
    assert len(index) == N_DOCS - 1
    tbl.optimize()  # compaction moves rows to new row ids
    _check_sparse(tbl, sparse_func, q)
    assert len(gl.cached_index(tbl)) == N_DOCS - 1
    tbl.checkout(v0)  # time travel: the index follows the handle's version
    _check_sparse(tbl, sparse_func, q)
    assert len(gl.cached_index(tbl)) == N_DOCS
    tbl.checkout_latest()
    gl.clear_cache()
    _check_sparse(tbl, sparse_func, q)


def test_replace_rows_equals_row_by_row():
    rng = np.random.default_rng(0)

    def rand_csr(n):
        lengths = rng.integers(0, 4, n)
        ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return ptr, rng.integers(0, 50, ptr[-1]).astype(np.uint32), rng.random(ptr[-1], np.float32)

    a, b, rows = rand_csr(7), rand_csr(3), np.array([0, 4, 6])
    ptr, ind, val = sparse_mod.replace_rows(a, rows, b)
    src = {0: (b, 0), 4: (b, 1), 6: (b, 2)}
    for r in range(7):
        (p, i, v), j = src.get(r, (a, r))
        np.testing.assert_array_equal(ind[ptr[r] : ptr[r + 1]], i[p[j] : p[j + 1]])
        np.testing.assert_array_equal(val[ptr[r] : ptr[r + 1]], v[p[j] : p[j + 1]])


# ---------------------------------------------------------------- hybrid search


def _expected_hybrid(tbl, dense_func, sparse_func, query, k, fusion, where=None):
    """The engine's fusion over brute-force legs (every row scored: depth >= table size)."""
    t = tbl.search().where(where).with_row_id(True).limit(None).to_arrow() if where else None
    t = t if t is not None else tbl.search().with_row_id(True).limit(None).to_arrow()
    ids = t.column("_rowid").to_numpy().astype(np.int64)
    vecs = np.stack(t.column("vector").to_numpy(zero_copy_only=False))
    cos = vecs @ dense_func.encoder.encode_queries([query])[0]
    order = np.argsort(-cos, kind="stable")
    s_ids, s_scores = _brute_sparse(tbl, sparse_func, query, len(ids), where)
    results = {
        "sparse": (s_ids[None], s_scores[None].astype(np.float32)),
        "dense": (ids[order][None], cos[order][None].astype(np.float32)),
    }
    score = dict(zip(ids.tolist(), cos.tolist()))

    def dense_lookup(x):
        return np.array([[score.get(int(i), np.nan) for i in row] for row in x], np.float32)

    def sparse_lookup(x):
        m = dict(zip(s_ids.tolist(), s_scores.tolist()))
        return np.array([[m.get(int(i), 0.0) for i in row] for row in x], np.float32)

    cands = Candidates.from_legs(results, {"dense": dense_lookup, "sparse": sparse_lookup})
    return fusion.fuse(cands, k)


@pytest.mark.parametrize(
    "fusion",
    [None, RRF(k=60), DBSF(), ConvexFusion({"sparse": 0.3, "dense": 0.7}, "zscore")],
)
def test_hybrid_equals_engine_fusion_of_brute_force_legs(base, dense_func, sparse_func, fusion):
    _, tbl = base
    use = fusion or ConvexFusion({"sparse": 1.0, "dense": 1.0}, "minmax")
    for q, where in ((QUERIES[0], None), (QUERIES[3], "group IN (1, 2)")):
        got = gl.hybrid_search(tbl, q, 8, where=where, fusion=fusion, with_row_id=True)
        ids, scores = _expected_hybrid(tbl, dense_func, sparse_func, q, 8, use, where)
        np.testing.assert_array_equal(got.column("_rowid").to_numpy().astype(np.int64), ids[0])
        np.testing.assert_allclose(got.column("_relevance_score").to_numpy(), scores[0], atol=2e-4)
        if where:
            assert set(got.column("group").to_pylist()) <= {1, 2}
    assert isinstance(got.to_pandas().iloc[0]["text"], str)


def test_hybrid_with_fts_leg(base):
    tbl = _copy(base)
    with pytest.raises(ValueError, match="full-text index"):
        gl.hybrid_search(tbl, QUERIES[0], 5, legs=["sparse", "fts"])
    tbl.create_fts_index("text")
    got = gl.hybrid_search(
        tbl, "stem cells", 5, legs=["sparse", "dense", "fts"], fusion=RRF(), where="group != 0"
    )
    assert 0 < got.num_rows <= 5 and 0 not in got.column("group").to_pylist()
    fts = tbl.search("stem cells", query_type="fts").limit(100).with_row_id(True).to_arrow()
    fts_score = dict(zip(fts.column("_rowid").to_pylist(), fts.column("_score").to_pylist()))
    rrf = {"kind": "rrf", "k": 60, "weights": {"fts": 1.0, "dense": 0.0}}
    only = gl.hybrid_search(
        tbl, "stem cells", 3, legs=["fts", "dense"], fusion=rrf, with_row_id=True
    )
    top = [fts_score[r] for r in only.column("_rowid").to_pylist()]
    assert top == sorted(fts_score.values(), reverse=True)[:3]  # dense weighs nothing


# ---------------------------------------------------------------- reranker


def _zscore(s):
    return (s - s.mean()) / s.std() if s.std() > 0 else np.zeros_like(s)


def test_granite_fusion_reranker_in_lancedb_hybrid(base, dense_func):
    tbl = _copy(base)
    tbl.create_fts_index("text")
    q = "stem cells in tumor growth"
    v = dense_func.compute_query_embeddings(q)[0]
    n = N_DOCS
    fusion = ConvexFusion({"dense": 0.7, "fts": 0.3}, "zscore")
    got = (
        tbl.search(query_type="hybrid")
        .vector(v)
        .text(q)
        .rerank(gl.GraniteFusion(fusion))
        .limit(n)
        .with_row_id(True)
        .to_arrow()
    )
    vec = tbl.search(v).limit(n).with_row_id(True).to_arrow()
    fts = tbl.search(q, query_type="fts").limit(n).with_row_id(True).to_arrow()
    legs = {
        "dense": (vec.column("_rowid").to_pylist(), -vec.column("_distance").to_numpy()),
        "fts": (fts.column("_rowid").to_pylist(), fts.column("_score").to_numpy()),
    }
    fused: dict[int, float] = {}
    for leg, (ids, s) in legs.items():  # per leg: z-score over its list, floor for the missing
        z = dict(zip(ids, _zscore(s.astype(np.float64))))
        floor = min(z.values())
        for r in set(vec.column("_rowid").to_pylist()) | set(fts.column("_rowid").to_pylist()):
            fused[r] = fused.get(r, 0.0) + fusion.weights[leg] * z.get(r, floor)
    want = sorted(fused, key=lambda r: (-fused[r], r))
    assert got.column("_rowid").to_pylist() == want
    np.testing.assert_allclose(
        got.column("_relevance_score").to_numpy(), [fused[r] for r in want], atol=1e-4
    )
    one = tbl.search(q).rerank(gl.GraniteFusion()).limit(5).to_arrow()
    assert one.column("_relevance_score").to_pylist()[0] == 1.0  # min-max: the best gets 1
    with pytest.raises(ValueError, match="theoretical"):
        gl.GraniteFusion(ConvexFusion({"dense": 1.0, "fts": 1.0}, "theoretical"))
    with pytest.raises(ValueError, match="sparse"):
        gl.GraniteFusion(ConvexFusion({"sparse": 1.0, "dense": 1.0}))


# ---------------------------------------------------------------- errors


def test_clear_errors(base, tiny_bert):
    db, tbl = base
    plain = db.create_table("plain", data=[{"text": "a b", "vector": [0.1, 0.2]}])
    with pytest.raises(ValueError, match="add_sparse_column"):
        gl.sparse_search(plain, "query")
    bad = db.create_table(
        "bad", data=pa.table({"text": ["a"], "sparse_indices": [[1]], "sparse_values": [[1.0]]})
    )
    with pytest.raises(TypeError, match="list<item: uint32>"):
        gl.sparse_search(bad, "query")
    with pytest.raises(ValueError, match="no column 'body'"):
        gl.add_sparse_column(plain, "body")
    with pytest.raises(ValueError, match="already has columns"):
        gl.add_sparse_column(tbl, "text")
    for k in (0, -3):
        with pytest.raises(ValueError, match="k must be positive"):
            gl.sparse_search(tbl, "query", k)
        with pytest.raises(ValueError, match="k must be positive"):
            gl.hybrid_search(tbl, "query", k)
    for q in ("", "   "):
        with pytest.raises(ValueError, match="query is empty"):
            gl.sparse_search(tbl, q)
        with pytest.raises(ValueError, match="query is empty"):
            gl.hybrid_search(tbl, q)
    with pytest.raises(TypeError, match="query must be a str"):
        gl.sparse_search(tbl, ["a"])
    other = gl.GraniteEmbeddings.create(name=str(tiny_bert), precision="fp32")
    with pytest.raises(ValueError, match="32-d vectors, but column 'vector' holds 384-d"):
        gl.hybrid_search(tbl, "query", embedding=other)
    with pytest.raises(ValueError, match="at least two legs"):
        gl.hybrid_search(tbl, "query", legs=["sparse"])
    with pytest.raises(ValueError, match="unknown leg"):
        gl.hybrid_search(tbl, "query", legs=["sparse", "bm25"])
    with pytest.raises(ValueError, match="depth"):
        gl.hybrid_search(tbl, "query", k=10, depth=5)
    with pytest.raises(ValueError, match="where filter"):
        gl.sparse_search(tbl, "query", where="no_such_column > 1")
    with pytest.raises(ValueError, match="query is empty"):
        tbl.search("  ").limit(1).to_arrow()
    with pytest.raises(RuntimeError, match="on_bad_vectors"):  # LanceDB's own policy
        tbl.add([{"text": "  ", "id": 999, "group": 0}])
