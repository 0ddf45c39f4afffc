"""BM25 quality: nDCG@10 / Recall@100 / MRR@10 on the four English sets and the 11 XQuAD-R languages.

Run:  .venv/bin/python -m benchmarks.bench_bm25_quality

Each corpus is indexed with granite-index's BM25 (Lucene formula, k1=1.2, b=0.75) and its own
language's analyzer (stop words "auto", Snowball stemming where Snowball has the language,
bigrams for Chinese and Thai); documents are title + text, as in BEIR. Also reported, as an
ablation, without stop words.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import BEIR, machine, markdown_table, write_results
from granite_index import SparseIndex
from granite_index.eval import evaluate, load_beir, run_from_positions

DATASETS = [("scifact", "en"), ("cisi", "en"), ("med", "en"), ("cacm", "en")] + [
    (f"xquad-r-{lang}", lang)
    for lang in ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
]


def run(name: str, language: str, **analyzer) -> dict:
    data = load_beir(BEIR / name, split="test")
    idx = SparseIndex.bm25(language, **analyzer)
    t0 = time.perf_counter()
    idx.add_texts(np.arange(len(data.doc_ids)), data.documents())
    build = time.perf_counter() - t0
    qids, qtexts = data.eval_queries()
    res = idx.search(qtexts, k=100)
    scores = evaluate(data.qrels, run_from_positions(res, qids, data.doc_ids))
    return {
        "dataset": name,
        "language": language,
        "n_docs": len(idx),
        "n_queries": len(qids),
        **{k: round(v, 4) for k, v in scores.items()},
        "vocabulary": len(idx.vocab),
        "build_s": round(build, 2),
    }


def main() -> None:
    rows = []
    for name, lang in DATASETS:
        row = run(name, lang)
        row["ndcg@10_no_stopwords"] = run(name, lang, stopwords=None)["ndcg@10"]
        rows.append(row)
        print(row, flush=True)
    out = write_results(
        "bm25_quality",
        {"machine": machine(), "k1": 1.2, "b": 0.75, "rows": rows},
    )
    print(
        markdown_table(
            [
                "dataset",
                "lang",
                "docs",
                "queries",
                "nDCG@10",
                "Recall@100",
                "MRR@10",
                "nDCG@10 no stop words",
            ],
            [
                [
                    r["dataset"],
                    r["language"],
                    r["n_docs"],
                    r["n_queries"],
                    f"{r['ndcg@10']:.4f}",
                    f"{r['recall@100']:.4f}",
                    f"{r['mrr@10']:.4f}",
                    f"{r['ndcg@10_no_stopwords']:.4f}",
                ]
                for r in rows
            ],
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
