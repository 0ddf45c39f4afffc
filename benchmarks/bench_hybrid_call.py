"""The latency of one hybrid search call, alone: no other engine in the process.

Run:  .venv/bin/python -m benchmarks.bench_hybrid_call [--fusion rrf|convex] [--depth 10]

Needs benchmarks/out/hybrid-scifact/ (built by ``benchmarks.bench_hybrid_quality``). The 300
SciFact test queries are encoded once for the BM25 and dense legs; then ``col.search(enc, k=10,
mode="hybrid", legs=["bm25", "dense"], ...)`` plus the mapping to document ids is timed per query,
``--passes`` times over all queries after 50 untimed ones. Reported: the median over passes of
each pass's p50, in ms. Meant for ``benchmarks.ab_revisions`` (with ``--bench-from-here``) to
compare two revisions on exactly this call. Writes benchmarks/results/hybrid_call.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.common import BEIR, CACHE, machine, write_results
from granite_index import Collection
from granite_index.eval import load_beir
from granite_index.fusion import RRF, ConvexFusion

LEGS = ["bm25", "dense"]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--fusion", choices=["rrf", "convex"], default="rrf")
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--passes", type=int, default=7)
    args = ap.parse_args()
    col = Collection.open(CACHE / "hybrid-scifact")
    _, texts = load_beir(BEIR / "scifact").eval_queries()
    enc = [col.encode_queries([t], LEGS) for t in texts]
    fusion = RRF(60) if args.fusion == "rrf" else ConvexFusion({g: 1.0 for g in LEGS}, "minmax")

    def call(e):
        kw = {"legs": LEGS, "fusion": fusion, "depth": args.depth, "threads": 1}
        return col.search(e, k=10, mode="hybrid", **kw).doc_ids()

    for e in enc[:50]:
        call(e)
    p50s = []
    for _ in range(args.passes):
        times = []
        for e in enc:
            t0 = time.perf_counter()
            call(e)
            times.append(time.perf_counter() - t0)
        p50s.append(statistics.median(times) * 1e3)
    out = {
        "machine": machine(),
        "fusion": args.fusion,
        "depth": args.depth,
        "n_queries": len(enc),
        "passes_p50_ms": [round(x, 4) for x in p50s],
        "p50_ms": round(statistics.median(p50s), 4),
    }
    print(f"hybrid call p50 {out['p50_ms']} ms ({args.fusion}, depth {args.depth})")
    print("wrote", write_results("hybrid_call", out))


if __name__ == "__main__":
    main()
