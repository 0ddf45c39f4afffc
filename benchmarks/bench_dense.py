"""Dense path: quality (nDCG@10 etc.) on four datasets, and encoding speed vs sentence-transformers.

Run:  .venv/bin/python -m benchmarks.bench_dense [--datasets scifact cisi med cacm] [--n-speed 512]

Quality: every corpus is indexed with the bundled all-MiniLM-L6-v2 (precision auto) into a
collection under benchmarks/out/ (reused on a re-run) and its test queries evaluated.
Speed: the same texts (SciFact documents) are encoded by sentence-transformers (fp32, its default),
by sentence-transformers under bf16 autocast, and by granite-index (auto and fp32), each repeated;
medians and ratios are reported with the minimum cosine to sentence-transformers' fp32 vectors.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

from benchmarks.common import BEIR, CACHE, machine, markdown_table, median_time, write_results
from granite_index import Collection, DenseEncoder
from granite_index.collection import evaluate_beir, index_beir
from granite_index.eval import load_beir


def quality(name: str, encoder: DenseEncoder) -> dict:
    data = load_beir(BEIR / name, split="test")
    path = CACHE / f"dense-{name}"
    col = (
        Collection.open(path, encoder=encoder)
        if Collection.exists(path)
        else Collection.create(path, encoder=encoder)
    )
    t0 = time.perf_counter()
    added = index_beir(col, data, chunk_size=4096)
    index_s = time.perf_counter() - t0
    run = evaluate_beir(col, data, mode="dense", k=100)
    scores = run.scores
    return {
        "dataset": name,
        "n_docs": len(col),
        "n_queries": run.n_queries,
        **{k: round(v, 4) for k, v in scores.items()},
        "index_docs_per_s": round(added / index_s, 1) if added else None,
    }


def speed(n: int, repeats: int, batch_size: int) -> dict:
    from sentence_transformers import SentenceTransformer

    data = load_beir(BEIR / "scifact")
    texts = random.Random(0).sample(data.documents(), n)
    ours = DenseEncoder(precision="auto", batch_size=batch_size)
    ours32 = DenseEncoder(precision="fp32", batch_size=batch_size)
    st = SentenceTransformer(str(ours.source.path), device="cpu")

    def st_fp32():
        return st.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )

    def st_bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return st.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
            )

    reference = st_fp32()  # also a warm-up
    runs = {
        "sentence-transformers fp32": st_fp32,
        "sentence-transformers bf16 autocast": st_bf16,
        f"granite-index auto ({ours.precision})": lambda: ours.encode_documents(texts),
        "granite-index fp32": lambda: ours32.encode_documents(texts),
    }
    rows = []
    for label, fn in runs.items():
        vecs = np.asarray(fn(), dtype=np.float32)  # warm-up + output for the cosine check
        med, times = median_time(fn, repeats)
        cos = (
            (vecs * reference).sum(1)
            / np.linalg.norm(vecs, axis=1)
            / np.linalg.norm(reference, axis=1)
        )
        rows.append(
            {
                "encoder": label,
                "docs_per_s": round(n / med, 2),
                "seconds": [round(t, 2) for t in times],
                "min_cosine_to_st_fp32": round(float(cos.min()), 6),
            }
        )
    base = rows[0]["docs_per_s"]
    for r in rows:
        r["ratio_to_st_fp32"] = round(r["docs_per_s"] / base, 2)
    return {
        "n_texts": n,
        "batch_size": batch_size,
        "repeats": repeats,
        "precision_auto": ours.precision,
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", nargs="*", default=["scifact", "cisi", "med", "cacm"])
    ap.add_argument(
        "--n-speed", type=int, default=512, help="texts in the speed comparison (0: skip)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    out = {"machine": machine(), "model": "bundled all-MiniLM-L6-v2"}
    if args.n_speed:
        out["speed"] = speed(args.n_speed, args.repeats, args.batch_size)
        rows = [
            [r["encoder"], r["docs_per_s"], r["ratio_to_st_fp32"], r["min_cosine_to_st_fp32"]]
            for r in out["speed"]["rows"]
        ]
        print(markdown_table(["encoder", "docs/s", "× ST fp32", "min cosine to ST fp32"], rows))
    if args.datasets:
        encoder = DenseEncoder(precision="auto")
        out["quality"] = [quality(name, encoder) for name in args.datasets]
        rows = [
            [q["dataset"], q["n_docs"], q["n_queries"], q["ndcg@10"], q["recall@100"], q["mrr@10"]]
            for q in out["quality"]
        ]
        print(
            markdown_table(["dataset", "docs", "queries", "nDCG@10", "Recall@100", "MRR@10"], rows)
        )
    print("wrote", write_results("dense", out))


if __name__ == "__main__":
    main()
