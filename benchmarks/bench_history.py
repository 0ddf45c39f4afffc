"""What history costs: many small commits against one big one, before and after ``optimize()``.

Run:  .venv/bin/python -m benchmarks.bench_history [--commits 1000] [--per-commit 10]

Documents: the abstracts of SciFact, CACM, CISI and MED in that order (real text, for BM25), each
with a 384-d unit vector drawn from a seeded normal distribution (given as ``vectors=``, standing
in for the bundled all-MiniLM-L6-v2's, whose encoder is loaded but not run). Two collections
(BM25 + flat dense) get the same ``--commits x --per-commit`` documents:
  * "small commits": one ``add`` per ``--per-commit`` documents (the automatic optimize runs
    every 256 writes, as it does for any user), then one explicit ``optimize()``;
  * "one commit": a single ``add`` of all of them.
Reported for each: disk bytes and files under the collection folder, Lance fragments and
versions, and the time to open it (``Collection.open`` + ``len``, median of 15, the collections
opened in turn in this process; the optimized one scaled to the same one-commit baseline).
Goal: after optimize, disk and open time within 1.5x of the one-commit collection. No reader
holds an older commit here, so the readers' grace for old Lance versions is set to 0 (by default
versions younger than two minutes stay, which would keep every version of this fast run).
Writes benchmarks/results/history.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import lance
import numpy as np

from benchmarks.common import BEIR, machine, markdown_table, write_results
from granite_index import Collection, DenseEncoder
from granite_index.collection import store
from granite_index.eval import load_beir

SOURCES = ("scifact", "cacm", "cisi", "med")


def corpus(n: int) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for name in SOURCES:
        data = load_beir(BEIR / name)
        for doc_id, text in zip(data.doc_ids, data.documents()):
            if text.strip():
                ids.append(f"{name}-{doc_id}")
                texts.append(text)
    if len(ids) < n:
        raise SystemExit(f"only {len(ids)} documents in {SOURCES}; ask for fewer")
    return ids[:n], texts[:n]


def footprint(path: Path) -> dict:
    files = [Path(d) / f for d, _, fs in os.walk(path) for f in fs]
    ds = lance.dataset(path / "docs.lance")
    return {
        "bytes": sum(f.stat().st_size for f in files),
        "files": len(files),
        "lance_fragments": len(ds.get_fragments()),
        "lance_versions": len(ds.versions()),
    }


def open_seconds(paths: list[Path], encoder: DenseEncoder, repeats: int = 15) -> list[float]:
    """Median seconds to open each collection (``open`` + ``len``), the collections taken in
    turn so that a drift of the machine hits them alike."""
    times: list[list[float]] = [[] for _ in paths]
    for _ in range(repeats):
        for i, path in enumerate(paths):
            t0 = time.perf_counter()
            len(Collection.open(path, encoder=encoder))
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--per-commit", type=int, default=10)
    args = ap.parse_args()
    store.READER_GRACE_SECONDS = 0.0
    n = args.commits * args.per_commit
    ids, texts = corpus(n)
    encoder = DenseEncoder()
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((n, encoder.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="granite-history-") as tmp:
        small = Collection.create(Path(tmp) / "small", encoder=encoder, sparse="bm25")
        t0 = time.perf_counter()
        for s in range(0, n, args.per_commit):
            e = s + args.per_commit
            small.add(ids[s:e], texts[s:e], vectors=vecs[s:e])
        add_s = time.perf_counter() - t0
        one = Collection.create(Path(tmp) / "one", encoder=encoder, sparse="bm25")
        t0 = time.perf_counter()
        one.add(ids, texts, vectors=vecs)
        one_s = time.perf_counter() - t0
        before, base = open_seconds([small.path, one.path], encoder)
        rows["small commits"] = {**footprint(small.path), "open_s": before, "add_s": add_s}
        t0 = time.perf_counter()
        small.optimize()
        optimize_s = time.perf_counter() - t0
        after, base2 = open_seconds([small.path, one.path], encoder)
        rows["small commits + optimize"] = {
            **footprint(small.path),
            "open_s": after * base / base2,  # against the same one-commit baseline
            "optimize_s": optimize_s,
        }
        rows["one commit"] = {**footprint(one.path), "open_s": base, "add_s": one_s}
        same = small.search(texts[:50], k=10, mode="bm25").doc_ids()
        assert same == one.search(texts[:50], k=10, mode="bm25").doc_ids()
    base = rows["one commit"]
    for row in rows.values():
        row["bytes_x_one_commit"] = round(row["bytes"] / base["bytes"], 2)
        row["open_x_one_commit"] = round(row["open_s"] / base["open_s"], 2)
        row["open_s"] = round(row["open_s"], 4)
    out = {
        "machine": machine(),
        "commits": args.commits,
        "per_commit": args.per_commit,
        "n_docs": n,
        "legs": ["bm25", "dense (flat, 384-d)"],
        "rows": rows,
    }
    print(
        markdown_table(
            [
                "collection",
                "MB",
                "files",
                "fragments",
                "Lance versions",
                "open ms",
                "x disk",
                "x open",
            ],
            [
                [
                    name,
                    round(r["bytes"] / 2**20, 1),
                    r["files"],
                    r["lance_fragments"],
                    r["lance_versions"],
                    round(r["open_s"] * 1e3, 1),
                    r["bytes_x_one_commit"],
                    r["open_x_one_commit"],
                ]
                for name, r in rows.items()
            ],
        )
    )
    print("wrote", write_results("history", out))


if __name__ == "__main__":
    main()
