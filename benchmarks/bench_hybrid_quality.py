"""Hybrid retrieval quality: single legs vs fused legs (fixed and fitted fusions) on four datasets.

Run:  .venv/bin/python -m benchmarks.bench_hybrid_quality [--datasets scifact cisi med cacm]

Each corpus is indexed into a three-leg collection under benchmarks/out/hybrid-<name>/ (reused on
a re-run): dense (bundled all-MiniLM-L6-v2), BM25 (Lucene k1=1.2, b=0.75, English analyzer) and
learned sparse (bundled SPLADE-tiny). The dense vectors are copied from benchmarks/out/dense-<name>/
(built by ``benchmarks.bench_dense`` with the same model) when that collection exists, so only
SPLADE encodes documents; otherwise they are encoded.

The test queries are encoded once for every leg, then searched (k=100) by
  * each single leg: bm25, splade ("sparse" mode), dense;
  * each leg set bm25+dense, splade+dense, bm25+splade, bm25+splade+dense fused with an
    equal-weight convex combination of min-max scores (the default), RRF (k=60) and DBSF;
  * a fitted fusion (``Collection.fit_fusion``, grid over convex weights x normalisations, RRF,
    DBSF, maximising nDCG@10) for each leg set. SciFact: fitted on its TRAIN split only and
    evaluated on test. Every dataset (SciFact too): 2-fold cross-validation over the test queries
    (seeded split; fit on one half, search the other, pool both halves' runs, evaluate once), so
    no query is ever scored by a fusion fitted on it.
Reported: nDCG@10 and Recall@100 (ir-measures), with the fitted fusions' parameters.
Writes benchmarks/results/hybrid_quality.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

import numpy as np

from benchmarks.common import BEIR, CACHE, machine, markdown_table, write_results
from granite_index import Collection
from granite_index.eval import evaluate, load_beir, run_from_result
from granite_index.fusion import DBSF, RRF, ConvexFusion
from granite_index.search import EncodedQueries

DATASETS = ["scifact", "cisi", "med", "cacm"]
K = 100
CHUNK = 2048
CV_SEED = 0
#: leg names as ``Collection.search`` modes; "sparse" is the SPLADE leg
LEG_SETS = [
    ("bm25", "dense"),
    ("sparse", "dense"),
    ("bm25", "sparse"),
    ("bm25", "sparse", "dense"),
]
LABEL = {"bm25": "bm25", "sparse": "splade", "dense": "dense"}
FIXED_FUSIONS = {
    "convex-minmax equal": lambda legs: ConvexFusion({leg: 1.0 for leg in legs}, "minmax"),
    "rrf k=60": lambda legs: RRF(k=60),
    "dbsf": lambda legs: DBSF(),
}
ANCHORS = {
    "source": "Granite Embedding paper (arXiv 2502.20204) / MTEB; SciFact test nDCG@10 x100",
    "granite-embedding-30m-english": 71.3,
    "granite-embedding-30m-sparse": 71.4,
    "bge-small-en-v1.5": 71.3,
    "bge-base-en-v1.5": 74.0,
    "issue_target": "SciFact test nDCG@10 >= 0.72 for the train-fitted hybrid",
}


def legs_label(legs: tuple[str, ...]) -> str:
    return "+".join(LABEL[leg] for leg in legs)


def build(name: str, data) -> tuple[Collection, dict[str, Any]]:
    """The three-leg collection of ``name``: reopened, completed, or built (resumable chunks)."""
    path = CACHE / f"hybrid-{name}"
    if (path / "manifest.json").exists():
        col = Collection.open(path)
    else:
        col = Collection.create(path, sparse=["bm25", "splade"])
    dense_path = CACHE / f"dense-{name}"
    source = None
    if (dense_path / "manifest.json").exists():
        source = Collection.open(dense_path)
        if source.manifest.encoder != col.manifest.encoder:
            print(f"{dense_path}: another dense encoder; encoding instead", flush=True)
            source = None
    docs = data.documents()
    todo = [i for i, doc_id in enumerate(data.doc_ids) if doc_id not in col]
    t0 = time.perf_counter()
    for start in range(0, len(todo), CHUNK):
        part = todo[start : start + CHUNK]
        ids = [data.doc_ids[i] for i in part]
        vecs = None
        if source is not None and all(i in source for i in ids):
            vecs = source.vectors(ids)
        print(f"{name}: adding {len(ids)} docs ({start + len(ids)}/{len(todo)})", flush=True)
        col.add(ids, [docs[i] for i in part], vectors=vecs, show_progress=True)
    seconds = time.perf_counter() - t0
    info = {
        "path": str(path.relative_to(CACHE.parents[1])),
        "added": len(todo),
        "add_seconds": round(seconds, 1) if todo else None,
        "dense_vectors_from": str(dense_path.relative_to(CACHE.parents[1])) if source else None,
    }
    return col, info


def subset(enc: EncodedQueries, rows: np.ndarray) -> EncodedQueries:
    """The queries ``rows`` of ``enc`` (every leg's input sliced alike)."""
    return enc.take(rows)


def scores_of(qrels, run) -> dict[str, float]:
    return {m: round(v, 4) for m, v in evaluate(qrels, run).items()}


def fit_on(col, enc, qids, qrels, legs) -> tuple[Any, dict[str, Any]]:
    """Fit the fusion of ``legs`` on (enc, qids, qrels); returns the strategy and its record."""
    t0 = time.perf_counter()
    fit = col.fit_fusion(
        enc, {q: qrels[q] for q in qids}, qids, legs=list(legs), save=False, metric="nDCG@10"
    )
    return fit.fusion, {
        "fusion": fit.fusion.to_dict(),
        "train_ndcg@10": round(fit.score, 4),
        "n_train_queries": len(qids),
        "grid_size": len(fit.table),
        "fit_seconds": round(time.perf_counter() - t0, 2),
    }


def dataset(name: str) -> dict[str, Any]:
    data = load_beir(BEIR / name, split="test")
    col, build_info = build(name, data)
    qids, qtexts = data.eval_queries()
    t0 = time.perf_counter()
    enc = col.encode_queries(qtexts)
    encode_s = time.perf_counter() - t0
    methods: dict[str, dict[str, Any]] = {}

    def record(label, res, **extra):
        methods[label] = {**scores_of(data.qrels, run_from_result(res, qids)), **extra}
        print(f"{name:8s} {label:45s} nDCG@10 {methods[label]['ndcg@10']:.4f}", flush=True)

    for leg in ("bm25", "sparse", "dense"):
        record(LABEL[leg], col.search(enc, k=K, mode=leg), kind="single", legs=[leg])
    for legs in LEG_SETS:
        for fname, make in FIXED_FUSIONS.items():
            fusion = make(legs)
            res = col.search(enc, k=K, mode="hybrid", legs=list(legs), fusion=fusion)
            record(
                f"{legs_label(legs)} {fname}",
                res,
                kind="hybrid",
                legs=list(legs),
                fusion=fusion.to_dict(),
            )

    # fitted on the train split (SciFact only: the other sets have no train queries)
    if name == "scifact":
        train = load_beir(BEIR / name, split="train")
        tq, tt = train.eval_queries()
        tenc = col.encode_queries(tt)
        for legs in LEG_SETS:
            fusion, info = fit_on(col, tenc, tq, train.qrels, legs)
            res = col.search(enc, k=K, mode="hybrid", legs=list(legs), fusion=fusion)
            record(
                f"{legs_label(legs)} fitted (train split)",
                res,
                kind="fitted",
                protocol="fit on the train split, evaluated on test",
                legs=list(legs),
                fit=info,
            )

    # 2-fold cross-validation over the test queries
    order = list(range(len(qids)))
    random.Random(CV_SEED).shuffle(order)
    half = (len(order) + 1) // 2
    folds = [np.array(sorted(order[:half])), np.array(sorted(order[half:]))]
    for legs in LEG_SETS:
        pooled: dict[str, dict[str, float]] = {}
        fold_info = []
        for f in (0, 1):
            train_rows, test_rows = folds[f], folds[1 - f]
            fusion, info = fit_on(
                col, subset(enc, train_rows), [qids[i] for i in train_rows], data.qrels, legs
            )
            res = col.search(
                subset(enc, test_rows), k=K, mode="hybrid", legs=list(legs), fusion=fusion
            )
            run = run_from_result(res, [qids[i] for i in test_rows])
            assert not set(run) & set(pooled)
            pooled.update(run)
            fold_info.append({**info, "n_test_queries": len(test_rows)})
        assert len(pooled) == len(qids)
        methods[f"{legs_label(legs)} fitted (2-fold CV)"] = {
            **scores_of(data.qrels, pooled),
            "kind": "fitted-cv",
            "protocol": f"2-fold CV over test queries (seed {CV_SEED}); runs of both held-out "
            "halves pooled, evaluated once",
            "legs": list(legs),
            "folds": fold_info,
        }
        print(
            f"{name:8s} {legs_label(legs) + ' fitted (2-fold CV)':45s} "
            f"nDCG@10 {methods[f'{legs_label(legs)} fitted (2-fold CV)']['ndcg@10']:.4f}",
            flush=True,
        )

    singles = {k: v for k, v in methods.items() if v["kind"] == "single"}
    hybrids = {k: v for k, v in methods.items() if v["kind"] != "single"}
    check = {}
    for metric in ("ndcg@10", "recall@100"):
        bs = max(singles, key=lambda k: singles[k][metric])
        bh = max(hybrids, key=lambda k: hybrids[k][metric])
        check[metric] = {
            "best_single": bs,
            "best_single_value": singles[bs][metric],
            "best_hybrid": bh,
            "best_hybrid_value": hybrids[bh][metric],
            "hybrid_ge_single": hybrids[bh][metric] >= singles[bs][metric],
        }
    return {
        "dataset": name,
        "n_docs": len(col),
        "n_queries": len(qids),
        "build": build_info,
        "query_encode_seconds": round(encode_s, 2),
        "methods": methods,
        "best_hybrid_vs_best_single": check,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", nargs="*", default=DATASETS)
    args = ap.parse_args()

    results = [dataset(name) for name in args.datasets]
    first = Collection.open(CACHE / f"hybrid-{args.datasets[0]}") if args.datasets else None
    out = {
        "machine": machine(),
        "models": None
        if first is None
        else {
            "dense": first.manifest.encoder,
            "bm25": first.manifest.sparse_index,
            "splade": first.manifest.splade_encoder,
        },
        "k": K,
        "notes": {
            "published_anchors_ndcg@10_x100": ANCHORS,
            "fitted": "fit_fusion grid: convex weights (step 0.05 for 2 legs, 0.1 for 3) x "
            "{minmax, zscore, theoretical}, RRF k in {20, 60}, DBSF; maximises nDCG@10",
            "splade": "'splade' rows are the collection's learned-sparse leg (mode='sparse')",
        },
        "datasets": {r["dataset"]: r for r in results},
    }
    labels = list(results[0]["methods"]) if results else []
    for r in results[1:]:
        labels += [m for m in r["methods"] if m not in labels]
    headers = ["method"] + [f"{r['dataset']} {m}" for r in results for m in ("nDCG@10", "R@100")]
    rows = []
    for label in labels:
        row = [label]
        for r in results:
            m = r["methods"].get(label)
            row += [f"{m['ndcg@10']:.4f}", f"{m['recall@100']:.4f}"] if m else ["–", "–"]
        rows.append(row)
    print(markdown_table(headers, rows))
    for r in results:
        c = r["best_hybrid_vs_best_single"]
        for metric, v in c.items():
            print(
                f"{r['dataset']} {metric}: best hybrid {v['best_hybrid']} {v['best_hybrid_value']}"
                f" vs best single {v['best_single']} {v['best_single_value']}"
                f" -> {'>=' if v['hybrid_ge_single'] else '<'}"
            )
    print("wrote", write_results("hybrid_quality", out))


if __name__ == "__main__":
    main()
