"""Our LanceDB plugin (granite_index.lancedb) against LanceDB's native hybrid search, SciFact.

Run:  .venv/bin/python -m benchmarks.bench_lancedb_plugin [--warmup 30]

(Smoke test: ``--docs 300 --queries 20 --warmup 2``; quality figures are then meaningless.)

One local LanceDB table (copied into a temporary folder for the run) holds the 5,183 SciFact
documents: ``id``, ``text`` (title + text), ``vector`` (all-MiniLM-L6-v2 document vectors, read
from the collection ``benchmarks/out/hybrid-scifact`` as ``bench_hybrid_latency`` does, not
re-encoded), a synthetic ``year`` (uniform 2010..2019, seed 0; ``year >= 2017`` keeps ~30 % of
rows), and our SPLADE sparse columns (``add_sparse_column``, bundled SPLADE-tiny). The encoded
table is cached in ``benchmarks/out/lancedb-plugin-scifact/`` (a re-run reuses it); Lance's native
FTS index on ``text`` is built on the temporary copy in every run.

Methods, all in the same run over the same table, one query at a time (``--warmup`` untimed
queries first), ``time.perf_counter`` around the whole call including reading the ids out of the
returned Arrow table; p50 / p99 / mean, nDCG@10 (ir-measures, by rank) from the timed lists:
  (a) LanceDB native hybrid: ``tbl.search(query_type="hybrid").vector(v).text(t)``, default
      RRFReranker (k=60), limit 10, distance "dot";
  (b) our ``hybrid_search`` legs sparse+dense: default fusion (equal-weight min-max convex) and
      RRF k=60;
  (c) our ``hybrid_search`` legs fts+dense (default fusion and RRF);
  (d) LanceDB native hybrid reranked by our ``GraniteFusion`` (equal-weight z-score convex);
  (e) our ``sparse_search`` alone;
  plus the filter ``where year >= 2017`` (prefilter) for (a), (b default) and (e): latency only,
  since the qrels do not know the filter.
Query vectors are precomputed (``Collection.encode_queries``, outside the timing) for every dense
leg: LanceDB gets the vector; ``hybrid_search`` gets an ``embedding=`` object that looks the
precomputed vector up. The plugin offers no way to pass a pre-encoded SPLADE query, so the sparse
legs encode the query text with SPLADE-tiny inside the timed call; rows marked "sparse query
cached" repeat them with ``GraniteSparseEmbeddings.encode_queries`` memoised (all queries encoded
before timing), which isolates the search itself. The first ``sparse_search`` call builds the
in-memory sparse index from the table; its time is reported separately (``sparse_index_build_s``).
Latencies are only meaningful on a quiet machine: the load average is recorded at start and end.
Writes benchmarks/results/lancedb_plugin.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.bench_hybrid_latency import quiet_stderr, summary, timed
from benchmarks.common import BEIR, CACHE, machine, markdown_table, write_results
from granite_index import Collection
from granite_index.eval import load_beir
from granite_index.fusion import RRF, ConvexFusion

K = 10
WHERE = "year >= 2017"


class PrecomputedQueries:
    """Stands in for an embedding function: the query's precomputed vector, by its text."""

    def __init__(self, texts: list[str], vecs: np.ndarray) -> None:
        self.by_text = {t: v for t, v in zip(texts, vecs)}
        self.dim = int(vecs.shape[1])

    def ndims(self) -> int:
        return self.dim

    def compute_query_embeddings_with_retry(self, query: str, *args: Any, **kw: Any) -> list:
        return [self.by_text[query]]


@contextmanager
def sparse_queries_cached(texts: list[str]) -> Iterator[None]:
    """Memoise ``GraniteSparseEmbeddings.encode_queries`` and encode every query once, first."""
    from granite_index.lancedb.embeddings import GraniteSparseEmbeddings

    original = GraniteSparseEmbeddings.encode_queries
    memo: dict[tuple[str, ...], Any] = {}

    def cached(self, q):
        key = tuple(q) if isinstance(q, list) else (q,)
        if key not in memo:
            memo[key] = original(self, q)
        return memo[key]

    GraniteSparseEmbeddings.encode_queries = cached
    try:
        func = GraniteSparseEmbeddings.create()
        for t in texts:
            func.encode_queries([t])
        yield
    finally:
        GraniteSparseEmbeddings.encode_queries = original


def build_cache(folder, ids: list[str], texts: list[str], vecs: np.ndarray) -> dict[str, Any]:
    """The LanceDB table with dense vectors, year and SPLADE columns, written to ``folder``."""
    import lancedb

    import granite_index.lancedb as gl

    marker = folder / "done.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info["n_docs"] == len(ids):
            return info
    shutil.rmtree(folder, ignore_errors=True)
    years = np.random.default_rng(0).integers(2010, 2020, len(ids))
    dim = vecs.shape[1]
    data = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "text": pa.array(texts, pa.string()),
            "year": pa.array(years, pa.int32()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel(), pa.float32()), dim),
        }
    )
    tbl = lancedb.connect(str(folder)).create_table("scifact", data)
    t0 = time.perf_counter()
    gl.add_sparse_column(tbl, "text")
    info = {
        "n_docs": len(ids),
        "add_sparse_column_seconds": round(time.perf_counter() - t0, 1),
        "load_average_while_encoding": [round(x, 2) for x in os.getloadavg()],
        "rows_kept_by_filter": int((years >= 2017).sum()),
    }
    marker.write_text(json.dumps(info))
    return info


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--warmup", type=int, default=30, help="untimed queries before each loop")
    ap.add_argument("--docs", type=int, default=None, help="first N documents only (smoke test)")
    ap.add_argument("--queries", type=int, default=None, help="first N queries only (smoke test)")
    args = ap.parse_args()

    import lancedb
    from lancedb.index import FTS
    from lancedb.rerankers import RRFReranker

    import granite_index.lancedb as gl

    load_start = os.getloadavg()
    data = load_beir(BEIR / "scifact", split="test")
    col = Collection.open(CACHE / "hybrid-scifact")
    assert len(col) == len(data.doc_ids), "hybrid-scifact is incomplete: run bench_hybrid_quality"
    doc_ids, texts = data.doc_ids, data.documents()
    if args.docs:
        doc_ids, texts = doc_ids[: args.docs], texts[: args.docs]
    qids, qtexts = data.eval_queries()
    if args.queries:
        qids, qtexts = qids[: args.queries], qtexts[: args.queries]
    n = len(qids)
    qvecs = np.concatenate([col.encode_queries([t], legs=["dense"]).dense for t in qtexts])
    qvecs = qvecs.astype(np.float32)
    emb = PrecomputedQueries(qtexts, qvecs)

    name = "lancedb-plugin-scifact" + (f"-{args.docs}" if args.docs else "")
    cache_info = build_cache(CACHE / name, doc_ids, texts, col.vectors(doc_ids))

    with tempfile.TemporaryDirectory(prefix="lancedb-plugin-") as tmp:
        shutil.copytree(CACHE / name, f"{tmp}/db", ignore=shutil.ignore_patterns("done.json"))
        tbl = lancedb.connect(f"{tmp}/db").open_table("scifact")
        t0 = time.perf_counter()
        tbl.create_index("text", config=FTS())  # Lance's native inverted index, defaults
        fts_build_s = time.perf_counter() - t0
        kept = tbl.count_rows(WHERE)
        t0 = time.perf_counter()
        gl.sparse_search(tbl, qtexts[0], K)  # builds the in-memory sparse index
        sparse_build_s = time.perf_counter() - t0

        def ids_of(t: pa.Table) -> list:
            return t.column("id").to_pylist()

        def lance_hybrid(reranker=None, where=None) -> Callable[[int], list]:
            def one(i):
                q = (
                    tbl.search(query_type="hybrid")
                    .vector(qvecs[i])
                    .text(qtexts[i])
                    .distance_type("dot")
                )
                if where:
                    q = q.where(where, prefilter=True)
                if reranker is None:
                    q = q.rerank(RRFReranker()).select(["id"])
                else:
                    q = q.rerank(reranker).with_row_id(True).select(["id"])
                return ids_of(q.limit(K).to_arrow())

            return one

        def ours_hybrid(legs, fusion=None, where=None) -> Callable[[int], list]:
            def one(i):
                res = gl.hybrid_search(
                    tbl,
                    qtexts[i],
                    K,
                    legs=legs,
                    fusion=fusion,
                    where=where,
                    vector_column="vector",
                    embedding=emb,
                )
                return ids_of(res)

            return one

        def ours_sparse(where=None) -> Callable[[int], list]:
            return lambda i: ids_of(gl.sparse_search(tbl, qtexts[i], K, where=where))

        rrf = RRF(k=60)
        zscore = gl.GraniteFusion(ConvexFusion({"dense": 1.0, "fts": 1.0}, "zscore"))
        SD, FD = ["sparse", "dense"], ["fts", "dense"]
        # label -> (method letter, engine, filtered, sparse queries cached, fn)
        runs: dict[str, tuple[str, str, bool, bool, Callable[[int], list]]] = {
            "LanceDB hybrid FTS+vector, RRFReranker": (
                "a",
                "lancedb",
                False,
                False,
                lance_hybrid(),
            ),
            "ours hybrid_search sparse+dense, default (minmax convex)": (
                "b",
                "ours",
                False,
                False,
                ours_hybrid(SD),
            ),
            "ours hybrid_search sparse+dense, RRF k=60": (
                "b",
                "ours",
                False,
                False,
                ours_hybrid(SD, rrf),
            ),
            "ours hybrid_search fts+dense, default (minmax convex)": (
                "c",
                "ours",
                False,
                False,
                ours_hybrid(FD),
            ),
            "ours hybrid_search fts+dense, RRF k=60": (
                "c",
                "ours",
                False,
                False,
                ours_hybrid(FD, rrf),
            ),
            "LanceDB hybrid FTS+vector, GraniteFusion zscore convex": (
                "d",
                "lancedb",
                False,
                False,
                lance_hybrid(zscore),
            ),
            "ours sparse_search": ("e", "ours", False, False, ours_sparse()),
            "ours hybrid_search sparse+dense, default, sparse query cached": (
                "b",
                "ours",
                False,
                True,
                ours_hybrid(SD),
            ),
            "ours sparse_search, sparse query cached": ("e", "ours", False, True, ours_sparse()),
            f"LanceDB hybrid RRFReranker, where {WHERE}": (
                "a",
                "lancedb",
                True,
                False,
                lance_hybrid(where=WHERE),
            ),
            f"ours hybrid_search sparse+dense default, where {WHERE}": (
                "b",
                "ours",
                True,
                False,
                ours_hybrid(SD, where=WHERE),
            ),
            f"ours sparse_search, where {WHERE}": ("e", "ours", True, False, ours_sparse(WHERE)),
            f"ours sparse_search, where {WHERE}, sparse query cached": (
                "e",
                "ours",
                True,
                True,
                ours_sparse(WHERE),
            ),
        }
        rows: dict[str, dict[str, Any]] = {}
        for label, (letter, engine, filtered, cached, fn) in runs.items():
            ctx = sparse_queries_cached(qtexts) if cached else quiet_stderr(False)
            with ctx, quiet_stderr(engine == "lancedb"):
                lat, lists = timed(fn, n, args.warmup)
            r = {"method": letter, "engine": engine, "filtered": filtered, "sparse_cached": cached}
            r.update(summary(lat, lists, qids, data.qrels))
            if filtered:
                r["ndcg@10"] = None  # the qrels do not know the filter
                r["mean_results"] = round(float(np.mean([len(x) for x in lists])), 2)
            rows[label] = r
            print(f"{label:70s} {r}", flush=True)

    out = {
        "machine": {
            **machine(),
            "load_average_at_start": [round(x, 2) for x in load_start],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "lancedb_version": lancedb.__version__,
        "dataset": "scifact",
        "n_docs": len(doc_ids),
        "n_queries": n,
        "k": K,
        "warmup_queries": args.warmup,
        "models": {"dense": col.manifest.encoder, "splade": "bundled SPLADE-tiny (plugin default)"},
        "setup": {
            "cache": str(CACHE / name),
            **cache_info,
            "fts_index_seconds": round(fts_build_s, 2),
            "sparse_index_build_s": round(sparse_build_s, 2),
            "filter": WHERE,
            "rows_kept_by_filter": kept,
            "fraction_kept_by_filter": round(kept / len(doc_ids), 3),
        },
        "notes": [
            "query vectors precomputed for every dense leg; sparse legs encode the query text "
            "inside the timed call unless marked 'sparse query cached'",
            "LanceDB hybrid fetches limit (10) rows per leg; hybrid_search fetches depth 100 "
            "per leg and looks up missing sparse/dense scores",
            "hybrid_search and sparse_search return whole rows (text, vector, sparse columns) "
            "read back with take_row_ids; LanceDB hybrid selects only 'id'",
            "filtered rows: latency only, nDCG not reported (qrels ignore the filter)",
        ],
        "rows": rows,
    }
    headers = ["method", "p50 ms", "p99 ms", "nDCG@10"]
    table = [
        [
            f"({r['method']}) {label}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            "–" if r["ndcg@10"] is None else f"{r['ndcg@10']:.4f}",
        ]
        for label, r in rows.items()
    ]
    print(markdown_table(headers, table))
    if args.docs or args.queries:
        print("smoke test: results not written")
    else:
        print("wrote", write_results("lancedb_plugin", out))


if __name__ == "__main__":
    main()
