"""Versions of the sparse scoring kernels timed side by side: one process, one index, one query set.

Run:  .venv/bin/python -m benchmarks.ab_sparse_kernels 7a78155 HEAD [--n-docs 1000000] [--k 10 1000]

Each git revision's sparse scoring kernels (``granite_index/_kernels/sparse_scoring.py``, or
``granite_index/_sparse_kernels.py`` in revisions before the layered package) are loaded as
their own module and run
``score_topk`` on the same segment and BM25 cache (built by the current code), single-threaded,
for the 458 real queries of :mod:`benchmarks.bench_bm25` on its synthetic corpus. The versions
alternate within each repeat, so a drift of this shared machine hits them alike; medians of
``--repeats``. Results must agree: each version's top-k positions must equal the first's, and
the scores agree to float32 rounding (summation order may differ between versions).
Writes ``benchmarks/results/sparse_kernels_ab.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_bm25 import _as_lists, build_ours, load_real, query_arrays, synthetic
from benchmarks.common import ROOT, machine, markdown_table, write_results
from granite_index.encoders.analyzer import Analyzer, Vocabulary

#: where the sparse scoring kernels live, newest layout first
KERNELS = ("granite_index/_kernels/sparse_scoring.py", "granite_index/_sparse_kernels.py")


def git(*args: str) -> str:
    """Standard output of ``git args...`` run in the repository."""
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def load_version(rev: str, folder: Path, i: int):
    """The kernels module of git revision ``rev`` (a file in ``folder``, imported by path)."""
    have = set(git("ls-tree", "-r", "--name-only", rev).split())
    src = git("show", f"{rev}:{next(k for k in KERNELS if k in have)}")
    path = folder / f"kernels_v{i}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"kernels_v{i}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("revs", nargs="+", help="git revisions, e.g. 7a78155 HEAD")
    ap.add_argument("--n-docs", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, nargs="+", default=[10, 1000])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    args.revs = [git("rev-parse", "--short", rev).strip() for rev in args.revs]

    analyzer, vocab = Analyzer("en"), Vocabulary()
    _, docs, queries = load_real(analyzer, vocab)
    ptr, flat = synthetic(docs, len(vocab), args.n_docs)
    idx = build_ours(_as_lists(ptr, flat))
    del flat
    qa = query_arrays(queries)
    idx.search(qa, k=10, threads=1)  # fills the BM25 cache for every query term
    q_ptr, q_terms, q_w = idx.prepare(qa)[:3]
    seg = idx.segments[0]

    def call(module, k):
        extra = (False,) if "masked" in inspect.signature(module.score_topk).parameters else ()
        return module.score_topk(q_ptr, q_terms, q_w, seg, seg.cache, idx.alive, k, 1, *extra)

    rows, cells = [], []
    with tempfile.TemporaryDirectory(prefix="ab-kernels-") as tmp:
        modules = [load_version(rev, Path(tmp), i) for i, rev in enumerate(args.revs)]
        for k in args.k:
            times = {rev: [] for rev in args.revs}
            first = None
            for module in modules:
                s, p = call(module, k)  # compiles; checks agreement with the first version
                if first is None:
                    first = (s, p)
                else:
                    np.testing.assert_array_equal(p, first[1])
                    np.testing.assert_allclose(s, first[0], rtol=1e-5)
            for _ in range(args.repeats):
                for rev, module in zip(args.revs, modules):
                    t = time.perf_counter()
                    call(module, k)
                    times[rev].append(time.perf_counter() - t)
            for rev in args.revs:
                ms = 1000 * float(np.median(times[rev])) / len(queries)
                cells.append({"rev": rev, "k": k, "ms_per_query": round(ms, 4)})
        for rev in args.revs:
            rows.append([rev] + [c["ms_per_query"] for c in cells if c["rev"] == rev])
    results = {
        "machine": machine(),
        "n_docs": args.n_docs,
        "n_queries": len(queries),
        "repeats": args.repeats,
        "threads": 1,
        "cells": cells,
    }
    write_results("sparse_kernels_ab", results)
    print(markdown_table(["revision"] + [f"ms/query k={k}" for k in args.k], rows))


if __name__ == "__main__":
    main()
