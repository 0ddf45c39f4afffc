"""Hybrid query latency on SciFact (300 test queries), granite-index vs LanceDB's native hybrid search.

Run:  .venv/bin/python -m benchmarks.bench_hybrid_latency [--warmup 30] [--rounds 3]

Needs benchmarks/out/hybrid-scifact/ (built by ``benchmarks.bench_hybrid_quality``; built here if
absent). Both engines hold the same 5,183 SciFact documents (title + text) and the same
all-MiniLM-L6-v2 document vectors (read from the collection).

One query at a time, as a server answers them: every query is timed alone with
``time.perf_counter`` around the whole call including the mapping to document ids; p50 / p99 /
mean over the 300 queries, after ``--warmup`` untimed queries; the methods take turns over
``--rounds`` rounds (each round times every method's 300 queries once) and the figures pool the
rounds, so that a slow spell of this shared machine falls on every method alike. nDCG@10 (ir-measures) is computed
from the very lists the timed calls returned (scored by rank, so each engine's order is kept).

granite-index (``threads=1`` for the sparse legs; the flat dense leg scans one query on one thread):
  * bm25+dense hybrid with RRF (k=60, as LanceDB's default reranker), with the default
    equal-weight min-max convex fusion, and with a fusion fitted on SciFact's TRAIN queries;
  * bm25+splade+dense hybrid (default and train-fitted fusion; the fitted one also with the
    learned-sparse leg approximate, ``share`` in SHARES: the SPLADE query cut to its heaviest
    terms carrying that share of its weight, the leg's list and lookups both scored with the cut
    query; ``three_legs_vs_two`` sets each against the fitted two-leg hybrid);
  each with query vectors precomputed (``encode_queries([text], legs)`` per query, outside the
  timing) and with the query text encoded inside the timed call; plus single legs for reference.
LanceDB (a local table in a temporary folder: id, text, vector; Lance's native FTS index on text,
not tantivy; no vector index, so exact search, distance "dot" on the normalised vectors):
  * hybrid ``tbl.search(query_type="hybrid").vector(q).text(t).limit(10)`` with its default
    RRFReranker (k=60), precomputed query vectors; FTS only; vector only.
Ratios are LanceDB p50 / granite-index p50. Latencies are only meaningful on a quiet machine:
the load average is recorded at start and end.
Writes benchmarks/results/hybrid_latency.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.common import BEIR, CACHE, machine, markdown_table, write_results
from granite_index import Collection
from granite_index.eval import evaluate, load_beir
from granite_index.fusion import RRF, ConvexFusion

K = 10
TWO = ["bm25", "dense"]
THREE = ["bm25", "sparse", "dense"]
#: approximate learned-sparse leg in the three-leg hybrid (``Collection.search(share=...)``)
SHARES = (0.5, 0.7, 0.9)


def timed(fn: Callable[[int], list[Any]], n: int, warmup: int) -> tuple[list[float], list[list]]:
    """Call ``fn(i)`` for each query i, one at a time; (seconds per query, returned id lists)."""
    for i in range(min(warmup, n)):
        fn(i)
    lat, out = [], []
    for i in range(n):
        t0 = time.perf_counter()
        ids = fn(i)
        lat.append(time.perf_counter() - t0)
        out.append(ids)
    return lat, out


@contextmanager
def quiet_stderr(on: bool) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: Lance's Rust core logs a deprecation warning per
    hybrid query (the sub-queries' score columns), which no select() of the hybrid builder avoids."""
    if not on:
        yield
        return
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def summary(lat: list[float], lists: list[list], qids: list[str], qrels) -> dict[str, Any]:
    run = {q: {str(d): float(K - r) for r, d in enumerate(ids)} for q, ids in zip(qids, lists)}
    ms = np.array(lat) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "qps_one_at_a_time": round(1e3 / float(ms.mean()), 1),
        "ndcg@10": round(evaluate(qrels, run, ("ndcg@10",))["ndcg@10"], 4),
    }


def lancedb_table(folder: str, ids: list[str], texts: list[str], vecs: np.ndarray):
    import lancedb
    from lancedb.index import FTS

    db = lancedb.connect(folder)
    dim = vecs.shape[1]
    data = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "text": pa.array(texts, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel(), pa.float32()), dim),
        }
    )
    t0 = time.perf_counter()
    tbl = db.create_table("scifact", data)
    # Lance's native inverted index (the default, not tantivy): English stemming + stop words
    tbl.create_index("text", config=FTS())
    return tbl, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--warmup", type=int, default=30, help="untimed queries before each loop")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every method, pooled")
    args = ap.parse_args()

    import lancedb
    from lancedb.rerankers import RRFReranker

    load_start = os.getloadavg()
    data = load_beir(BEIR / "scifact", split="test")
    path = CACHE / "hybrid-scifact"
    if not (path / "manifest.json").exists():
        from benchmarks.bench_hybrid_quality import build

        build("scifact", data)
    col = Collection.open(path)
    assert len(col) == len(data.doc_ids), "hybrid-scifact is incomplete: run bench_hybrid_quality"
    qids, qtexts = data.eval_queries()
    n = len(qids)

    # fusions fitted on the TRAIN split (never on the test queries timed here)
    train = load_beir(BEIR / "scifact", split="train")
    tq, tt = train.eval_queries()
    tenc = col.encode_queries(tt)
    fitted = {
        tuple(legs): col.fit_fusion(tenc, train.qrels, tq, legs=legs, save=False).fusion
        for legs in (TWO, THREE)
    }
    # the same fit with LanceDB's candidate budget: 10 per leg
    fitted10 = col.fit_fusion(tenc, train.qrels, tq, legs=TWO, depth=K, save=False).fusion

    # per-query encodings, outside every timing
    enc2 = [col.encode_queries([t], legs=TWO) for t in qtexts]
    enc3 = [col.encode_queries([t], legs=THREE) for t in qtexts]
    qvecs = np.concatenate([e.dense for e in enc2]).astype(np.float32)

    def ours(enc, legs, fusion=None, text=False, depth=None, share=None):
        """One query through ``col.search``: a hybrid over ``legs``, or one leg if a str;
        ``share``: the learned-sparse leg approximate (candidates from the query's heaviest
        terms, rescored exactly)."""

        def one(i):
            q = qtexts[i] if text else enc[i]
            if isinstance(legs, str):  # a single leg; threads is for the sparse legs only
                res = col.search(q, k=K, mode=legs, **({} if legs == "dense" else {"threads": 1}))
            else:
                res = col.search(
                    q,
                    k=K,
                    mode="hybrid",
                    legs=legs,
                    fusion=fusion,
                    depth=depth,
                    threads=1,
                    share=share,
                )
            return res.doc_ids()[0]

        return one

    rrf = RRF(k=60)
    default2 = ConvexFusion({leg: 1.0 for leg in TWO}, "minmax")
    default3 = ConvexFusion({leg: 1.0 for leg in THREE}, "minmax")
    runs: dict[str, tuple[str, Callable[[int], list]]] = {
        "ours bm25+dense RRF k=60 (precomputed)": ("ours", ours(enc2, TWO, rrf)),
        "ours bm25+dense convex equal (precomputed)": ("ours", ours(enc2, TWO, default2)),
        "ours bm25+dense fitted on train (precomputed)": (
            "ours",
            ours(enc2, TWO, fitted[tuple(TWO)]),
        ),
        "ours bm25+dense RRF k=60, depth 10 (precomputed)": (
            "ours",
            ours(enc2, TWO, rrf, depth=K),
        ),
        "ours bm25+dense fitted on train, depth 10 (precomputed)": (
            "ours",
            ours(enc2, TWO, fitted10, depth=K),
        ),
        "ours bm25+splade+dense convex equal (precomputed)": ("ours", ours(enc3, THREE, default3)),
        "ours bm25+splade+dense fitted on train (precomputed)": (
            "ours",
            ours(enc3, THREE, fitted[tuple(THREE)]),
        ),
        **{
            f"ours bm25+splade+dense fitted on train, splade share={r} (precomputed)": (
                "ours",
                ours(enc3, THREE, fitted[tuple(THREE)], share=r),
            )
            for r in SHARES
        },
        "ours bm25+dense RRF k=60 (text, encoded in call)": ("ours", ours(None, TWO, rrf, True)),
        "ours bm25+dense fitted on train (text, encoded in call)": (
            "ours",
            ours(None, TWO, fitted[tuple(TWO)], True),
        ),
        "ours bm25+splade+dense fitted on train (text, encoded in call)": (
            "ours",
            ours(None, THREE, fitted[tuple(THREE)], True),
        ),
        "ours dense only (precomputed)": ("ours", ours(enc2, "dense")),
        "ours bm25 only": ("ours", ours(enc2, "bm25")),
    }

    with tempfile.TemporaryDirectory(prefix="lancedb-bench-") as folder:
        vecs = col.vectors(data.doc_ids)
        tbl, build_s = lancedb_table(folder, data.doc_ids, data.documents(), vecs)

        def lance_hybrid(i):
            q = (
                tbl.search(query_type="hybrid")
                .vector(qvecs[i])
                .text(qtexts[i])
                .distance_type("dot")
                .rerank(RRFReranker())  # the default reranker, named to be explicit
                .select(["id"])
                .limit(K)
            )
            return q.to_arrow().column("id").to_pylist()

        def lance_vector(i):
            q = tbl.search(qvecs[i], query_type="vector").distance_type("dot")
            return q.select(["id", "_distance"]).limit(K).to_arrow().column("id").to_pylist()

        def lance_fts(i):
            q = tbl.search(qtexts[i], query_type="fts").select(["id", "_score"]).limit(K)
            return q.to_arrow().column("id").to_pylist()

        runs["LanceDB hybrid RRF (precomputed)"] = ("lancedb", lance_hybrid)
        runs["LanceDB vector only (precomputed)"] = ("lancedb", lance_vector)
        runs["LanceDB FTS only"] = ("lancedb", lance_fts)

        pooled: dict[str, list[float]] = {label: [] for label in runs}
        lists_of: dict[str, list[list]] = {}
        for _ in range(max(1, args.rounds)):
            for label, (engine, fn) in runs.items():
                with quiet_stderr(engine == "lancedb"):
                    lat, lists_of[label] = timed(fn, n, args.warmup)
                pooled[label].extend(lat)
        rows: dict[str, dict[str, Any]] = {}
        for label, (engine, _) in runs.items():
            rows[label] = {
                "engine": engine,
                **summary(pooled[label], lists_of[label], qids, data.qrels),
            }
            print(f"{label:62s} {rows[label]}", flush=True)

    lance = rows["LanceDB hybrid RRF (precomputed)"]
    for label, r in rows.items():
        if r["engine"] == "ours" and "+" in label:
            r["lancedb_hybrid_p50_over_ours_p50"] = round(lance["p50_ms"] / r["p50_ms"], 1)
            r["ndcg@10_minus_lancedb_hybrid"] = round(r["ndcg@10"] - lance["ndcg@10"], 4)
    pairs = {
        "bm25+dense RRF vs LanceDB hybrid RRF": "ours bm25+dense RRF k=60 (precomputed)",
        "bm25+dense fitted vs LanceDB hybrid RRF": "ours bm25+dense fitted on train (precomputed)",
        "bm25+dense RRF, depth 10 (LanceDB's budget) vs LanceDB hybrid RRF": (
            "ours bm25+dense RRF k=60, depth 10 (precomputed)"
        ),
        "bm25+dense fitted, depth 10 (LanceDB's budget) vs LanceDB hybrid RRF": (
            "ours bm25+dense fitted on train, depth 10 (precomputed)"
        ),
    }
    target = {
        name: {
            "ratio": rows[label]["lancedb_hybrid_p50_over_ours_p50"],
            "ndcg_ours": rows[label]["ndcg@10"],
            "ndcg_lancedb": lance["ndcg@10"],
            "met (>=20x, nDCG >=)": rows[label]["lancedb_hybrid_p50_over_ours_p50"] >= 20
            and rows[label]["ndcg@10"] >= lance["ndcg@10"],
        }
        for name, label in pairs.items()
    }
    two = rows["ours bm25+dense fitted on train (precomputed)"]
    three_vs_two = {
        label: {
            "p50_over_two_leg_p50": round(r["p50_ms"] / two["p50_ms"], 2),
            "ndcg@10": r["ndcg@10"],
            "two_leg_ndcg@10": two["ndcg@10"],
        }
        for label, r in rows.items()
        if label.startswith("ours bm25+splade+dense fitted on train") and "precomputed" in label
    }
    out = {
        "machine": {
            **machine(),
            "load_average_at_start": [round(x, 2) for x in load_start],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "lancedb_version": lancedb.__version__,
        "dataset": "scifact",
        "n_docs": len(col),
        "n_queries": n,
        "k": K,
        "warmup_queries": args.warmup,
        "rounds": args.rounds,
        "models": {"dense": col.manifest.encoder, "splade": col.manifest.splade_encoder},
        "fitted_fusions": {
            **{"+".join(k): f.to_dict() for k, f in fitted.items()},
            "bm25+dense depth 10": fitted10.to_dict(),
        },
        "lancedb_setup": {
            "table_and_fts_index_seconds": round(build_s, 2),
            "fts": "native Lance inverted index (FTS(), use_tantivy off), defaults",
            "vector": "no vector index (exact scan), distance_type dot",
            "hybrid": "query_type='hybrid', default RRFReranker (k=60); each sub-query "
            "fetches limit=10 rows",
        },
        "notes": [
            "ours hybrid takes 100 candidates per leg (default depth; rows marked depth 10 take "
            "10, LanceDB's budget) and looks up missing scores; LanceDB's hybrid takes `limit` "
            "(10) per leg",
            "nDCG@10 from the timed lists (docs scored by rank)",
            f"median query length {statistics.median(len(t.split()) for t in qtexts)} words",
        ],
        "rows": rows,
        "target_20x": target,
        "three_legs_vs_two": three_vs_two,
    }
    headers = ["method", "p50 ms", "p99 ms", "nDCG@10", "LanceDB hybrid p50 / this p50"]
    table = [
        [
            label,
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['ndcg@10']:.4f}",
            r.get("lancedb_hybrid_p50_over_ours_p50", "–"),
        ]
        for label, r in rows.items()
    ]
    print(markdown_table(headers, table))
    for name, t in target.items():
        print(name, t)
    print("wrote", write_results("hybrid_latency", out))


if __name__ == "__main__":
    main()
