"""How real are the synthetic sparse corpora? Their statistics side by side with the real corpora.

Run:  PYTHONPATH=. .venv/bin/python -m benchmarks.corpus_stats [--n-docs 1000000] [--seed 0]

Corpora (:mod:`benchmarks.sparse_corpus`), both kinds (``bm25``: analysed terms and term
frequencies; ``impact``: SPLADE-tiny vectors): SciFact, CISI, MED, CACM, the four pooled ("real"),
and the ``realistic``, ``realistic-diverse`` and ``iid`` generators at the pooled real size
(10,880 documents: the fair comparison, several statistics depend on N) and at ``--n-docs``.
Generation seconds of each generated corpus are those recorded in its cache when it was made.

Statistics (N documents, df a term's document frequency, nnz all postings):
- postings lists: number of terms (df > 0); df / N quantiles over those terms (p50, p90, p99,
  max); share of all postings held by the 1 % most frequent terms (1 % of the vocabulary, the same
  count for every corpus of a kind);
- within-document repetition (bm25): mean tf per posting, share of postings with tf > 1, Church &
  Gale's P(tf >= 2 | tf >= 1) averaged over the 1,000 terms of largest collection frequency, and
  the *df deficit* of those terms: the df they would have if their occurrences fell i.i.d. on the
  documents' tokens (given the documents' lengths) over their real df, i.e. mean tf given present
  against its i.i.d. expectation (1 = no burstiness);
- topical co-occurrence: over the pairs of the 200 most frequent terms, the mean and the standard
  deviation of PMI (log2 of the lift N df(a, b) / (df(a) df(b))) and the share of pairs with lift
  > 2; over the pairs of terms of each query (impact: the 16 heaviest terms of 100 seeded
  queries), the mean containment df(a, b) / min(df(a), df(b)) and the median lift;
- query side: postings read by exhaustive scoring of each of the 458 queries (sum of its terms'
  df) as a share of nnz (= N x mean terms per document), mean and median; and what decides
  whether pruning pays, *oracle MaxScore at k = 10*: with the final 10th score known, the query's
  terms whose upper bounds (largest BM25 / impact contribution in the corpus, times the query
  weight) sum below it, lowest bounds first, need not be traversed; reported is the share of the
  queries' postings in the remaining, essential, lists (BM25: Lucene idf, k1 = 1.2, b = 0.75);
- near duplicates: for 100 seeded documents, the cosine to their nearest other document (bm25:
  (1 + log tf) x idf vectors; impact: the weights), median and p90;
- impact only: terms per document (mean, p50, p99) and weight quantiles.

Writes benchmarks/results/corpus_stats.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import scipy.sparse as sp

from benchmarks.common import machine, markdown_table, write_results
from benchmarks.sparse_corpus import CORPORA, MODELS, SparseCorpus, generation_seconds, load_corpus

GENERATED = ("realistic", "realistic-diverse", "iid")

TOP_CF = 1000
TOP_PAIRS = 200
N_NN = 100
IMPACT_PAIR_QUERIES = 100
IMPACT_PAIR_TERMS = 16


def _matrix(c: SparseCorpus, values: np.ndarray | None = None) -> sp.csr_matrix:
    v = np.ones(c.nnz, np.float32) if values is None else values
    return sp.csr_matrix(
        (v, np.asarray(c.indices, np.int64), np.asarray(c.indptr)), shape=(c.n_docs, c.n_terms)
    )


def _r(x: float, digits: int = 4) -> float:
    return float(round(float(x), digits))


def _co_df(x: sp.csc_matrix, cols: np.ndarray) -> np.ndarray:
    """Co-occurrence counts (documents holding both) of the columns ``cols``."""
    b = x[:, cols]
    b.data = np.ones_like(b.data)
    return (b.T @ b).toarray()


def weighted(c: SparseCorpus, df: np.ndarray) -> sp.csc_matrix:
    """Per-posting scores as a document x term CSC matrix: BM25 (Lucene idf, k1 = 1.2,
    b = 0.75, lengths in tokens) or the impacts themselves."""
    v = np.asarray(c.values, np.float32)
    if c.kind == "bm25":
        k1, b = 1.2, 0.75
        rows = np.repeat(np.arange(c.n_docs), np.diff(np.asarray(c.indptr)))
        dl = np.bincount(rows, weights=v, minlength=c.n_docs)
        norm = (k1 * (1 - b + b * dl / dl.mean()))[rows].astype(np.float32)
        del rows
        idf = np.log1p((c.n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        v = idf[np.asarray(c.indices)] * v * (k1 + 1) / (v + norm)
    return _matrix(c, v).tocsc()


def postings_stats(c: SparseCorpus, df: np.ndarray) -> dict[str, Any]:
    """Number of terms, df / N quantiles, share of postings in the 1 % most frequent terms."""
    used = np.sort(df[df > 0])
    top = int(np.ceil(0.01 * c.n_terms))  # 1 % of the vocabulary: the same count for every corpus
    q = np.quantile(used, [0.5, 0.9, 0.99]) / c.n_docs
    return {
        "n_docs": c.n_docs,
        "n_terms": int(len(used)),
        "nnz": c.nnz,
        "terms_per_doc": _r(c.nnz / c.n_docs, 2),
        "df_frac_p50": _r(q[0], 6),
        "df_frac_p90": _r(q[1], 6),
        "df_frac_p99": _r(q[2], 5),
        "df_frac_max": _r(used[-1] / c.n_docs, 4),
        "top1pct_postings_share": _r(used[-top:].sum() / c.nnz),
    }


def tf_stats(c: SparseCorpus, df: np.ndarray) -> dict[str, Any]:
    """Within-document repetition of a bm25 corpus (see the module docstring)."""
    tf = np.asarray(c.values, np.float64)
    idx = np.asarray(c.indices)
    cf = np.bincount(idx, weights=tf, minlength=c.n_terms)
    multi = np.bincount(idx, weights=tf > 1, minlength=c.n_terms)
    lens = np.add.reduceat(tf, np.asarray(c.indptr[:-1])) if c.nnz else np.zeros(c.n_docs)
    lens[np.diff(c.indptr) == 0] = 0
    ulen, ucount = np.unique(lens, return_counts=True)
    top = np.argsort(-cf, kind="stable")[:TOP_CF]
    p = cf[top] / tf.sum()
    # df expected if each term's occurrences fell i.i.d. on the documents' tokens
    exp_df = (ucount[None, :] * -np.expm1(ulen[None, :] * np.log1p(-p)[:, None])).sum(axis=1)
    return {
        "tokens_per_doc": _r(tf.sum() / c.n_docs, 2),
        "mean_tf": _r(tf.mean()),
        "tf_gt1_share": _r((tf > 1).mean()),
        "p_k2_given_k1": _r((multi[top] / df[top]).mean()),
        "df_deficit": _r((exp_df / df[top]).mean()),
    }


def cooccurrence_stats(c: SparseCorpus, x: sp.csc_matrix, df: np.ndarray) -> dict[str, Any]:
    """PMI of the pairs of the most frequent terms."""
    top = np.argsort(-df, kind="stable")[:TOP_PAIRS]
    co = _co_df(x, top)
    iu = np.triu_indices(len(top), 1)
    lift = np.maximum(co[iu], 0.5) * c.n_docs / (df[top][iu[0]] * df[top][iu[1]])
    pmi = np.log2(lift)
    return {
        "top_pairs_pmi": _r(pmi.mean()),
        "top_pairs_pmi_std": _r(pmi.std()),
        "top_pairs_lift_gt2": _r((lift > 2).mean()),
    }


def query_stats(c: SparseCorpus, x: sp.csc_matrix, df: np.ndarray) -> dict[str, Any]:
    """Exhaustive-scoring cost of the queries and co-occurrence of their terms."""
    qp, qi, qv = np.asarray(c.q_indptr), np.asarray(c.q_indices, np.int64), np.asarray(c.q_values)
    read = np.add.reduceat(df[qi].astype(np.float64), qp[:-1]) / c.nnz
    rows = range(c.n_queries)
    if c.kind == "impact":
        rows = np.sort(np.random.default_rng(0).choice(c.n_queries, IMPACT_PAIR_QUERIES, False))
    contain, lifts = [], []
    for r in rows:
        terms, w = qi[qp[r] : qp[r + 1]], qv[qp[r] : qp[r + 1]]
        if c.kind == "impact":
            terms = terms[np.argsort(-w, kind="stable")[:IMPACT_PAIR_TERMS]]
        terms = terms[df[terms] > 0]
        if len(terms) < 2:
            continue
        co = _co_df(x, terms)
        iu = np.triu_indices(len(terms), 1)
        da, db = df[terms][iu[0]].astype(np.float64), df[terms][iu[1]].astype(np.float64)
        contain.append(co[iu] / np.minimum(da, db))
        lifts.append(co[iu] * c.n_docs / (da * db))
    contain_all, lift_all = np.concatenate(contain), np.concatenate(lifts)
    return {
        "query_read_frac_mean": _r(read.mean(), 5),
        "query_read_frac_median": _r(np.median(read), 5),
        "query_pairs": int(len(contain_all)),
        "query_pair_containment": _r(contain_all.mean()),
        "query_pair_lift_median": _r(np.median(lift_all), 3),
    }


def pruning_stats(c: SparseCorpus, x: sp.csc_matrix, df: np.ndarray, k: int = 10) -> dict:
    """Oracle MaxScore at ``k``: with the final k-th score known, the query's terms whose upper
    bounds sum below it (lowest bounds first) need not be traversed; the share of the query's
    postings in the other, essential, lists is the work left (all queries pooled)."""
    ptr = x.indptr
    col_max = np.zeros(c.n_terms, np.float32)
    nonempty = np.diff(ptr) > 0
    col_max[nonempty] = np.maximum.reduceat(x.data, ptr[:-1][nonempty])
    qp, qi, qv = np.asarray(c.q_indptr), np.asarray(c.q_indices, np.int64), np.asarray(c.q_values)
    essential = total = 0.0
    shares = []
    for r in range(c.n_queries):
        terms, w = qi[qp[r] : qp[r + 1]], qv[qp[r] : qp[r + 1]].astype(np.float32)
        keep = df[terms] > 0
        terms, w = terms[keep], w[keep]
        if len(terms) == 0:
            continue
        scores = np.asarray(x[:, terms] @ w).ravel()
        theta = np.partition(scores, len(scores) - k)[len(scores) - k] if len(scores) > k else 0
        ub = col_max[terms] * w
        order = np.argsort(ub, kind="stable")
        skip = np.cumsum(ub[order]) < theta
        post = df[terms[order]].astype(np.float64)
        essential += post[~skip].sum()
        total += post.sum()
        shares.append(post[~skip].sum() / post.sum())
    return {
        "maxscore_essential_share": _r(essential / total),
        "maxscore_essential_share_mean": _r(float(np.mean(shares))),
    }


def near_duplicate_stats(c: SparseCorpus, df: np.ndarray) -> dict[str, Any]:
    """Cosine of sampled documents to their nearest other document."""
    v = np.asarray(c.values, np.float32)
    if c.kind == "bm25":
        idf = np.log(c.n_docs / np.maximum(df, 1)).astype(np.float32)
        v = (1 + np.log(v)) * idf[np.asarray(c.indices)]
    x = _matrix(c, v)
    norm = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    sample = np.sort(np.random.default_rng(1).choice(c.n_docs, N_NN, replace=False))
    s = (x[sample].multiply(1 / norm[sample][:, None])).T.toarray().astype(np.float32)
    best = np.full(N_NN, -1.0)
    step = 100_000
    for a in range(0, c.n_docs, step):
        b = min(a + step, c.n_docs)
        sim = np.asarray(x[a:b] @ s) / np.maximum(norm[a:b], 1e-12)[:, None]
        mine = (sample >= a) & (sample < b)
        sim[sample[mine] - a, np.flatnonzero(mine)] = -1  # not itself
        best = np.maximum(best, sim.max(axis=0))
    return {"nn_cosine_p50": _r(np.median(best)), "nn_cosine_p90": _r(np.quantile(best, 0.9))}


def impact_extra(c: SparseCorpus) -> dict[str, Any]:
    nnz = np.diff(np.asarray(c.indptr))
    w = np.asarray(c.values)
    q = np.quantile(w, [0.1, 0.5, 0.9, 0.99])
    return {
        "nnz_doc_mean": _r(nnz.mean(), 1),
        "nnz_doc_p50": _r(np.median(nnz), 1),
        "nnz_doc_p99": _r(np.quantile(nnz, 0.99), 1),
        "w_p10": _r(q[0]),
        "w_p50": _r(q[1]),
        "w_p90": _r(q[2]),
        "w_p99": _r(q[3]),
        "w_max": _r(w.max()),
    }


def corpus_stats(c: SparseCorpus) -> dict[str, Any]:
    t0 = time.perf_counter()
    df = np.bincount(np.asarray(c.indices), minlength=c.n_terms).astype(np.int64)
    x = weighted(c, df)
    out: dict[str, Any] = {"corpus": c.name, "kind": c.kind, **postings_stats(c, df)}
    if c.kind == "bm25":
        out.update(tf_stats(c, df))
    else:
        out.update(impact_extra(c))
    out.update(cooccurrence_stats(c, x, df))
    out.update(query_stats(c, x, df))
    out.update(pruning_stats(c, x, df))
    del x
    out.update(near_duplicate_stats(c, df))
    out["stats_seconds"] = _r(time.perf_counter() - t0, 1)
    return out


COLUMNS = {
    "postings": [
        ("corpus", "corpus"),
        ("n_docs", "N"),
        ("n_terms", "terms"),
        ("terms_per_doc", "terms/doc"),
        ("df_frac_p50", "df/N p50"),
        ("df_frac_p90", "p90"),
        ("df_frac_p99", "p99"),
        ("df_frac_max", "max"),
        ("top1pct_postings_share", "top 1 % terms' postings"),
    ],
    "bm25 repetition": [
        ("corpus", "corpus"),
        ("tokens_per_doc", "tokens/doc"),
        ("mean_tf", "mean tf"),
        ("tf_gt1_share", "tf>1"),
        ("p_k2_given_k1", "P(k>=2 given k>=1)"),
        ("df_deficit", "df deficit"),
    ],
    "impact vectors": [
        ("corpus", "corpus"),
        ("nnz_doc_mean", "terms/doc mean"),
        ("nnz_doc_p50", "p50"),
        ("nnz_doc_p99", "p99"),
        ("w_p10", "w p10"),
        ("w_p50", "p50"),
        ("w_p90", "p90"),
        ("w_p99", "p99"),
        ("w_max", "max"),
    ],
    "co-occurrence and queries": [
        ("corpus", "corpus"),
        ("top_pairs_pmi", "top-200 PMI"),
        ("top_pairs_pmi_std", "PMI std"),
        ("top_pairs_lift_gt2", "lift>2"),
        ("query_pair_containment", "q-pair containment"),
        ("query_pair_lift_median", "q-pair lift p50"),
        ("query_read_frac_mean", "q read/nnz mean"),
        ("query_read_frac_median", "median"),
        ("maxscore_essential_share", "MaxScore essential"),
        ("nn_cosine_p50", "NN cos p50"),
        ("nn_cosine_p90", "p90"),
    ],
}


def tables(rows: list[dict[str, Any]], kind: str) -> str:
    parts = []
    for title, cols in COLUMNS.items():
        if (kind == "bm25" and title == "impact vectors") or (
            kind == "impact" and title == "bm25 repetition"
        ):
            continue
        body = [[row.get(k, "") for k, _ in cols] for row in rows]
        parts.append(f"**{kind}: {title}**\n\n" + markdown_table([h for _, h in cols], body))
    return "\n\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-docs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", nargs="+", default=["bm25", "impact"])
    args = ap.parse_args()
    payload: dict[str, Any] = {
        "machine": machine(),
        "n_docs": args.n_docs,
        "seed": args.seed,
        "models": {f"{n}/{k}": asdict(m) for (n, k), m in MODELS.items()},
    }
    text = []
    for kind in args.kinds:
        real = load_corpus("real", kind=kind)
        corpora = [load_corpus(name, kind=kind) for name in CORPORA] + [real]
        gen_seconds = {}
        for n in (real.n_docs, args.n_docs):
            for name in GENERATED:
                corpora.append(load_corpus(name, n, kind, args.seed))
                gen_seconds[corpora[-1].name] = generation_seconds(name, n, kind, args.seed)
        rows = []
        for c in corpora:
            row = corpus_stats(c)
            print(row, flush=True)
            rows.append(row)
        payload[kind] = {"corpora": rows, "generation_seconds": gen_seconds}
        text.append(tables(rows, kind))
    out = write_results("corpus_stats", payload)
    print("\n\n".join(text))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
