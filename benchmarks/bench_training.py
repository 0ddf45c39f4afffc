"""Training results (trainer/, issue 5): the models the recipes made, evaluated with the engine.

Run:  .venv/bin/python -m benchmarks.bench_training [--runs runs] [--speed-docs 256]

Reads the run folders the ``granite-train`` recipes wrote (commands in README, "Training
results") and, for every model found:

* nDCG@10 / Recall@100 on SciFact test (the in-domain set; SciFact's train split is what the
  recipes train on) and on CISI, MED and CACM (never trained on), each by indexing the corpus
  with the model in a temporary :class:`granite_index.Collection`
  (:func:`trainer.evaluation.evaluate`). Results are cached per model folder and weights file
  (size + mtime) in ``benchmarks/out/training_evals.json``: a re-run only evaluates what changed.
  The untouched bundled models' figures are taken from the engine's own benchmarks
  (``dense.json``, ``hybrid_quality.json``: same engine, model and precision) unless
  ``--fresh-baselines``.
* encoding speed of the distilled student against its teacher (and the start model): the same
  SciFact abstracts, batch 32, median of 3 after a warm-up, in the same run;
* SPLADE sparsity before / after distillation: mean non-zero terms per query (the 300 test
  queries) and per document (the same abstracts).

Writes ``benchmarks/results/training.json`` and prints markdown tables. Runs whose folders are not
here (``runs/`` is not versioned) keep their figures from the previous ``training.json``, marked
``"carried"`` with the date they were measured.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import BEIR, CACHE, ROOT, machine, markdown_table, median_time, write_results

DATASETS = ("scifact", "cisi", "med", "cacm")
#: label -> (model folder or bundled name, datasets to evaluate on)
MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "start: all-MiniLM-L6-v2": ("bundled:all-MiniLM-L6-v2", DATASETS),
    "dense-scifact (fine-tuned, 420 steps)": ("{runs}/dense-scifact", DATASETS),
    "merge-scifact (tuned + start, linear 0.5/0.5)": ("{runs}/merge-scifact", DATASETS),
    "distill-student (3 layers of dense-scifact, + embedding term, 300 steps)": (
        "{runs}/distill-student",
        ("scifact",),
    ),
    "distill-student-noemb (the same without the embedding term; ablation)": (
        "{runs}/distill-student-noemb",
        ("scifact",),
    ),
    "distill-student-base (3 layers of the start, no embedding term, 300 steps)": (
        "{runs}/distill-student-base",
        ("scifact",),
    ),
    "dense-scifact-180 (earlier run: 180 steps, alpha 0.5)": ("{runs}/dense-scifact-180", DATASETS),
    "merge-scifact-180 (dense-scifact-180 + start)": ("{runs}/merge-scifact-180", DATASETS),
    "distill-student-180 (from dense-scifact-180, 150 steps)": (
        "{runs}/distill-student-180",
        ("scifact",),
    ),
    "retromae-then-dense (ablation; as dense-scifact-180)": (
        "{runs}/dense-after-retromae",
        ("scifact",),
    ),
    "start: SPLADE-tiny": ("bundled:splade-tiny", ("scifact",)),
    "splade-distill (SPLADE-tiny distilled from dense-scifact)": (
        "{runs}/splade-distill",
        ("scifact",),
    ),
    "splade-distill-180 (distilled from dense-scifact-180)": (
        "{runs}/splade-distill-180",
        ("scifact",),
    ),
}


def _stamp(model: str) -> str | None:
    """Identity of a model folder's weights (None when the folder has none yet)."""
    if model.startswith("bundled:"):
        return model
    weights = [p for p in Path(model).glob("*.safetensors")] + list(Path(model).glob("*.bin"))
    if not weights:
        return None
    return ";".join(
        f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in sorted(weights)
    )


def _bundled_path(model: str) -> str:
    from granite_index.encoders.resolve import resolve_model

    return str(resolve_model(model).path)


def _evaluated_in_run(model: str, ds: str) -> dict[str, float] | None:
    """The metrics a training run computed on ``ds`` test at its end (same evaluate function)."""
    f = Path(model) / "train_summary.json"
    if not f.is_file():
        return None
    summary = json.loads(f.read_text())
    where = str(summary.get("eval_data", ""))
    if summary.get("metrics") and where.endswith(f"/{ds} (test)"):
        return summary["metrics"]
    return None


def _bundled_measured(model: str, ds: str) -> dict[str, Any] | None:
    """The untouched bundled models' figures from the engine's own benchmarks (same engine, same
    model and precision): ``dense.json`` (MiniLM) and ``hybrid_quality.json`` (SPLADE-tiny)."""
    results = ROOT / "benchmarks" / "results"
    if model == "bundled:all-MiniLM-L6-v2" and (results / "dense.json").is_file():
        for row in json.loads((results / "dense.json").read_text())["quality"]:
            if row["dataset"] == ds:
                keep = {k: row[k] for k in ("ndcg@10", "recall@100")}
                return {**keep, "source": "benchmarks/results/dense.json"}
    if model == "bundled:splade-tiny" and (results / "hybrid_quality.json").is_file():
        data = json.loads((results / "hybrid_quality.json").read_text())["datasets"].get(ds)
        if data and "splade" in data["methods"]:
            row = data["methods"]["splade"]
            keep = {k: row[k] for k in ("ndcg@10", "recall@100")}
            return {**keep, "source": "benchmarks/results/hybrid_quality.json"}
    return None


def evaluations(runs: str, fresh: bool = False) -> dict[str, dict[str, Any]]:
    from trainer.evaluation import evaluate

    cache_file = CACHE / "training_evals.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    out: dict[str, dict[str, Any]] = {}
    order = sorted(MODELS, key=lambda label: MODELS[label][0].startswith("bundled:"))
    for label in order:
        pattern, datasets = MODELS[label]
        model = pattern.format(runs=runs)
        stamp = _stamp(model)
        if stamp is None:
            print(f"{label}: {model} not found, skipped", flush=True)
            continue
        path = _bundled_path(model) if model.startswith("bundled:") else model
        out[label] = {"model": model, "datasets": {}}
        for ds in datasets:
            key = f"{model}|{stamp}|{ds}"
            in_run = _evaluated_in_run(model, ds)
            if key not in cache and in_run:
                cache[key] = {**in_run, "source": "the run's own evaluation (train_summary.json)"}
            earlier = _bundled_measured(model, ds)
            if key not in cache and earlier and not fresh:
                cache[key] = earlier
            if key not in cache:
                t0 = time.perf_counter()
                cache[key] = {
                    **evaluate(path, BEIR / ds),
                    "seconds": round(time.perf_counter() - t0),
                }
                CACHE.mkdir(parents=True, exist_ok=True)
                cache_file.write_text(json.dumps(cache, indent=2))
            out[label]["datasets"][ds] = cache[key]
            print(f"{label:48s} {ds:8s} {cache[key]}", flush=True)
    return {label: out[label] for label in MODELS if label in out}


def encode_speed(runs: str, n_docs: int) -> dict[str, Any]:
    """Docs/s of the teacher, the student and the start model on the same texts, same run."""
    from granite_index import DenseEncoder
    from granite_index.eval import load_beir

    models = {
        "teacher: dense-scifact (6 layers)": f"{runs}/dense-scifact",
        "student: distill-student (3 layers)": f"{runs}/distill-student",
    }
    if not all(Path(m).is_dir() for m in models.values()):
        return {}
    texts = load_beir(BEIR / "scifact", split="test").documents()[:n_docs]
    rows: dict[str, Any] = {}
    for label, model in models.items():
        enc = DenseEncoder(model, batch_size=32)
        enc.encode_documents(texts[:64])  # warm-up
        med, times = median_time(lambda enc=enc: enc.encode_documents(texts), 3)
        rows[label] = {
            "docs_per_s": round(n_docs / med, 2),
            "seconds": [round(t, 2) for t in times],
        }
        print(label, rows[label], flush=True)
    t, s = rows.values()
    return {
        "n_docs": n_docs,
        "batch_size": 32,
        "rows": rows,
        "student_over_teacher": round(s["docs_per_s"] / t["docs_per_s"], 2),
    }


def sparsity(runs: str, n_docs: int) -> dict[str, Any]:
    """Mean non-zero terms per query and per document, before and after SPLADE distillation."""
    from granite_index import SparseEncoder
    from granite_index.eval import load_beir

    data = load_beir(BEIR / "scifact", split="test")
    texts = data.documents()[:n_docs]
    queries = data.eval_queries()[1]
    out: dict[str, Any] = {}
    for label, model in (
        ("start: SPLADE-tiny", _bundled_path("bundled:splade-tiny")),
        ("splade-distill", f"{runs}/splade-distill"),
        ("splade-distill-180", f"{runs}/splade-distill-180"),
    ):
        if not Path(model).is_dir():
            continue
        enc = SparseEncoder(model)
        d, q = enc.encode_documents(texts), enc.encode_queries(queries)
        out[label] = {
            "doc_nnz_mean": round(float(np.diff(d.indptr).mean()), 1),
            "query_nnz_mean": round(float(np.diff(q.indptr).mean()), 1),
        }
        print(label, out[label], flush=True)
    return out


def _train_info(runs: str) -> dict[str, Any]:
    info = {}
    names = (
        "dense-scifact",
        "distill-student",
        "distill-student-noemb",
        "distill-student-base",
        "splade-distill",
        "dense-after-retromae",
    )
    for name in (n for base in names for n in (base, f"{base}-180")):
        f = Path(runs) / name / "train_summary.json"
        if f.is_file():
            info[name] = json.loads(f.read_text())
    return info


def _carry(fresh: dict[str, Any], previous: dict[str, Any], keys: Any, note: str) -> dict[str, Any]:
    """``fresh`` plus the ``previous`` entries of ``keys`` it lacks, each marked as carried."""
    out = dict(fresh)
    for key in keys:
        if key not in out and isinstance(previous.get(key), dict):
            out[key] = {"carried": note, **previous[key]}  # an older "carried" date stays
            print(
                f"{key}: run folder not found here; carried from the previous results", flush=True
            )
    return out


def _with_previous(out: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Keep the figures of runs whose folders are gone (``runs/`` is not versioned, a new checkout
    starts without it) from the previous ``training.json``, marked ``carried`` with its date."""
    if not previous:
        return out
    note = f"measured {previous.get('machine', {}).get('date', '?')}; run folder not re-measured"
    prev = {k: previous.get(k) or {} for k in ("evaluations", "splade_sparsity", "training")}
    out["evaluations"] = _carry(out["evaluations"], prev["evaluations"], MODELS, note)
    out["evaluations"] = {k: out["evaluations"][k] for k in MODELS if k in out["evaluations"]}
    out["splade_sparsity"] = _carry(
        out["splade_sparsity"], prev["splade_sparsity"], prev["splade_sparsity"], note
    )
    out["training"] = _carry(out["training"], prev["training"], prev["training"], note)
    if not out["student_encode_speed"] and previous.get("student_encode_speed"):
        out["student_encode_speed"] = {"carried": note, **previous["student_encode_speed"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", default=str(ROOT / "runs"), help="folder holding the run folders")
    ap.add_argument("--speed-docs", type=int, default=256, help="abstracts for speed / sparsity")
    ap.add_argument(
        "--fresh-baselines",
        action="store_true",
        help="evaluate the bundled start models here too (default: reuse dense.json / "
        "hybrid_quality.json, the same engine's measurements)",
    )
    args = ap.parse_args()
    runs = str(Path(args.runs))
    evals = evaluations(runs, fresh=args.fresh_baselines)
    speed = encode_speed(runs, args.speed_docs)
    sparse = sparsity(runs, args.speed_docs)
    before = ROOT / "benchmarks" / "results" / "training.json"
    previous = json.loads(before.read_text()) if before.is_file() else {}
    out = {
        "machine": machine(),
        "runs": runs.replace(str(ROOT) + "/", ""),
        "evaluations": evals,
        "student_encode_speed": speed,
        "splade_sparsity": sparse,
        "training": _train_info(runs),
    }
    out = _with_previous(out, previous)
    evals = out["evaluations"]
    headers = ["model", *[f"{d} nDCG@10" for d in DATASETS]]
    rows = []
    for label, r in evals.items():
        cells = [r["datasets"].get(d, {}).get("ndcg@10") for d in DATASETS]
        rows.append([label, *[f"{c:.4f}" if c is not None else "–" for c in cells]])
    print(markdown_table(headers, rows))
    if speed:
        print("student / teacher encode speed:", speed["student_over_teacher"])
    print("wrote", write_results("training", out))


if __name__ == "__main__":
    main()
