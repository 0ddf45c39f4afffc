"""SPLADE encoding: granite-index's SparseEncoder against sentence-transformers' SparseEncoder.

Run:  .venv/bin/python -m benchmarks.bench_sparse_encode [--n 256] [--batch-sizes 64 128]

(about 6 minutes on 2 idle cores; ``--n 512`` doubles it: sentence-transformers is the slow part.)

The same texts (SciFact abstracts, title + text, a fixed random sample) are encoded with the same
model (the bundled SPLADE-tiny, max length 512) by each encoder at each batch size, each in a
fresh subprocess, so that its peak memory (``ru_maxrss``) is its own. Per run: documents per second
(median over ``--repeats``, after a warm-up batch; also the best repeat, which a busy neighbour on
a shared machine disturbs least), peak RSS and its rise over the RSS before encoding.
sentence-transformers materialises (batch, seq, vocab) float logits plus a masked copy: a run
whose estimate of that exceeds 70 % of the available memory is skipped, not attempted.

Agreement with sentence-transformers (special tokens dropped from its output, since ours never
returns them): the fraction of texts with identical nonzero terms and with identical top-10 terms,
the largest weight difference, and the largest weight of a term only one side has (a logit within
fp32 rounding of 0 can fall either way).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import BEIR, ROOT, machine, markdown_table, median_time, write_results

ENCODERS = {
    "granite-index": "granite-index (screen auto)",
    "granite-index-fp32": "granite-index (screen off, fp32 only)",
    "st": "sentence-transformers SparseEncoder",
}
TOP = 10


def sample_texts(n: int) -> list[str]:
    from granite_index.eval import load_beir

    return random.Random(0).sample(load_beir(BEIR / "scifact").documents(), n)


# ---------------------------------------------------------------------- one run, in a subprocess
def worker(encoder: str, n: int, batch_size: int, repeats: int, out: Path) -> None:
    import psutil
    import torch

    from granite_index.encoders.resolve import DEFAULT_SPARSE_MODEL, resolve_model

    texts = sample_texts(n)
    if encoder == "st":
        from sentence_transformers import SparseEncoder as STSparseEncoder

        st = STSparseEncoder(str(resolve_model(DEFAULT_SPARSE_MODEL).path), device="cpu")

        def run(ts: list[str]):
            return st.encode_document(ts, batch_size=batch_size)

        detail = "default settings (fp32)"
    else:
        from granite_index.encoders.sparse import SparseEncoder

        enc = SparseEncoder(screen=False if encoder.endswith("fp32") else None, device="cpu")

        def run(ts: list[str]):
            return enc.encode_documents(ts, batch_size=batch_size)

        detail = f"screen={enc.screen}"
    run(texts[:batch_size])  # warm-up
    rss_before = psutil.Process().memory_info().rss
    last = []  # the last run's output, for the agreement check

    def timed() -> None:
        last[:] = [run(texts)]

    med, times = median_time(timed, repeats)
    result = last[0]
    if encoder == "st":
        csr = result.coalesce().to_dense().to_sparse_csr()
        indptr, indices, values = csr.crow_indices(), csr.col_indices(), csr.values()
        arrays = [a.numpy() for a in (indptr, indices, values)]
    else:
        arrays = [result.indptr, result.indices, result.values]
    np.savez(out.with_suffix(".npz"), indptr=arrays[0], indices=arrays[1], values=arrays[2])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    report = {
        "docs_per_s": round(n / med, 2),
        "best_docs_per_s": round(n / min(times), 2),
        "seconds": [round(t, 2) for t in times],
        "peak_rss_mb": round(peak / 2**20),
        "peak_rise_mb": round((peak - rss_before) / 2**20),
        "torch_threads": torch.get_num_threads(),
        "detail": detail,
    }
    out.with_suffix(".json").write_text(json.dumps(report))


# ---------------------------------------------------------------------- driver
def st_estimate_bytes(texts: list[str], batch_size: int) -> int:
    """sentence-transformers' logits + masked copy for the longest batch (fp32)."""
    from transformers import AutoTokenizer

    from granite_index.encoders.resolve import DEFAULT_SPARSE_MODEL, resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_SPARSE_MODEL).path)
    longest = max(len(x) for x in tok(texts, truncation=True, max_length=512)["input_ids"])
    return 2 * batch_size * longest * tok.vocab_size * 4


def launch(encoder: str, args: argparse.Namespace, batch_size: int, tmp: Path) -> dict | None:
    out = tmp / f"{encoder}-{batch_size}"
    cmd = [sys.executable, "-m", "benchmarks.bench_sparse_encode", "--worker", encoder]
    cmd += ["--n", str(args.n), "--repeats", str(args.repeats), "--batch-sizes", str(batch_size)]
    cmd += ["--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"error": f"exit status {proc.returncode}"}
    return json.loads(out.with_suffix(".json").read_text())


def load_dense(path: Path, vocab: int, special: list[int]) -> np.ndarray:
    from scipy.sparse import csr_matrix

    z = np.load(path)
    n = len(z["indptr"]) - 1
    m = csr_matrix((z["values"], z["indices"], z["indptr"]), shape=(n, vocab)).toarray()
    m[:, special] = 0
    return m


def agreement(ours: np.ndarray, theirs: np.ndarray) -> dict:
    top_a = np.sort(np.argsort(-ours, axis=1, kind="stable")[:, :TOP], axis=1)
    top_b = np.sort(np.argsort(-theirs, axis=1, kind="stable")[:, :TOP], axis=1)
    on = theirs > 1e-3
    return {
        "same_terms": round(float(((ours > 0) == (theirs > 0)).all(axis=1).mean()), 4),
        f"same_top{TOP}": round(float((top_a == top_b).all(axis=1).mean()), 4),
        "max_abs_diff": float(np.abs(ours - theirs).max()),
        "max_rel_diff_weights_over_1e-3": float((np.abs(ours - theirs)[on] / theirs[on]).max()),
        "max_weight_of_unshared_terms": float(
            np.maximum(ours, theirs)[(ours > 0) != (theirs > 0)].max(initial=0.0)
        ),
    }


def nnz_stats(counts: np.ndarray) -> dict:
    return {
        "mean": round(float(counts.mean()), 1),
        "median": float(np.median(counts)),
        "p95": float(np.percentile(counts, 95)),
        "max": int(counts.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=256, help="SciFact documents to encode")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker", choices=sorted(ENCODERS), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.n, args.batch_sizes[0], args.repeats, args.out)
        return

    import psutil

    from granite_index.encoders.sparse import SparseEncoder

    enc = SparseEncoder()
    special = enc.tokenizer.all_special_ids
    texts = sample_texts(args.n)
    out = {
        "machine": {**machine(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "model": "bundled SPLADE-tiny (BertForMaskedLM, 2 layers, hidden 128, vocab 30522)",
        "n_texts": args.n,
        "max_length": enc.config.max_length,
        "repeats": args.repeats,
        "runs": [],
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for bs in args.batch_sizes:
            for name, label in ENCODERS.items():
                run = {"encoder": label, "batch_size": bs}
                need = st_estimate_bytes(texts, bs) if name == "st" else 0
                if need > 0.7 * psutil.virtual_memory().available:  # a shared machine
                    run["skipped"] = (
                        f"needs ~{need / 2**30:.1f} GiB for its (batch, seq, vocab) logits; "
                        f"{psutil.virtual_memory().available / 2**30:.1f} GiB available"
                    )
                    print(f"{label} bs={bs}: skipped, {run['skipped']}", flush=True)
                else:
                    run.update(launch(name, args, bs, tmp))
                    print(f"{label} bs={bs}: {run}", flush=True)
                out["runs"].append(run)
        # outputs do not depend on the batch size: one sentence-transformers run is the reference
        st_files = sorted(tmp.glob("st-*.npz"))
        theirs = load_dense(st_files[0], enc.vocab_size, special) if st_files else None
        for run in out["runs"]:
            name = {v: k for k, v in ENCODERS.items()}[run["encoder"]]
            f = tmp / f"{name}-{run['batch_size']}.npz"
            if theirs is not None and name != "st" and f.is_file():
                run["agreement_with_st"] = agreement(load_dense(f, enc.vocab_size, special), theirs)
    st_speed = {
        r["batch_size"]: r["docs_per_s"]
        for r in out["runs"]
        if r["encoder"] == ENCODERS["st"] and "docs_per_s" in r
    }
    for r in out["runs"]:
        if "docs_per_s" in r and st_speed:
            # against sentence-transformers at the same batch size, else at its fastest one run
            basis = (
                r["batch_size"] if r["batch_size"] in st_speed else max(st_speed, key=st_speed.get)
            )
            r["speed_ratio_to_st"] = round(r["docs_per_s"] / st_speed[basis], 2)
            st_best = next(
                x["best_docs_per_s"]
                for x in out["runs"]
                if x["encoder"] == ENCODERS["st"] and x["batch_size"] == basis
            )
            r["best_speed_ratio_to_st"] = round(r["best_docs_per_s"] / st_best, 2)
            r["st_batch_size_compared"] = basis
        rows.append(
            [
                r["encoder"],
                r["batch_size"],
                r.get("docs_per_s", r.get("skipped", r.get("error"))),
                r.get("speed_ratio_to_st", ""),
                r.get("best_speed_ratio_to_st", ""),
                r.get("peak_rss_mb", ""),
                r.get("peak_rise_mb", ""),
                r.get("agreement_with_st", {}).get(f"same_top{TOP}", ""),
                r.get("agreement_with_st", {}).get("max_abs_diff", ""),
            ]
        )
    docs = enc.encode_documents(texts)
    from granite_index.eval import load_beir

    _, queries = load_beir(BEIR / "scifact", split="test").eval_queries()
    out["terms_per_text"] = {
        "documents": nnz_stats(np.diff(docs.indptr)),
        "queries": nnz_stats(np.diff(enc.encode_queries(queries).indptr)),
    }
    headers = [
        "encoder",
        "batch",
        "docs/s",
        "× ST",
        "× ST (best)",
        "peak RSS MB",
        "rise MB",
        "same top10",
        "max |Δw|",
    ]
    print(markdown_table(headers, rows))
    print("terms per text:", out["terms_per_text"])
    out["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print("wrote", write_results("sparse_encode", out))


if __name__ == "__main__":
    main()
