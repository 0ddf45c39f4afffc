"""Evaluate a trained model folder on a BEIR dataset with the engine, and write its model card."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = ["evaluate", "model_card", "model_kind"]

Kind = Literal["auto", "dense", "sparse"]


def model_kind(model_dir: str | os.PathLike[str]) -> Literal["dense", "sparse"]:
    """``"sparse"`` for a folder whose ``modules.json`` ends in SpladePooling, else ``"dense"``."""
    modules = Path(model_dir) / "modules.json"
    if modules.is_file():
        kinds = [m.get("type", "") for m in json.loads(modules.read_text(encoding="utf-8"))]
        if any(k.endswith("SpladePooling") for k in kinds):
            return "sparse"
    return "dense"


def evaluate(
    model_dir: str | os.PathLike[str],
    beir_dir: str | os.PathLike[str],
    split: str = "test",
    *,
    kind: Kind = "auto",
    metrics: Sequence[str] = ("ndcg@10", "recall@100"),
    batch_size: int = 32,
) -> dict[str, float]:
    """Index a BEIR corpus with a trained model and score its queries.

    Builds a temporary :class:`granite_index.Collection` (dense, or SPLADE for a sparse
    folder), searches the queries judged in ``split`` and scores the run with
    :func:`granite_index.eval.evaluate`.

    Parameters
    ----------
    model_dir : str or path
        A folder saved by :class:`~trainer.modeling.BiEncoder` / ``SpladeModel`` (or any model
        the engine loads).
    beir_dir : str or path
        A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv``).
    split : str
        The qrels split.
    kind : {"auto", "dense", "sparse"}
        ``auto``: :func:`model_kind`.
    metrics : sequence of str
        ``name@k`` as in :func:`granite_index.eval.evaluate`.
    batch_size : int
        Encoding batch size.

    Returns
    -------
    dict of str to float
        Each metric's mean over the judged queries, e.g. ``{"ndcg@10": 0.64, ...}``.
    """
    from granite_index import Collection
    from granite_index.collection import evaluate_beir, index_beir
    from granite_index.eval import load_beir

    if kind not in ("auto", "dense", "sparse"):
        raise ValueError(f"kind must be 'auto', 'dense' or 'sparse'; got {kind!r}")
    if isinstance(metrics, str) or not metrics:
        raise ValueError("metrics must be a non-empty sequence such as ('ndcg@10',)")
    kind = model_kind(model_dir) if kind == "auto" else kind
    data = load_beir(beir_dir, split=split)
    k = max(int(m.partition("@")[2] or 10) for m in metrics)
    with tempfile.TemporaryDirectory(prefix="granite-eval-") as tmp:
        if kind == "dense":
            col = Collection.create(Path(tmp) / "c", model=model_dir, batch_size=batch_size)
        else:
            col = Collection.create(
                Path(tmp) / "c",
                dense=False,
                sparse="splade",
                sparse_model=model_dir,
                sparse_params={"batch_size": batch_size},
            )
        index_beir(col, data, chunk_size=max(len(data.doc_ids), 1), show_progress=False)
        mode = "dense" if kind == "dense" else "sparse"
        return evaluate_beir(col, data, mode=mode, k=k, metrics=metrics).scores


def _fmt(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4g}"


def _table(rows: Mapping[str, Any]) -> list[str]:
    return ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows.items()]


def model_card(
    *,
    stage: str,
    args: Mapping[str, Any],
    data: Mapping[str, int],
    steps: int,
    examples: int,
    final_loss: float | None,
    kind: Literal["dense", "sparse"],
    teacher: str | None = None,
    metrics: Mapping[str, float] | None = None,
    eval_data: str | None = None,
    logs: Mapping[str, float] | None = None,
) -> str:
    """Markdown model card: what was trained, on what, how far, how well, and how to load it.

    Parameters
    ----------
    stage : str
        The runner stage.
    args : mapping
        ``TrainingArgs.to_dict()``.
    data : mapping of str to int
        Dataset name → number of examples.
    steps, examples : int
        Optimizer steps and training examples seen.
    final_loss : float or None
        Mean loss of the last logging window.
    kind : {"dense", "sparse"}
        How the folder loads in the engine.
    teacher : str, optional
        The distillation teacher.
    metrics : mapping, optional
        Evaluation results (e.g. from :func:`evaluate`) on ``eval_data``.
    logs : mapping, optional
        Last logged extra numbers (e.g. SPLADE ``query_nnz`` / ``doc_nnz``).
    """
    loader = "DenseEncoder" if kind == "dense" else "SparseEncoder"
    leg = "dense" if kind == "dense" else "sparse"
    lines = [
        f"# {Path(str(args.get('output_dir', 'model'))).name}",
        "",
        f"Trained with the `granite_index` trainer, stage **{stage}** (Granite Embedding recipe, "
        "arXiv 2502.20204), starting from "
        f"`{args.get('model')}`" + (f", teacher `{teacher}`." if teacher else "."),
        "",
        "## Data",
        "",
        "| dataset | examples |",
        "|---|---|",
        *[f"| {name} | {n} |" for name, n in data.items()],
        "",
        "## Training",
        "",
        *_table(
            {
                "steps": steps,
                "examples seen": examples,
                "final loss": "n/a" if final_loss is None else f"{final_loss:.4f}",
                **{k: _fmt(v) for k, v in (logs or {}).items()},
            }
        ),
        "",
    ]
    if metrics:
        lines += [f"## Evaluation ({eval_data})", "", "| metric | value |", "|---|---|"]
        lines += [f"| {m} | {v:.4f} |" for m, v in metrics.items()] + [""]
    lines += [
        "## Use",
        "",
        "```python",
        f"from granite_index import Collection, {loader}",
        f"enc = {loader}('path/to/this/folder')",
        "col = Collection.create('runs/col', "
        + (
            "model='path/to/this/folder')"
            if kind == "dense"
            else "dense=False, sparse='splade', sparse_model='path/to/this/folder')"
        ),
        f"# col.add(ids, texts); col.search(queries, k=10, mode='{leg}')",
        "```",
        "",
        "## Configuration",
        "",
        "```json",
        json.dumps(dict(args), indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)
