"""Scale benchmark: a collection of synthetic documents (BM25 + 384-d vectors given with
``vectors=``, no encoding) at growing sizes, with LanceDB on the same data as the anchor.

Run:  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_scale --sizes 100000 1000000 --lancedb 100000

Data: :class:`benchmarks.scale_data.ScaleCorpus` (text drawn from the real BEIR corpora's
distributions, topical and bursty; vectors from a Gaussian mixture tied to each document's topic).
Each document carries ``{"bucket": id % 100}`` as metadata (a typed column), the filter column.

Measured per size, in this order, one process (open and RSS in fresh subprocesses):

1. Bulk ingest: ``Collection.add`` of ``--batch`` documents at a time (the corpus is generated
   outside the timing): docs/s. Then ``optimize()`` once (timed apart: merges the segments and
   builds the IVF lists over them), up to ``--optimize-max`` documents; past it the segments the
   bulk adds made (each with its own IVF lists) are searched as they are. No other process
   reads the collection, so the benchmark sets the reader grace to 0: Lance versions replaced
   by compaction are removed at once, and disk figures count what the collection holds.
2. Commits: ``--repeats`` adds of 1,000 new documents, then as many deletes of 1,000 random
   existing ids (each one commit, fsynced): median and max seconds.
3. Open (``Collection.open`` in a fresh process, median of 3; then the first dense query, which
   reads what open left on disk) and VmRSS after import, after open (and so what opening adds)
   and after 1,000 queries (hybrid BM25 + dense, one at a time); bytes on disk per document,
   against (vector bytes + text bytes + BM25 postings x 8 bytes).
4. Latency, one query at a time, ``--queries`` queries, k = 10: p50 / p99 ms per mode: ``bm25``;
   ``dense`` exact and approximate (IVF, the collection's own default switch) with recall@10
   against exact; standalone :class:`DenseIndex` indexes on the same vectors (up to ``CODES_MAX``
   documents): ``hnsw`` (graph build timed on the first search; ``ef_search`` 128 and 32) and
   ``int8`` and ``binary`` codes (rescored), each with recall@10; ``hybrid`` (BM25 + dense,
   default fusion) exact and approximate, recall@10 of approximate against exact hybrid;
   filtered dense and hybrid search at 1 %, 10 % and 50 % selectivity (``bucket < 1 / 10 / 50``)
   with recall@10 against exact filtered results and the fraction of queries with fewer than k
   hits.

Writes ``benchmarks/results/scale.json`` (one entry per size; with ``--lancedb``, LanceDB's figures
on the same data from :mod:`benchmarks.scale_lancedb` beside them, run right after) and prints a
table.
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
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import CACHE, RESULTS, machine, markdown_table, write_results
from benchmarks.scale_data import ScaleCorpus
from benchmarks.scale_lancedb import K, _disk, _latency, _recall

N_CHANGE = 1_000
FILTERS = {"1%": "bucket < 1", "10%": "bucket < 10", "50%": "bucket < 50"}
#: largest collection whose vectors the int8 / binary comparison copies into memory
CODES_MAX = 2_000_000

_PROBE = r"""
import json, sys, time
import numpy as np

def rss_kib(field="VmRSS:"):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

path, qfile, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
from granite_index import Collection
from granite_index.search import EncodedQueries
sys.path.insert(0, ".")
from tests.hashing import HashingEncoder
rss_import = rss_kib()
t0 = time.perf_counter()
col = Collection.open(path, encoder=HashingEncoder(384))
open_s = time.perf_counter() - t0
rss_open = rss_kib()
out = {"open_s": open_s, "rss_after_import_kib": rss_import, "rss_after_open_kib": rss_open,
       "rss_anon_after_open_kib": rss_kib("RssAnon:")}
q = json.load(open(qfile + ".json")); v = np.load(qfile + ".npy")
t0 = time.perf_counter()
col.search(EncodedQueries(1, texts=[q[0]], dense=v[0:1]), k=10, mode="dense")
out["first_dense_query_s"] = time.perf_counter() - t0
if n:
    t0 = time.perf_counter()
    for i in range(n):
        j = i % len(q)
        col.search(EncodedQueries(1, texts=[q[j]], dense=v[j : j + 1]), k=10, mode="hybrid")
    out["queries_s"] = time.perf_counter() - t0
    out["rss_after_queries_kib"] = rss_kib()
    out["rss_anon_after_queries_kib"] = rss_kib("RssAnon:")
    out["rss_file_after_queries_kib"] = rss_kib("RssFile:")
print(json.dumps(out))
"""


def _probe(path: Path, qfile: Path, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), str(qfile), str(n)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(Path.cwd())},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def build(
    path: Path, corpus: ScaleCorpus, n_docs: int, batch: int, optimize: bool = True
) -> dict[str, Any]:
    from granite_index import Collection
    from granite_index.collection import store
    from granite_index.collection.spec import Bm25Spec, DenseSpec
    from tests.hashing import HashingEncoder

    shutil.rmtree(path, ignore_errors=True)
    col = Collection.create(path, [DenseSpec(encoder=HashingEncoder(corpus.dim)), Bm25Spec()])
    add_s, text_bytes = 0.0, 0
    for start in range(0, n_docs, batch):
        ids, texts, vecs, _ = corpus.batch(start, min(batch, n_docs - start))
        text_bytes += sum(len(t.encode()) for t in texts)
        meta = [{"bucket": i % 100} for i in ids]
        add_s += _timed(lambda: col.add(ids, texts, meta, vectors=vecs))  # noqa: B023
        print(f"  added {start + len(ids):,} ({add_s:.1f} s)", flush=True)
    # No reader is open: old Lance versions go at once (no reader grace), so that disk figures
    # count what the collection holds, not the versions a compaction has just replaced.
    store.READER_GRACE_SECONDS = 0.0
    optimize_s = _timed(col.optimize) if optimize else None
    return {
        "col": col,
        "ingest_docs_per_s": round(n_docs / add_s, 1),
        "ingest_s": round(add_s, 2),
        "optimize_s": None if optimize_s is None else round(optimize_s, 2),
        "text_bytes": text_bytes,
    }


def commits(col, corpus: ScaleCorpus, n_docs: int, repeats: int) -> dict[str, Any]:
    adds, deletes = [], []
    for r in range(repeats):
        ids, texts, vecs, _ = corpus.batch(10**9 + r * N_CHANGE, N_CHANGE)
        meta = [{"bucket": i % 100} for i in ids]
        adds.append(_timed(lambda: col.add(ids, texts, meta, vectors=vecs)))  # noqa: B023
    rng = np.random.default_rng(1)
    for _ in range(repeats):
        gone = rng.choice(n_docs, N_CHANGE, replace=False)
        gone = [int(i) for i in gone if int(i) in col][:N_CHANGE]
        deletes.append(_timed(lambda: col.delete(gone)))  # noqa: B023
    return {
        "add_1000_s": {"median": round(statistics.median(adds), 4), "max": round(max(adds), 4)},
        "delete_1000_s": {
            "median": round(statistics.median(deletes), 4),
            "max": round(max(deletes), 4),
        },
    }


def latencies(col, corpus: ScaleCorpus, n_queries: int) -> dict[str, Any]:
    from granite_index.index import DenseIndex
    from granite_index.search import EncodedQueries

    texts, vecs, _ = corpus.queries(n_queries)
    enc = [EncodedQueries(1, texts=[texts[i]], dense=vecs[i : i + 1]) for i in range(n_queries)]

    def run(**kw):
        return _latency(lambda i: col.search(enc[i], k=K, **kw).doc_ids()[0], n_queries)

    out: dict[str, Any] = {}
    out["bm25"], _ = run(mode="bm25")
    out["dense_exact"], exact = run(mode="dense", exact=True)
    out["dense_default"], approx = run(mode="dense")
    out["dense_default"]["recall_at_10"] = _recall(approx, exact)
    cfg = col.dense_index.config
    out["dense_default"]["approximate"] = cfg.kind != "flat" and len(col) >= cfg.approximate_from
    for nprobe in (8, 48):
        name = f"dense_ivf_nprobe{nprobe}"
        out[name], got = run(mode="dense", exact=False, nprobe=nprobe)
        out[name]["recall_at_10"] = _recall(got, exact)
    out["hybrid_exact"], h_exact = run(mode="hybrid", exact=True)
    out["hybrid_default"], h_approx = run(mode="hybrid")
    out["hybrid_default"]["recall_at_10"] = _recall(h_approx, h_exact)
    for name, where in FILTERS.items():
        e = f"dense_filter_{name}_exact"
        a = f"dense_filter_{name}"
        out[e], f_exact = run(mode="dense", exact=True, where=where)
        out[a], f_approx = run(mode="dense", where=where)
        out[a]["recall_at_10"] = _recall(f_approx, f_exact)
        h = f"hybrid_filter_{name}"
        out[h], _ = run(mode="hybrid", where=where)
    if len(col) > CODES_MAX:  # the standalone copy below holds every vector in memory
        return out
    # quantised codes: a standalone index on the collection's vectors (same data)
    dense = col.dense_index
    keys = dense.ids
    all_vecs = dense.vectors(keys)
    want = [keys[np.argsort(-(all_vecs @ v))[:K]].tolist() for v in vecs]
    # HNSW: a standalone index of kind "hnsw" (one segment; its graph is built by the first
    # search, timed as build_s), at the default beam and a narrow one
    idx = DenseIndex(corpus.dim, "hnsw", device="cpu", ivf_min=1)
    idx.add(keys, all_vecs)
    build_s = _timed(lambda: idx.search(vecs[0], K))
    for ef in (idx.config.ef_search, 32):
        name = f"dense_hnsw_ef{ef}"
        out[name], got = _latency(
            lambda i: idx.search(vecs[i], K, ef_search=ef).ids[0].tolist(),  # noqa: B023
            n_queries,
        )
        out[name]["recall_at_10"] = _recall(got, want)
        out[name]["build_s"] = round(build_s, 2)
        out[name]["m"] = idx.config.hnsw_m
        out[name]["ef_construction"] = idx.config.ef_construction
    del idx
    for quant, rescore in (("int8", 100), ("binary", 200)):
        idx = DenseIndex(corpus.dim, "ivf", device="cpu", quantization=quant, ivf_min=10**12)
        t0 = time.perf_counter()
        idx.add(keys, all_vecs)
        build_s = time.perf_counter() - t0
        name = f"dense_{quant}_rescore{rescore}"
        # int8 codes are scanned in numpy (slow): fewer queries past 200k documents
        nq = n_queries if quant == "binary" or len(keys) <= 200_000 else 20
        out[name], got = _latency(
            lambda i: idx.search(vecs[i], K, rescore=rescore).ids[0].tolist(),  # noqa: B023
            nq,
        )
        out[name]["recall_at_10"] = _recall(got, want[:nq])
        out[name]["queries"] = nq
        out[name]["code_bytes_per_doc"] = round(idx.segments[0].codes.nbytes / len(keys), 1)
        out[name]["build_s"] = round(build_s, 2)
    return out


def disk(col, text_bytes: int, n_docs: int, dim: int) -> dict[str, Any]:
    d = _disk(Path(col.path), n_docs)
    postings = col.bm25_index.n_postings
    floor = n_docs * dim * 4 + text_bytes + postings * 8
    d["floor_bytes_per_doc"] = round(floor / n_docs, 1)
    d["ratio_to_floor"] = round(d["bytes"] / floor, 3)
    return d


def run_size(n_docs: int, args) -> dict[str, Any]:
    corpus = ScaleCorpus()
    path = CACHE / f"scale-{n_docs}"
    print(f"granite-index, {n_docs:,} documents", flush=True)
    optimize = n_docs <= args.optimize_max
    built = build(path, corpus, n_docs, args.batch, optimize)
    col = built.pop("col")
    result: dict[str, Any] = {"n_docs": n_docs, **built}
    result["commits"] = commits(col, corpus, n_docs, args.repeats)
    if optimize:
        col.optimize()
    result["segments"] = {"dense": len(col.dense_index.segments)}
    result["disk"] = disk(col, built["text_bytes"], len(col), corpus.dim)
    qtexts, qvecs, _ = corpus.queries(args.queries)
    qfile = CACHE / "scale-queries"
    (qfile.with_suffix(".json")).write_text(json.dumps(qtexts))
    np.save(qfile.with_suffix(".npy"), qvecs)
    opens = [_probe(path, qfile, 0) for _ in range(3)]
    result["open_s"] = round(statistics.median(o["open_s"] for o in opens), 4)
    result["first_dense_query_after_open_s"] = round(
        statistics.median(o["first_dense_query_s"] for o in opens), 4
    )
    rss = _probe(path, qfile, 1000)
    result["rss_mib"] = {  # file-backed pages are memory-mapped index files (page cache)
        "after_import": round(rss["rss_after_import_kib"] / 1024, 1),
        "after_open": round(rss["rss_after_open_kib"] / 1024, 1),
        "anon_after_open": round(rss["rss_anon_after_open_kib"] / 1024, 1),
        "after_1000_queries": round(rss["rss_after_queries_kib"] / 1024, 1),
        "anon_after_1000_queries": round(rss["rss_anon_after_queries_kib"] / 1024, 1),
        "file_after_1000_queries": round(rss["rss_file_after_queries_kib"] / 1024, 1),
    }
    result["latency"] = latencies(col, corpus, args.queries)
    print(json.dumps(result, indent=1), flush=True)
    return result


def _lat(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    rec = entry.get("recall_at_10")
    return f"{entry['p50_ms']:.2f}" + (f" ({rec:.3f})" if rec is not None else "")


def _rss_open(after_open: float, after_import: float) -> str:
    return f"{after_open} ({after_import}; {round(after_open - after_import, 1)})"


def table(results: dict[str, Any]) -> str:
    """One markdown table per size: granite-index beside LanceDB (when it ran at that size)."""
    out = []
    for size, r in results["granite"].items():
        lat = r["latency"]
        lance = results.get("lancedb", {}).get(size)
        lq = lance["queries"] if lance else {}
        hnsw = lq.get("ivf_hnsw_sq", {})
        pq = lq.get("ivf_pq", {})

        def lance_ann(key: str, pq=pq, hnsw=hnsw) -> str:
            best = [_lat(b.get(key)) for b in (pq, hnsw) if b.get(key)]
            return " / ".join(best) if best else "-"

        lance_ingest = None
        if lance:
            b = lance["index_build"]
            spent = lance["ingest"]["add_s"] + b["fts_text"]["s"] + b["ivf_pq_vector"]["s"]
            lance_ingest = f"{lance['ingest']['docs_per_s']} ({round(int(size) / spent, 1)})"

        rows = [
            [
                "bulk ingest, docs/s (LanceDB: add alone (with its FTS + IVF_PQ builds))",
                r["ingest_docs_per_s"],
                lance_ingest,
            ],
            [
                "add 1,000 docs (one commit), s: median / max",
                f"{r['commits']['add_1000_s']['median']} / {r['commits']['add_1000_s']['max']}",
                lance and lance["maintenance"]["add_1000_s"],
            ],
            [
                "add 1,000 docs, then all indexes up to date, s (LanceDB: add + optimize)",
                r["commits"]["add_1000_s"]["median"],
                lance
                and round(
                    lance["maintenance"]["add_1000_s"] + lance["maintenance"]["optimize_s"], 3
                ),
            ],
            [
                "delete 1,000 ids, s: median / max",
                f"{r['commits']['delete_1000_s']['median']} / {r['commits']['delete_1000_s']['max']}",
                lance and lance["maintenance"]["delete_1000_s"],
            ],
            ["open, s", r["open_s"], lance and lance["open"]["open_s_median_of_3"]],
            [
                "first dense query after open, s (LanceDB: first ANN query)",
                r.get("first_dense_query_after_open_s", "-"),
                lance and lance["open"]["first_ann_query_after_open_s_median"],
            ],
            [
                "RSS after open, MiB (after import; added by open)",
                _rss_open(r["rss_mib"]["after_open"], r["rss_mib"]["after_import"]),
                lance
                and _rss_open(
                    lance["rss"]["after_open_mib"], lance["rss"]["after_import_lancedb_mib"]
                ),
            ],
            [
                "RSS after 1,000 queries, MiB (anonymous)",
                f"{r['rss_mib']['after_1000_queries']} ({r['rss_mib'].get('anon_after_1000_queries')})",
                lance and lance["rss"]["after_1000_queries_mib"],
            ],
            [
                "disk, bytes/doc (x our floor)",
                f"{r['disk']['bytes_per_doc']} ({r['disk']['ratio_to_floor']}x)",
                lance and lance["disk_after_indexes"]["bytes_per_doc"],
            ],
            ["BM25 / FTS p50 ms", _lat(lat["bm25"]), _lat(lq.get("fts"))],
            ["dense exact p50 ms", _lat(lat["dense_exact"]), _lat(lq.get("vector_exact"))],
            [
                "dense default p50 ms (recall@10); LanceDB IVF_PQ / IVF_HNSW_SQ",
                _lat(lat["dense_default"]),
                lance_ann("vector_ann"),
            ],
            [
                "dense IVF nprobe 8 / 48",
                f"{_lat(lat['dense_ivf_nprobe8'])} / {_lat(lat['dense_ivf_nprobe48'])}",
                "-",
            ],
            [
                "dense HNSW (M 32), ef_search 128 / 32",
                f"{_lat(lat.get('dense_hnsw_ef128'))} / {_lat(lat.get('dense_hnsw_ef32'))}",
                "-",
            ],
            ["dense int8 codes, rescore 100", _lat(lat.get("dense_int8_rescore100")), "-"],
            ["dense binary codes, rescore 200", _lat(lat.get("dense_binary_rescore200")), "-"],
            [
                "hybrid BM25 + dense p50 ms (recall@10 vs exact hybrid); LanceDB RRF",
                _lat(lat["hybrid_default"]),
                _lat(lq.get("hybrid_rrf")),
            ],
        ]
        for name in FILTERS:
            rows.append(
                [
                    f"filtered {name}: dense exact / default (recall); LanceDB exact / ANN",
                    f"{_lat(lat[f'dense_filter_{name}_exact'])} / {_lat(lat[f'dense_filter_{name}'])}",
                    f"{_lat(lq.get(f'filtered_{name}_exact'))} / {lance_ann(f'filtered_{name}_ann')}"
                    if lance
                    else "-",
                ]
            )
            rows.append([f"filtered {name}: hybrid", _lat(lat[f"hybrid_filter_{name}"]), "-"])
        rows = [[a, b, "-" if c in (None, False) else c] for a, b, c in rows]
        out.append(
            f"**{int(size):,} documents**\n\n"
            + markdown_table(["", "granite-index", "LanceDB"], rows)
        )
    return "\n\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument(
        "--lancedb",
        type=int,
        nargs="*",
        default=[],
        help="sizes at which to run the LanceDB anchor",
    )
    ap.add_argument(
        "--lancedb-hnsw-max",
        type=int,
        default=100_000,
        help="largest size at which LanceDB also builds IVF_HNSW_SQ (slow to build)",
    )
    ap.add_argument("--keep", action="store_true", help="keep each size's collection on disk")
    ap.add_argument(
        "--optimize-max",
        type=int,
        default=2_000_000,
        help="largest size at which the collection is optimize()d after ingest (past it, the "
        "segments bulk adds made are searched as they are)",
    )
    args = ap.parse_args()
    out_file = RESULTS / "scale.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    results.setdefault("granite", {})
    results["machine"] = machine()
    for n in args.sizes:
        results["granite"][str(n)] = run_size(n, args)
        if n in args.lancedb:
            from benchmarks.scale_lancedb import run_lancedb

            results.setdefault("lancedb", {})[str(n)] = run_lancedb(
                n,
                CACHE / f"scale-lancedb-{n}",
                n_queries=args.queries,
                batch=args.batch,
                hnsw=n <= args.lancedb_hnsw_max,
            )
            shutil.rmtree(CACHE / f"scale-lancedb-{n}", ignore_errors=True)
        write_results("scale", results)
        if not args.keep:
            shutil.rmtree(CACHE / f"scale-{n}", ignore_errors=True)
    print(table(results))


if __name__ == "__main__":
    main()
