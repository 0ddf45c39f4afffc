"""Scale benchmark, LanceDB side (the "anchor"): ingest, index, maintain and query a LanceDB table
holding a synthetic ``ScaleCorpus`` (``benchmarks/scale_data.py``), one process, local disk.

Run:  PYTHONPATH=. .venv/bin/python -m benchmarks.scale_lancedb --n-docs 100000 [--queries 200]

Table: ``id`` int64, ``text`` string, ``bucket`` int32 (``id % 100``, the filter column),
``vector`` fixed-size list<float32, 384> (L2-normalised, so cosine = dot = l2 ranking); every
vector index and vector query uses ``distance_type="cosine"``.

Measured, in this order, on the same data as ``ScaleCorpus(seed=seed)``:

1. Ingest: the table is created empty (schema only), then documents are added in ``batch``-sized
   ``table.add`` calls. Each batch is generated and converted to Arrow *outside* the timing; only
   ``table.add`` is timed: docs/s = n_docs / sum of add times.
2. Index builds, each timed separately: the native (Lance, not tantivy) FTS index on ``text``
   (LanceDB's defaults: simple tokenizer, lower-case, English stemming and stop words), a BTREE
   scalar index on ``bucket``, and IVF_PQ on ``vector`` with LanceDB's default parameters (it
   derives partitions and sub-vectors from the table). Bytes on disk (the table folder, file
   sizes summed, all versions) per document are taken right after.
3. Maintenance: one ``table.add`` of 1,000 new documents (timed); whether a new document is found
   by ANN vector search and by FTS *before* any ``optimize`` (LanceDB searches un-indexed rows
   with a flat scan); then ``table.optimize()`` (timed separately: compaction plus merging the
   new rows into every index); one ``table.delete("id IN (...)")`` of 1,000 existing ids drawn
   at random (timed). Then, each in a fresh Python subprocess: open time (``lancedb.connect`` +
   ``open_table``, median of 3 processes, ``import lancedb`` excluded) and the first ANN query
   after opening; VmRSS from /proc/self/status after ``import lancedb``, after opening, and after
   1,000 queries (rotating FTS, ANN vector, ANN vector filtered by ``bucket < 10``).
4. Query latency, one query at a time, ``n_queries`` queries (10 untimed warm-up queries
   first), k = 10, ``id`` selected (plus the score column LanceDB adds anyway),
   ``time.perf_counter`` around building the query and ``to_arrow()``; p50 / p99 / mean in ms:
     - FTS on the query texts;
     - vector exact (``bypass_vector_index()``, flat scan) and ANN through IVF_PQ with LanceDB's
       default search parameters (nprobes, no refine), recall@10 of ANN against exact; for
       reference also IVF_PQ with ``refine_factor(10)`` (re-ranking by full vectors);
     - hybrid: vector (ANN) + FTS fused by LanceDB's RRFReranker with its defaults (k = 60);
     - filtered vector search, ``where(..., prefilter=True)`` with ``bucket < 1 / < 10 / < 50``
       (1 % / 10 % / 50 % of rows kept, served by the BTREE index), exact and ANN: recall@10 of
       ANN against exact filtered results and the fraction of queries returning fewer than k.
5. The vector index is then replaced by IVF_HNSW_SQ (default parameters; build timed) and the
   ANN queries of 4 (unfiltered and filtered) are repeated against the same exact results.
   Bytes on disk are reported again, and once more after ``optimize(cleanup_older_than=0)``
   has dropped old versions and the replaced index.

Recall@10 = |ANN top-10 ∩ exact top-10| / min(10, |exact top-10|), averaged over queries.
Latencies depend on machine load: the load average is recorded at start and end.
LanceDB's Rust log is set to errors only (``LANCEDB_LOG``, unless already set): its hybrid search
otherwise prints a deprecation warning about score columns on every query.
Writes ``benchmarks/results/scale_lancedb_<n>k.json`` and prints the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.common import CACHE, machine, write_results
from benchmarks.scale_data import ScaleCorpus

K = 10
TABLE = "scale"
DISTANCE = "cosine"
WARMUP = 10
N_MAINT = 1_000  # documents added, ids deleted
N_RSS_QUERIES = 1_000
FILTERS = {"1%": "bucket < 1", "10%": "bucket < 10", "50%": "bucket < 50"}

# Runs in a fresh interpreter: argv = db folder, table, mode ("open" | "rss"), query file prefix.
_PROBE = r"""
import json, sys, time
import numpy as np

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

db_path, table, mode, qprefix = sys.argv[1:5]
import lancedb
rss_import = rss_kib()
t0 = time.perf_counter()
tbl = lancedb.connect(db_path).open_table(table)
open_s = time.perf_counter() - t0
rss_open = rss_kib()
texts = json.load(open(qprefix + ".json"))
vecs = np.load(qprefix + ".npy")
out = {"open_s": open_s, "rss_after_import_kib": rss_import, "rss_after_open_kib": rss_open}
if mode == "open":
    t0 = time.perf_counter()
    tbl.search(vecs[0]).distance_type("cosine").limit(10).select(["id", "_distance"]).to_arrow()
    out["first_ann_query_s"] = time.perf_counter() - t0
else:
    n = int(sys.argv[5])
    t0 = time.perf_counter()
    for i in range(n):
        j = i % len(texts)
        if i % 3 == 0:
            q = tbl.search(texts[j], query_type="fts").select(["id", "_score"])
        else:
            q = tbl.search(vecs[j]).distance_type("cosine").select(["id", "_distance"])
            if i % 3 == 2:
                q = q.where("bucket < 10", prefilter=True)
        q.limit(10).to_arrow()
    out["queries"] = n
    out["queries_s"] = time.perf_counter() - t0
    out["rss_after_queries_kib"] = rss_kib()
print(json.dumps(out))
"""


def _schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("text", pa.string()),
            pa.field("bucket", pa.int32()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
    )


def _arrow(ids: list[int], texts: list[str], vecs: np.ndarray) -> pa.Table:
    idx = np.asarray(ids, dtype=np.int64)
    return pa.table(
        {
            "id": pa.array(idx, pa.int64()),
            "text": pa.array(texts, pa.string()),
            "bucket": pa.array((idx % 100).astype(np.int32), pa.int32()),
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(vecs.astype(np.float32).ravel(), pa.float32()), vecs.shape[1]
            ),
        },
        schema=_schema(vecs.shape[1]),
    )


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _ids(t: pa.Table) -> list[int]:
    return t.column("id").to_pylist()


def _latency(one: Callable[[int], list[int]], n: int) -> tuple[dict[str, float], list[list[int]]]:
    """Run ``one(i)`` for i < n (after ``WARMUP`` untimed calls); latency summary and results."""
    for i in range(min(WARMUP, n)):
        one(i)
    times, results = [], []
    for i in range(n):
        t0 = time.perf_counter()
        results.append(one(i))
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    summary = {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "short_fraction": round(sum(len(r) < K for r in results) / n, 4),
    }
    return summary, results


def _recall(approx: list[list[int]], exact: list[list[int]]) -> float:
    vals = [
        len(set(a) & set(e[:K])) / min(K, len(e)) if e else 1.0
        for a, e in zip(approx, exact, strict=True)
    ]
    return round(float(np.mean(vals)), 4)


def _disk(folder: Path, n_docs: int) -> dict[str, Any]:
    """File sizes under the table folder (all versions kept), by top-level sub-folder."""
    parts: dict[str, int] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            top = path.relative_to(folder).parts[0]
            parts[top] = parts.get(top, 0) + path.stat().st_size
    total = sum(parts.values())
    return {"bytes": total, "bytes_per_doc": round(total / n_docs, 1), "by_folder": parts}


def _probe(db: Path, mode: str, qprefix: Path, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(db), TABLE, mode, str(qprefix), *extra],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _index_info(tbl: Any, name: str) -> dict[str, Any]:
    stats = tbl.index_stats(name)
    info = {
        "index_type": stats.index_type,
        "distance_type": stats.distance_type,
        "num_indexed_rows": stats.num_indexed_rows,
        "num_unindexed_rows": stats.num_unindexed_rows,
    }
    if stats.index_type.startswith("IVF"):
        try:  # partition count, from the underlying Lance dataset
            raw = tbl.to_lance().stats.index_stats(name)
            info["num_partitions"] = raw["indices"][0]["num_partitions"]
        except Exception:  # noqa: BLE001 (informative only)
            pass
    return info


def run_lancedb(
    n_docs: int,
    workdir: Path,
    *,
    n_queries: int = 200,
    batch: int = 100_000,
    seed: int = 0,
    hnsw: bool = True,
) -> dict:
    """Build, maintain and query a LanceDB table of ``n_docs`` ScaleCorpus documents (see module
    docs); ``workdir/db`` is wiped first. Returns the figures as a JSON-serialisable dict."""
    # Quiet LanceDB's Rust log (read when lancedb is first imported): its hybrid search warns on
    # every query that a future release will stop adding ``_score`` / ``_distance`` columns.
    # Index statistics: opt in now to the future default (no centroids, no warning).
    os.environ.setdefault("LANCEDB_LOG", "error")
    os.environ.setdefault("LANCE_INCLUDE_VECTOR_CENTROIDS", "false")
    import lancedb
    from lancedb.index import FTS, BTree, IvfHnswSq, IvfPq
    from lancedb.rerankers import RRFReranker

    t_start = time.perf_counter()
    load_start = os.getloadavg()
    workdir = Path(workdir)
    db_path = workdir / "db"
    shutil.rmtree(db_path, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = ScaleCorpus(seed=seed)
    out: dict[str, Any] = {
        "engine": "lancedb",
        "lancedb_version": lancedb.__version__,
        "pyarrow_version": pa.__version__,
        "n_docs": n_docs,
        "n_queries": n_queries,
        "k": K,
        "batch": batch,
        "seed": seed,
        "dim": corpus.dim,
        "distance_type": DISTANCE,
    }

    # 1. ingest ------------------------------------------------------------------------------
    db = lancedb.connect(str(db_path))
    tbl = db.create_table(TABLE, schema=_schema(corpus.dim))
    add_s, gen_s = [], 0.0
    for start in range(0, n_docs, batch):
        t0 = time.perf_counter()
        ids, texts, vecs, _ = corpus.batch(start, min(batch, n_docs - start))
        data = _arrow(ids, texts, vecs)
        gen_s += time.perf_counter() - t0
        add_s.append(_timed(lambda data=data: tbl.add(data))[0])
    assert tbl.count_rows() == n_docs
    out["ingest"] = {
        "add_calls": len(add_s),
        "add_s": round(sum(add_s), 3),
        "docs_per_s": round(n_docs / sum(add_s)),
        "generation_s_excluded": round(gen_s, 2),
    }

    # 2. indexes -----------------------------------------------------------------------------
    builds: dict[str, Any] = {}
    # Native Lance inverted index: this lancedb has removed the tantivy FTS (use_tantivy=True
    # raises) and deprecated create_fts_index / create_scalar_index for create_index(config=...).
    dt, _ = _timed(lambda: tbl.create_index("text", config=FTS()))
    builds["fts_text"] = {
        "s": round(dt, 3),
        "impl": "native Lance inverted index, FTS() defaults (tantivy FTS removed in lancedb)",
        **_index_info(tbl, "text_idx"),
    }
    dt, _ = _timed(lambda: tbl.create_index("bucket", config=BTree()))
    builds["btree_bucket"] = {"s": round(dt, 3), **_index_info(tbl, "bucket_idx")}
    dt, _ = _timed(lambda: tbl.create_index("vector", config=IvfPq(distance_type=DISTANCE)))
    builds["ivf_pq_vector"] = {
        "s": round(dt, 3),
        "params": "IvfPq defaults (partitions and sub-vectors derived by LanceDB)",
        **_index_info(tbl, "vector_idx"),
    }
    out["index_build"] = builds
    table_dir = db_path / f"{TABLE}.lance"
    out["disk_after_indexes"] = _disk(table_dir, n_docs)

    # 3. maintenance -------------------------------------------------------------------------
    maint: dict[str, Any] = {}
    new_ids, new_texts, new_vecs, _ = corpus.batch(n_docs, N_MAINT)
    data = _arrow(new_ids, new_texts, new_vecs)
    maint["add_1000_s"] = round(_timed(lambda: tbl.add(data))[0], 4)
    probe_id, probe_j = new_ids[N_MAINT // 2], N_MAINT // 2
    ann_hit = _ids(tbl.search(new_vecs[probe_j]).distance_type(DISTANCE).limit(K).to_arrow())
    fts_hit = _ids(tbl.search(new_texts[probe_j], query_type="fts").limit(K).to_arrow())
    maint["before_optimize"] = {
        "new_doc_top1_by_own_vector_ann": bool(ann_hit and ann_hit[0] == probe_id),
        "new_doc_in_fts_top10_by_own_text": probe_id in fts_hit,
        "vector_idx_unindexed_rows": tbl.index_stats("vector_idx").num_unindexed_rows,
        "text_idx_unindexed_rows": tbl.index_stats("text_idx").num_unindexed_rows,
    }
    maint["optimize_s"] = round(_timed(lambda: tbl.optimize())[0], 3)
    maint["after_optimize_unindexed_rows"] = {
        name: tbl.index_stats(name).num_unindexed_rows
        for name in ("text_idx", "bucket_idx", "vector_idx")
    }
    rng = np.random.default_rng([seed, 99])
    gone = sorted(int(i) for i in rng.choice(n_docs, size=min(N_MAINT, n_docs), replace=False))
    where = f"id IN ({', '.join(map(str, gone))})"
    maint["delete_1000_s"] = round(_timed(lambda: tbl.delete(where))[0], 4)
    n_live = tbl.count_rows()
    maint["rows_after"] = n_live
    out["maintenance"] = maint

    qtexts, qvecs, _ = corpus.queries(n_queries)
    qvecs = np.ascontiguousarray(qvecs, dtype=np.float32)
    qprefix = workdir / "queries"
    np.save(f"{qprefix}.npy", qvecs)
    Path(f"{qprefix}.json").write_text(json.dumps(qtexts))
    opens = [_probe(db_path, "open", qprefix) for _ in range(3)]
    rss = _probe(db_path, "rss", qprefix, str(N_RSS_QUERIES))
    out["open"] = {
        "open_s_median_of_3": round(statistics.median(o["open_s"] for o in opens), 5),
        "open_s_all": [round(o["open_s"], 5) for o in opens],
        "first_ann_query_after_open_s_median": round(
            statistics.median(o["first_ann_query_s"] for o in opens), 4
        ),
    }
    out["rss"] = {
        "after_import_lancedb_mib": round(rss["rss_after_import_kib"] / 1024, 1),
        "after_open_mib": round(rss["rss_after_open_kib"] / 1024, 1),
        "after_1000_queries_mib": round(rss["rss_after_queries_kib"] / 1024, 1),
        "queries": "rotating FTS, ANN vector, ANN vector where bucket < 10",
        "queries_s": round(rss["queries_s"], 2),
    }

    # 4. query latency -----------------------------------------------------------------------
    # The score column is selected explicitly: Lance adds it anyway (and warns if not asked for).
    def vector(
        i: int, where: str | None = None, exact: bool = False, refine: int | None = None
    ) -> list[int]:
        q = tbl.search(qvecs[i]).distance_type(DISTANCE)
        if where:
            q = q.where(where, prefilter=True)
        if exact:
            q = q.bypass_vector_index()
        if refine:
            q = q.refine_factor(refine)
        return _ids(q.limit(K).select(["id", "_distance"]).to_arrow())

    def fts(i: int) -> list[int]:
        q = tbl.search(qtexts[i], query_type="fts")
        return _ids(q.limit(K).select(["id", "_score"]).to_arrow())

    rrf = RRFReranker()

    def hybrid(i: int) -> list[int]:
        q = (
            tbl.search(query_type="hybrid")
            .vector(qvecs[i])
            .text(qtexts[i])
            .distance_type(DISTANCE)
            .rerank(rrf)
        )
        return _ids(q.limit(K).select(["id"]).to_arrow())

    def ann_block(index: str, exact: dict[str, list[list[int]]]) -> dict[str, Any]:
        res: dict[str, Any] = {}
        lat, got = _latency(vector, n_queries)
        res["vector_ann"] = {**lat, "recall_at_10": _recall(got, exact["none"])}
        for label, cond in FILTERS.items():
            lat, got = _latency(lambda i, c=cond: vector(i, c), n_queries)
            res[f"filtered_{label}_ann"] = {**lat, "recall_at_10": _recall(got, exact[label])}
        return {"index": index, "search_params": "LanceDB defaults", **res}

    queries: dict[str, Any] = {}
    queries["fts"], _ = _latency(fts, n_queries)
    exact: dict[str, list[list[int]]] = {}
    queries["vector_exact"], exact["none"] = _latency(lambda i: vector(i, exact=True), n_queries)
    for label, cond in FILTERS.items():
        queries[f"filtered_{label}_exact"], exact[label] = _latency(
            lambda i, c=cond: vector(i, c, exact=True), n_queries
        )
        queries[f"filtered_{label}_exact"]["rows_kept"] = tbl.count_rows(cond)
    queries["hybrid_rrf"], _ = _latency(hybrid, n_queries)
    queries["ivf_pq"] = ann_block("IVF_PQ", exact)
    lat, got = _latency(lambda i: vector(i, refine=10), n_queries)
    queries["ivf_pq"]["vector_ann_refine_factor_10"] = {
        **lat,
        "recall_at_10": _recall(got, exact["none"]),
    }
    out["queries"] = queries

    # 5. IVF_HNSW_SQ in place of IVF_PQ (skipped with hnsw=False: its build is the long pole) ---
    if hnsw:
        dt, _ = _timed(
            lambda: tbl.create_index(
                "vector", config=IvfHnswSq(distance_type=DISTANCE), replace=True
            )
        )
        builds["ivf_hnsw_sq_vector"] = {
            "s": round(dt, 3),
            "params": "IvfHnswSq defaults, replaces IVF_PQ (built after steps 3-4)",
            **_index_info(tbl, "vector_idx"),
        }
        queries["ivf_hnsw_sq"] = ann_block("IVF_HNSW_SQ", exact)
    out["disk_final_all_versions"] = _disk(table_dir, n_live)
    with warnings.catch_warnings():  # it warns that older versions go: that is the point here
        warnings.simplefilter("ignore")
        tbl.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
    out["disk_final_after_cleanup"] = _disk(table_dir, n_live)

    out["load_average"] = {"start": [round(x, 2) for x in load_start]}
    out["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
    out["machine"] = machine()
    out["total_s"] = round(time.perf_counter() - t_start, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n-docs", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=CACHE / "scale-lancedb")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    res = run_lancedb(
        args.n_docs, args.workdir, n_queries=args.queries, batch=args.batch, seed=args.seed
    )
    print(json.dumps(res, indent=2))
    print("wrote", write_results(f"scale_lancedb_{args.n_docs // 1000}k", res))


if __name__ == "__main__":
    main()
