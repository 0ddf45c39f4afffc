"""BM25 speed against bm25s (numba backend), same run, same tokens, same BM25 parameters.

Run:  .venv/bin/python -m benchmarks.bench_bm25 [--n-docs 1000000] [--repeats 3]

Corpora
- ``scifact``: the 5,183 SciFact abstracts (title + text), analysed once by granite-index's English
  analyzer; both engines index the same token ids.
- ``synthetic-1M``: ``--n-docs`` documents whose lengths are drawn from the real analysed document
  lengths of SciFact, CISI, MED, CACM and XQuAD-R (en), and whose tokens are drawn i.i.d. from
  the real unigram distribution of those corpora (so the vocabulary and term frequencies are
  real, but there is no burstiness: a term's occurrences are spread over more documents than in
  real text, which makes frequent terms' postings longer, the harder case).
Queries: the test queries of SciFact, CISI, MED and CACM (analysed, unique terms, unknown terms
dropped): the 458 real queries that have relevance judgements.

Measured, each as the median of ``--repeats`` runs after a warm-up (query and tokenising timings
alternate between the two engines; tokenising runs ``2 * --repeats`` times):
- query throughput at k=10 and k=1000, with 1 thread and all threads;
- tokenising to term ids (granite-index analyzer + vocabulary vs ``bm25s.tokenize`` with the same
  stemmer and stop words) on the SciFact texts, docs/s;
- indexing from the same token id lists, docs/s;
- resident memory of a fresh process after loading the saved index with mmap, and after queries;
- bytes per posting (postings arrays and all index arrays);
- agreement: share of queries whose top-k lists are identical, and the largest score difference;
- updates: adding 1,000 documents to the built index and one query pass right after (the BM25
  cache refills), against bm25s's only way to the same state, a rebuild and a pass.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import BEIR, ROOT, machine, markdown_table, median_time, write_results
from granite_index import SparseIndex
from granite_index.encoders.analyzer import Analyzer, Vocabulary
from granite_index.eval import load_beir

SOURCES = ["scifact", "cisi", "med", "cacm", "xquad-r-en"]
QUERY_SETS = ["scifact", "cisi", "med", "cacm"]


def _tokens(analyzer: Analyzer, vocab: Vocabulary, texts: list[str]) -> list[list[int]]:
    return [[vocab.add(t) for t in analyzer.tokens(x)] for x in texts]


def load_real(analyzer: Analyzer, vocab: Vocabulary):
    corpora = {name: load_beir(BEIR / name, split="test") for name in SOURCES}
    docs = {name: _tokens(analyzer, vocab, d.documents()) for name, d in corpora.items()}
    queries = []
    for name in QUERY_SETS:
        _, qtexts = corpora[name].eval_queries()
        for q in qtexts:
            ids = list(dict.fromkeys(vocab.get(t) for t in analyzer.tokens(q)))
            ids = [i for i in ids if i is not None]
            if ids:
                queries.append(ids)
    return corpora, docs, queries


def synthetic(docs: dict[str, list[list[int]]], n_vocab: int, n: int, seed: int = 0):
    """``n`` documents with real length and unigram distributions (token ids as lists)."""
    rng = np.random.default_rng(seed)
    all_docs = [d for ds in docs.values() for d in ds]
    lengths = np.array([len(d) for d in all_docs])
    counts = np.bincount(
        np.fromiter(itertools.chain.from_iterable(all_docs), np.int64), minlength=n_vocab
    )
    p = counts / counts.sum()
    lens = rng.choice(lengths, size=n)
    flat = rng.choice(n_vocab, size=int(lens.sum()), p=p)
    ptr = np.concatenate([[0], np.cumsum(lens)])
    return ptr, flat


def _as_lists(ptr: np.ndarray, flat: np.ndarray) -> list[list[int]]:
    flat_list = flat.tolist()
    return [flat_list[ptr[i] : ptr[i + 1]] for i in range(len(ptr) - 1)]


def term_counts(token_lists: list[list[int]]):
    """Token id lists → per-document term counts as CSR (indptr, term ids, counts), what
    :meth:`SparseIndex.add` takes: flatten, then count with the engine's kernel."""
    from granite_index._kernels.terms import count_terms

    lens = np.fromiter((len(d) for d in token_lists), np.int64, len(token_lists))
    flat = np.fromiter(itertools.chain.from_iterable(token_lists), np.int64, int(lens.sum()))
    ptr = np.concatenate([[0], np.cumsum(lens)])
    return count_terms(ptr, flat, int(flat.max()) + 1)


def build_ours(token_lists: list[list[int]]) -> SparseIndex:
    """granite-index from token id lists: flatten, count per document, build the index."""
    idx = SparseIndex("bm25", k1=1.2, b=0.75)
    idx.add(np.arange(len(token_lists)), *term_counts(token_lists))
    return idx


def build_bm25s(token_lists: list[list[int]], n_vocab: int):
    import bm25s

    vocab = {i: i for i in range(n_vocab)}
    ret = bm25s.BM25(method="lucene", k1=1.2, b=0.75, backend="numba")
    ret.index(bm25s.tokenization.Tokenized(ids=token_lists, vocab=vocab), show_progress=False)
    return ret


def query_arrays(queries: list[list[int]]):
    ptr = np.concatenate([[0], np.cumsum([len(q) for q in queries])]).astype(np.int64)
    terms = np.concatenate([np.asarray(q, np.int64) for q in queries])
    return ptr, terms, np.ones(len(terms), np.float32)


def agreement(ours, ids_b, scores_b) -> dict:
    """How far the two top-k lists agree.

    bm25s pads short lists with score-0 documents, ours with -1; both are dropped. ``identical``:
    the same ids in the same order. ``tie_aware``: the same score at every rank (to float32
    rounding) and the same documents above the k-th score, i.e. the lists differ at most in the
    order of documents with equal scores, which neither engine ranks by anything but chance.
    """
    n = len(ids_b)
    same = tie_ok = 0
    worst = 0.0
    for j in range(n):
        m = int((ours.ids[j] >= 0).sum())
        keep = scores_b[j] > 0
        theirs, their_s = ids_b[j][keep], scores_b[j][keep]
        mine, my_s = ours.ids[j][:m], ours.scores[j][:m]
        same += list(mine) == list(theirs)
        if len(mine) != len(theirs):
            continue
        if m == 0:
            tie_ok += 1
            continue
        rel = np.abs(my_s - their_s) / np.abs(their_s)
        worst = max(worst, float(rel.max()))
        tol = 1e-5 * abs(float(their_s[-1]))
        above_mine = set(mine[my_s > my_s[-1] + tol])
        above_theirs = set(theirs[their_s > their_s[-1] + tol])
        tie_ok += bool(rel.max() < 1e-5) and above_mine == above_theirs
    return {
        "identical_lists": round(same / n, 4),
        "tie_aware": round(tie_ok / n, 4),
        "max_rel_score_diff": worst,
    }


RSS_CHILD = """
import time
t0 = time.perf_counter()
import json, sys, numpy as np, psutil
kind, path, qfile = sys.argv[1], sys.argv[2], sys.argv[3]
proc = psutil.Process()
if kind == "ours":
    from granite_index import SparseIndex
else:
    import bm25s
import_s = time.perf_counter() - t0
base = proc.memory_info().rss  # after imports: what follows is the index
t = time.perf_counter()
idx = SparseIndex.load(path) if kind == "ours" else bm25s.BM25.load(path, mmap=True)
load_s = time.perf_counter() - t
after_load = proc.memory_info().rss
q = json.load(open(qfile))
def run(qs):
    if kind == "ours":
        ptr = np.concatenate([[0], np.cumsum([len(x) for x in qs])]).astype(np.int64)
        idx.search((ptr, np.concatenate([np.asarray(x) for x in qs]), np.ones(ptr[-1])), k=10, threads=1)
    else:
        idx.retrieve(qs, k=10, show_progress=False, n_threads=1)
t = time.perf_counter()
run(q[:1])  # cold: numba's on-disk cache is loaded (or the code compiled) here
first_query_s = time.perf_counter() - t
run(q)
after_q = proc.memory_info().rss
print(json.dumps({"rss_after_import_mb": base / 2**20, "rss_after_load_mb": after_load / 2**20,
                  "rss_after_queries_mb": after_q / 2**20, "import_s": import_s, "load_s": load_s,
                  "first_query_s": first_query_s}))
"""


def memory(ours: SparseIndex, peer, queries: list[list[int]], tmp: Path) -> dict:
    ours.save(tmp / "ours")
    peer.save(str(tmp / "bm25s"))
    qfile = tmp / "queries.json"
    qfile.write_text(json.dumps(queries))
    out = {}
    for kind, path in (("ours", tmp / "ours"), ("bm25s", tmp / "bm25s")):
        res = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, kind, str(path), str(qfile)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        out[kind] = json.loads(res.stdout.strip().splitlines()[-1])
        out[kind]["disk_mb"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
    return out


def bytes_per_posting(ours: SparseIndex, peer) -> dict:
    n = ours.n_postings
    postings = sum(s.post_doc.nbytes + s.post_w.nbytes for s in ours.segments)
    s = peer.scores
    peer_post = s["data"].nbytes + s["indices"].nbytes
    peer_all = peer_post + s["indptr"].nbytes
    return {
        "postings": n,
        "ours_postings_bytes": round(postings / n, 3),
        "ours_all_bytes": round(ours.nbytes / n, 3),
        "bm25s_postings_bytes": round(peer_post / len(s["data"]), 3),
        "bm25s_all_bytes": round(peer_all / len(s["data"]), 3),
    }


def speed(name: str, token_lists, n_vocab, queries, repeats: int, tmp: Path) -> dict:
    n_docs = len(token_lists)
    print(f"[{name}] {n_docs} docs, {sum(map(len, token_lists))} tokens", flush=True)
    build_bm25s(token_lists[:100], n_vocab)  # warm-ups (numba compilation / cache loading)
    build_ours(token_lists[:100])
    t0 = time.perf_counter()
    peer = build_bm25s(token_lists, n_vocab)
    peer_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = build_ours(token_lists)
    ours_build = time.perf_counter() - t0
    print(f"  build: bm25s {peer_build:.1f}s, ours {ours_build:.1f}s", flush=True)
    qp, qt, qv = query_arrays(queries)
    threads_all = os.cpu_count() or 1
    cells = []
    for k in (10, 1000):
        for threads in (1, threads_all):

            def peer_fn(k=k, threads=threads):
                return peer.retrieve(queries, k=k, show_progress=False, n_threads=threads)

            def ours_fn(k=k, threads=threads):
                return ours.search((qp, qt, qv), k=k, threads=threads)

            ids_b, scores_b = peer_fn()  # warm-up (numba compilation) + reference output
            res = ours_fn()
            all_peer, all_ours = [], []
            for _ in range(repeats):  # alternate, so that drift on a shared machine hits both
                all_peer.append(median_time(peer_fn, 1)[0])
                all_ours.append(median_time(ours_fn, 1)[0])
            t_peer, t_ours = float(np.median(all_peer)), float(np.median(all_ours))
            cell = {
                "k": k,
                "threads": threads,
                "bm25s_qps": round(len(queries) / t_peer, 1),
                "ours_qps": round(len(queries) / t_ours, 1),
                "ratio": round(t_peer / t_ours, 2),
                "bm25s_seconds": [round(x, 4) for x in all_peer],
                "ours_seconds": [round(x, 4) for x in all_ours],
                **agreement(res, ids_b, scores_b),
            }
            print("  ", cell, flush=True)
            cells.append(cell)
    mem = memory(ours, peer, queries, tmp / name)
    print("  memory", mem, flush=True)
    bpp = bytes_per_posting(ours, peer)
    n_segments = len(ours.segments)
    pass_peer = next(c for c in cells if c["k"] == 10 and c["threads"] == 1)["bm25s_seconds"]
    upd = update_speed(ours, token_lists, (qp, qt, qv), peer_build + float(np.median(pass_peer)))
    print("  update", upd, flush=True)
    return {
        "corpus": name,
        "n_docs": n_docs,
        "n_queries": len(queries),
        "build": {
            "bm25s_docs_per_s": round(n_docs / peer_build, 1),
            "ours_docs_per_s": round(n_docs / ours_build, 1),
            "ratio": round(peer_build / ours_build, 2),
        },
        "queries": cells,
        "memory": mem,
        "bytes_per_posting": bpp,
        "segments": n_segments,
        "update": upd,
    }


def update_speed(ours: SparseIndex, token_lists, queries, peer_rebuild_and_pass: float) -> dict:
    """Add 1,000 documents to the built index, then run one pass of the queries (k=10, 1 thread);
    then delete them and run a pass again. After each change every segment's BM25 cache is stale
    (N, df and avgdl moved), so each first pass refills it for the queried terms; a steady pass is
    timed for comparison. bm25s has no add or delete: its equivalent is a rebuild (its build time
    for the corpus, measured above, a slight underestimate for 1,000 more documents) and a pass."""
    extra = token_lists[: min(1000, len(token_lists))]
    keys = np.arange(len(ours), len(ours) + len(extra))

    def timed(fn) -> float:
        return median_time(fn, 1)[0]

    def search(index=ours):
        return index.search(queries, k=10, threads=1)

    warm = build_ours(token_lists[:200])  # warm-up: numba loads the multi-segment kernels here
    warm.add(np.arange(200, 220), *term_counts(token_lists[:20]))
    search(warm)
    warm.delete(np.arange(200, 220))
    search(warm)
    add_s = timed(lambda: ours.add(keys, *term_counts(extra)))
    first_add = timed(search)
    steady = timed(search)
    delete_s = timed(lambda: ours.delete(keys))
    first_delete = timed(search)
    return {
        "docs": len(extra),
        "add_s": round(add_s, 4),
        "first_pass_after_add_s": round(first_add, 4),
        "steady_pass_s": round(steady, 4),
        "delete_s": round(delete_s, 4),
        "first_pass_after_delete_s": round(first_delete, 4),
        "bm25s_rebuild_and_pass_s": round(peer_rebuild_and_pass, 4),
        "ratio": round(peer_rebuild_and_pass / (add_s + first_add), 1),
    }


def tokenize_speed(corpora, repeats: int) -> dict:
    import bm25s
    import Stemmer

    from granite_index.encoders.analyzer import ENGLISH_STOP_WORDS

    texts = corpora["scifact"].documents()
    stemmer = Stemmer.Stemmer("english")

    def ours():  # to term ids and counts, as indexing needs (bm25s.tokenize also maps to ids)
        a, v = Analyzer("en"), Vocabulary()  # fresh: the stem cache starts empty
        return v.encode_texts(a, texts, grow=True)  # what SparseIndex.add_texts runs

    def peer():
        return bm25s.tokenize(
            texts, stopwords=list(ENGLISH_STOP_WORDS), stemmer=stemmer, show_progress=False
        )

    ours()
    peer()
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    for _ in range(2 * repeats):  # alternate, as the query timings do: drift hits both
        for name, fn in (("ours", ours), ("peer", peer)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    t_ours, t_peer = (statistics.median(times[n]) for n in ("ours", "peer"))
    return {
        "texts": len(texts),
        "ours_docs_per_s": round(len(texts) / t_ours, 1),
        "bm25s_docs_per_s": round(len(texts) / t_peer, 1),
        "ratio": round(t_peer / t_ours, 2),
        "note": "bm25s.tokenize: regex (?u)\\b\\w\\w+\\b, lowercase, the same stop words and "
        "Snowball stemmer; ours also keeps 1-letter tokens, NFKC-folds non-ASCII text and "
        "bigrams CJK/Thai runs",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-docs", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    analyzer, vocab = Analyzer("en"), Vocabulary()
    corpora, docs, queries = load_real(analyzer, vocab)
    results = {"machine": machine(), "bm25": {"k1": 1.2, "b": 0.75, "idf": "lucene"}}
    import bm25s

    results["bm25s_version"] = bm25s.__version__
    results["tokenize"] = tokenize_speed(corpora, args.repeats)
    print("tokenize", results["tokenize"], flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-bm25-") as tmp:
        tmp = Path(tmp)
        (tmp / "scifact").mkdir()
        results["scifact"] = speed(
            "scifact", docs["scifact"], len(vocab), queries, args.repeats, tmp
        )
        ptr, flat = synthetic(docs, len(vocab), args.n_docs)
        lists = _as_lists(ptr, flat)
        del flat
        name = f"synthetic-{args.n_docs // 1000}k"
        (tmp / name).mkdir()
        results["synthetic"] = speed(name, lists, len(vocab), queries, args.repeats, tmp)
    out = write_results("bm25_speed", results)
    print(report(results))
    print(f"wrote {out}")


def report(results: dict) -> str:
    rows = []
    for key in ("scifact", "synthetic"):
        r = results[key]
        for c in r["queries"]:
            rows.append(
                [
                    f"{r['corpus']} ({r['n_docs']:,} docs)",
                    f"queries/s, k={c['k']}, {c['threads']} thread(s)",
                    c["bm25s_qps"],
                    c["ours_qps"],
                    f"{c['ratio']}x",
                    f"{c['identical_lists']:.3f} / {c['tie_aware']:.3f}",
                ]
            )
        b = r["build"]
        rows.append(
            [
                r["corpus"],
                "index build docs/s (from token ids)",
                b["bm25s_docs_per_s"],
                b["ours_docs_per_s"],
                f"{b['ratio']}x",
                "",
            ]
        )
        m = r["memory"]

        def mb(e):
            imp = e["rss_after_import_mb"]
            return f"{e['rss_after_load_mb'] - imp:.0f} / {e['rss_after_queries_mb'] - imp:.0f}"

        rows.append(
            [
                r["corpus"],
                "RSS added by mmap load / after 1 query pass (MB)",
                mb(m["bm25s"]),
                mb(m["ours"]),
                "",
                "",
            ]
        )

        def cold(e):
            return f"{e['import_s']:.2f} + {e['load_s']:.2f} + {e['first_query_s']:.2f}"

        rows.append(
            [
                r["corpus"],
                "cold start in a new process: import + load + first query (s)",
                cold(m["bm25s"]),
                cold(m["ours"]),
                "",
                "",
            ]
        )
        rows.append(
            [
                r["corpus"],
                "index on disk (MB)",
                f"{m['bm25s']['disk_mb']:.0f}",
                f"{m['ours']['disk_mb']:.0f}",
                "",
                "",
            ]
        )
        u = r["update"]
        rows.append(
            [
                r["corpus"],
                f"add {u['docs']:,} docs, then one pass of the queries, k=10, 1 thread (s)",
                f"{u['bm25s_rebuild_and_pass_s']:.2f} (rebuild + pass)",
                f"{u['add_s']:.3f} + {u['first_pass_after_add_s']:.3f}",
                f"{u['ratio']}x",
                "",
            ]
        )
        bp = r["bytes_per_posting"]
        rows.append(
            [
                r["corpus"],
                "bytes per posting (postings / all arrays)",
                f"{bp['bm25s_postings_bytes']} / {bp['bm25s_all_bytes']}",
                f"{bp['ours_postings_bytes']} / {bp['ours_all_bytes']}",
                "",
                "",
            ]
        )
    t = results["tokenize"]
    rows.append(
        [
            "scifact",
            "tokenising to term ids, docs/s",
            t["bm25s_docs_per_s"],
            t["ours_docs_per_s"],
            f"{t['ratio']}x",
            "",
        ]
    )
    return markdown_table(
        [
            "corpus",
            "measure",
            "bm25s 0.3.16 (numba)",
            "granite-index",
            "ours / bm25s",
            "identical top-k lists / tie-aware agreement",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
