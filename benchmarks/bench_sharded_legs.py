"""The cost of sharding a leg, in one process: SciFact split into 1, 2 and 4 shards against one
index of all its documents.

Run:  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_sharded_legs [--rounds 3]

Needs benchmarks/out/hybrid-scifact/ (built by ``benchmarks.bench_hybrid_quality``). From it: the
5,183 documents' texts, their MiniLM vectors and SPLADE vectors, the 300 test queries' encodings
(computed once, outside every timing) and its BM25 analyzer settings. Every index here is built
fresh from those, the single one and the shards alike (shard ``s`` holds document ``i`` when
``i % n == s``), so that only the sharding differs.

Timed, one query at a time on one thread, ``time.perf_counter`` around each call, p50 / p99 over
the queries of ``--rounds`` rounds (every method takes turns in each round): each leg's top 10,
and the BM25 + SPLADE + dense hybrid (default fusion, depth 100). nDCG@10 from the timed lists
checks that sharding changes no result. Writes benchmarks/results/sharded_legs.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import BEIR, CACHE, machine, markdown_table, write_results
from granite_index import Collection
from granite_index.encoders.analyzer import Analyzer
from granite_index.eval import evaluate, load_beir
from granite_index.index import DenseIndex, SparseIndex
from granite_index.search import Bm25Leg, DenseLeg, HybridSearcher, Leg, SpladeLeg
from granite_index.search.sharded import ShardedLeg

K = 10
DEPTH = 100
SHARDS = (1, 2, 4)


def build(keys, texts, vecs, rows, analyzer_cfg) -> dict[str, Leg]:
    """BM25, SPLADE and dense legs over the documents at ``keys`` (positions in the corpus)."""
    bm25 = SparseIndex("bm25", analyzer=Analyzer.from_config(analyzer_cfg))
    bm25.add_texts(np.arange(len(keys)), [texts[i] for i in keys])
    splade = SparseIndex("impact")
    sub = rows[keys]
    splade.add(np.arange(len(keys)), sub.indptr, sub.indices, sub.data)
    dense = DenseIndex(vecs.shape[1], "flat", device="cpu")
    dense.add(np.arange(len(keys)), vecs[keys])
    return {
        "bm25": Bm25Leg(bm25),
        "sparse": SpladeLeg(splade, lambda t: None),
        "dense": DenseLeg(dense, lambda t: None),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data = load_beir(BEIR / "scifact", split="test")
    col = Collection.open(CACHE / "hybrid-scifact")
    doc_ids = data.doc_ids
    texts = data.documents()
    n_docs = len(doc_ids)
    # the collection added the corpus in order: its keys are the corpus positions
    assert col.ids_of(np.arange(n_docs)[None])[0] == list(doc_ids), "unexpected key order"
    vecs = col.vectors(doc_ids).astype(np.float32)
    rows = _splade_rows(col.splade_index, n_docs)
    analyzer_cfg = col.bm25_index.analyzer.config
    qids, qtexts = data.eval_queries()
    enc = col.encode_queries(qtexts, legs=["bm25", "sparse", "dense"])
    one_q = [
        {
            "bm25": [qtexts[i]],
            "sparse": _row(enc.sparse, i),
            "dense": enc.dense[i : i + 1],
        }
        for i in range(len(qtexts))
    ]
    setups: dict[str, dict[str, Leg]] = {"one index": build(
        np.arange(len(doc_ids)), texts, vecs, rows, analyzer_cfg
    )}  # fmt: skip
    for n in SHARDS:
        parts = [
            build(np.arange(s, len(doc_ids), n), texts, vecs, rows, analyzer_cfg) for s in range(n)
        ]
        setups[f"{n} shard{'s' if n > 1 else ''}"] = {
            name: ShardedLeg([p[name] for p in parts]) for name in ("bm25", "sparse", "dense")
        }

    def global_doc(ids: np.ndarray) -> list[str]:
        # the single index's keys are corpus positions; a sharded leg's global ids are too
        # (shard s of n holds position s + j * n as its key j)
        return [doc_ids[i] for i in ids if i >= 0]

    methods: dict[tuple[str, str], Callable[[int], list[str]]] = {}
    for setup, legs in setups.items():
        for name, leg in legs.items():

            def one(i, leg=leg, name=name):
                return global_doc(leg.search(one_q[i][name], K, threads=1).ids[0])

            methods[(setup, name)] = one
        searcher = HybridSearcher(legs)

        def hybrid(i, searcher=searcher):
            return global_doc(searcher.search(one_q[i], K, DEPTH, threads=1)[0][0])

        methods[(setup, "hybrid")] = hybrid
    n_q = len(qtexts)
    lat: dict[tuple[str, str], list[float]] = {m: [] for m in methods}
    lists: dict[tuple[str, str], list[list[str]]] = {}
    for _ in range(max(1, args.rounds)):
        for m, fn in methods.items():
            for i in range(min(30, n_q)):
                fn(i)  # warm-up
            out = []
            for i in range(n_q):
                t0 = time.perf_counter()
                out.append(fn(i))
                lat[m].append(time.perf_counter() - t0)
            lists[m] = out
    rows_out: dict[str, dict[str, Any]] = {}
    for (setup, name), ms in lat.items():
        run = {
            q: {d: float(K - r) for r, d in enumerate(ids)}
            for q, ids in zip(qids, lists[(setup, name)])
        }
        x = np.array(ms) * 1e3
        rows_out[f"{setup} / {name}"] = {
            "setup": setup,
            "leg": name,
            "p50_ms": round(float(np.percentile(x, 50)), 3),
            "p99_ms": round(float(np.percentile(x, 99)), 3),
            "ndcg@10": round(evaluate(data.qrels, run, ("ndcg@10",))["ndcg@10"], 4),
        }
    for name in ("bm25", "sparse", "dense", "hybrid"):
        base = rows_out[f"one index / {name}"]["p50_ms"]
        for setup in setups:
            r = rows_out[f"{setup} / {name}"]
            r["p50_over_one_index"] = round(r["p50_ms"] / base, 2)
            r["overhead_ms"] = round(r["p50_ms"] - base, 3)
    out = {
        "machine": machine(),
        "dataset": "scifact",
        "n_docs": len(doc_ids),
        "n_queries": n_q,
        "k": K,
        "depth": DEPTH,
        "rounds": args.rounds,
        "rows": rows_out,
    }
    table = markdown_table(
        ["setup", "leg", "p50 ms", "p99 ms", "p50 / one index", "nDCG@10"],
        [
            [r["setup"], r["leg"], f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}",
             f"{r['p50_over_one_index']:.2f}", f"{r['ndcg@10']:.4f}"]
            for r in rows_out.values()
        ],
    )  # fmt: skip
    print(table)
    print("wrote", write_results("sharded_legs", out))


def _row(sv, i):
    a, b = sv.indptr[i], sv.indptr[i + 1]
    return (np.array([0, b - a]), sv.indices[a:b].astype(np.int64), sv.values[a:b])


def _splade_rows(index: SparseIndex, n_docs: int):
    """The documents' SPLADE vectors as a CSR matrix by key, read back from the collection's
    impact index (its document-major copy per segment)."""
    import scipy.sparse as sp

    assert index.n_alive == index.n_positions == n_docs, "the collection has deleted documents"
    parts = []
    for seg in index.segments:
        ptr, terms, w = seg.forward()
        parts.append(sp.csr_matrix((w, terms, ptr), shape=(seg.n_docs, int(index.df.shape[0]))))
    m = sp.vstack(parts).tocsr()
    order = np.argsort(index.keys[:n_docs])  # rows by position → rows by key
    return m[order]


if __name__ == "__main__":
    main()
