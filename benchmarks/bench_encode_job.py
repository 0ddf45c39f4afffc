"""The batch encoding job (``encode_corpus``) against a plain sentence-transformers loop.

Run:  .venv/bin/python -m benchmarks.bench_encode_job [--n 512] [--sizes 10000 40000]

(Smoke test: ``--n 32 --sizes 500 2000 --repeats 1``.)

Every measurement runs in its own fresh child process (``python -m benchmarks.bench_encode_job
--child ...``), so its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own;
torch uses its default threads (all cores) in each.

1. Throughput, the first ``--n`` SciFact documents (title + text, BEIR's convention), the bundled
   all-MiniLM-L6-v2 (``resolve_model(None).path``), batch size 32, median of ``--repeats``
   child processes (a fresh output folder for each job run):
     * ``encode_corpus(jsonl, out, batch_size=32, workers=1)`` (dense only) in fp32, and with the
       default ``precision="auto"`` (bf16 autocast where the CPU has native bf16); timed around the
       whole call: model load, reading the jsonl, encoding, Lance commits;
     * ``SentenceTransformer(path).encode(texts, batch_size=32)`` (fp32): timed around model load +
       encode (comparable with the job's whole call) and around ``encode`` alone (after a one-batch
       warm-up in the same process).
   docs/s = n / seconds; peak RSS of the child. The repeats are interleaved (job fp32, job auto,
   ST, job fp32, ...), so load from a neighbour falls on all three alike.
2. Bounded memory: generated jsonl corpora of ``--sizes`` lines (30 random words each from the
   SciFact vocabulary, seed 0), encoded with a tiny random BERT (1 layer, hidden 128, the bundled
   WordPiece tokenizer, saved with ``AutoModel``; mean pooling) by the job (fp32, chunk 1024) and
   by ``SentenceTransformer(tiny).encode`` over all texts at once (the texts read into a list, one
   numpy array back). Peak RSS for each size, its rise over the RSS before the model loads, and
   the size of all vectors as one float32 array.
Writes benchmarks/results/encode_job.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BEIR, ROOT, machine, markdown_table, write_results

BATCH = 32
TINY_DIM = 128


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


# ---------------------------------------------------------------------- child processes
def child(kind: str, conf: dict[str, Any]) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    before = rss_mb()
    out: dict[str, Any] = {"rss_before_mb": round(before, 1)}
    if kind == "job":
        from granite_index.jobs import encode_corpus

        t0 = time.perf_counter()
        s = encode_corpus(
            conf["input"],
            conf["out"],
            model=conf["model"],
            precision=conf["precision"],
            batch_size=BATCH,
            workers=1,
            show_progress=False,
        )
        out["seconds"] = time.perf_counter() - t0
        out["rows"] = s.rows
        assert s.complete and s.rows == conf["n"], s
    else:  # sentence-transformers
        import torch
        from sentence_transformers import SentenceTransformer

        with open(conf["input"], encoding="utf-8") as fh:
            recs = [json.loads(line) for line in fh]
        texts = [f"{r.get('title') or ''} {r['text']}".strip() for r in recs]
        del recs
        t0 = time.perf_counter()
        model = SentenceTransformer(conf["model"], device="cpu")
        load_s = time.perf_counter() - t0
        if conf.get("warmup"):
            model.encode(texts[:BATCH], batch_size=BATCH)
        t1 = time.perf_counter()
        with torch.inference_mode():
            vecs = model.encode(texts, batch_size=BATCH)
        out["encode_seconds"] = time.perf_counter() - t1
        out["seconds"] = load_s + out["encode_seconds"]
        out["rows"] = int(vecs.shape[0])
        out["array_mb"] = round(vecs.nbytes / 2**20, 1)
        assert vecs.shape[0] == conf["n"]
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["rise_mb"] = round(out["peak_rss_mb"] - before, 1)
    return out


def run_child(kind: str, conf: dict[str, Any]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("r", suffix=".json") as res:
        cmd = [sys.executable, "-m", "benchmarks.bench_encode_job", "--child", kind]
        cmd += ["--conf", json.dumps(conf), "--result", res.name]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        subprocess.run(cmd, check=True, cwd=ROOT, env=env)
        return json.loads(Path(res.name).read_text())


# ---------------------------------------------------------------------- inputs
def scifact_jsonl(n: int, path: Path) -> Path:
    with open(BEIR / "scifact" / "corpus.jsonl", encoding="utf-8") as src, open(path, "w") as dst:
        for i, line in enumerate(src):
            if i == n:
                break
            dst.write(line)
    return path


def synthetic_jsonl(n: int, path: Path, words_per_doc: int = 30) -> Path:
    text = (BEIR / "scifact" / "corpus.jsonl").read_text(encoding="utf-8")
    vocab = sorted(set(re.findall(r"[a-z]{3,}", text.lower())))
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            words = " ".join(rng.choices(vocab, k=words_per_doc))
            fh.write(json.dumps({"id": f"d{i}", "text": words}) + "\n")
    return path


def tiny_model(folder: Path) -> Path:
    """A random 1-layer BERT, hidden 128, with the bundled WordPiece vocabulary (AutoModel)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from granite_index.encoders.resolve import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(None).path)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=TINY_DIM,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=256,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    return folder


# ---------------------------------------------------------------------- main
def med(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=512, help="SciFact documents for throughput")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 40000])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--conf", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = child(args.child, json.loads(args.conf))
        Path(args.result).write_text(json.dumps(res))
        return

    from granite_index.encoders.resolve import resolve_model

    load_start = os.getloadavg()
    bundled = str(resolve_model(None).path)
    throughput: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="encode-job-bench-") as tmp:
        tmp = Path(tmp)
        corpus = scifact_jsonl(args.n, tmp / "scifact.jsonl")
        kinds = {
            "encode_corpus fp32": ("job", {"precision": "fp32"}),
            "encode_corpus precision=auto": ("job", {"precision": "auto"}),
            "SentenceTransformer.encode fp32": ("st", {"warmup": True}),
        }
        all_runs: dict[str, list[dict[str, Any]]] = {label: [] for label in kinds}
        for r in range(args.repeats):  # interleaved, so a busy neighbour hits all alike
            for j, (label, (kind, extra)) in enumerate(kinds.items()):
                conf = {"input": str(corpus), "out": str(tmp / f"t-{j}-{r}")}
                conf.update(model=bundled, n=args.n, **extra)
                all_runs[label].append(run_child(kind, conf))
                print(label, r, all_runs[label][-1], flush=True)
        for label, (kind, _) in kinds.items():
            runs = all_runs[label]
            row = {
                "docs_per_s": round(args.n / med(runs, "seconds"), 1),
                "seconds_median": round(med(runs, "seconds"), 2),
                "peak_rss_mb_median": round(med(runs, "peak_rss_mb"), 1),
                "runs": runs,
            }
            if kind == "st":
                row["encode_only_docs_per_s"] = round(args.n / med(runs, "encode_seconds"), 1)
            throughput[label] = row

        model = tiny_model(tmp / "tiny-bert")
        for size in args.sizes:
            data = synthetic_jsonl(size, tmp / f"synthetic-{size}.jsonl")
            common = {"input": str(data), "model": str(model), "n": size}
            job = run_child("job", {**common, "out": str(tmp / f"m-{size}"), "precision": "fp32"})
            print("job", size, job, flush=True)
            st = run_child("st", common)
            print("st", size, st, flush=True)
            memory[str(size)] = {
                "vectors_as_one_array_mb": round(size * TINY_DIM * 4 / 2**20, 1),
                "jsonl_mb": round(data.stat().st_size / 2**20, 1),
                "encode_corpus": job,
                "SentenceTransformer.encode": st,
            }

    out = {
        "machine": {
            **machine(),
            "load_average_at_start": [round(x, 2) for x in load_start],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "throughput": {
            "docs": f"first {args.n} SciFact documents (title + text)",
            "model": "bundled all-MiniLM-L6-v2",
            "batch_size": BATCH,
            "repeats": args.repeats,
            "rows": throughput,
        },
        "bounded_memory": {
            "corpus": "30 random SciFact-vocabulary words per line, seed 0",
            "model": f"random BERT, 1 layer, hidden {TINY_DIM}, mean pooling, fp32",
            "job": "encode_corpus dense only, chunk_size 1024, batch 32, workers 1",
            "sizes": memory,
        },
    }
    t1 = [
        [
            label,
            r["docs_per_s"],
            r.get("encode_only_docs_per_s", "–"),
            r["seconds_median"],
            r["peak_rss_mb_median"],
        ]
        for label, r in throughput.items()
    ]
    print(
        markdown_table(
            ["method", "docs/s (whole call)", "docs/s (encode only)", "s (median)", "peak RSS MB"],
            t1,
        )
    )
    t2 = []
    for size, m in memory.items():
        for label in ("encode_corpus", "SentenceTransformer.encode"):
            r = m[label]
            t2.append(
                [
                    size,
                    label,
                    r["peak_rss_mb"],
                    r["rise_mb"],
                    m["vectors_as_one_array_mb"],
                    round(int(size) / r["seconds"], 1),
                ]
            )
    headers = ["docs", "method", "peak RSS MB", "rise MB", "vectors as one array MB", "docs/s"]
    print(markdown_table(headers, t2))
    if args.n < 512 or min(args.sizes) < 5000:
        print("smoke test: results not written")
    else:
        print("wrote", write_results("encode_job", out))


if __name__ == "__main__":
    main()
