"""The ``merge`` recipes: merge model folders, write a card, evaluate when asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_merge"]


def _resolve(model: str) -> str:
    from granite_index.encoders.resolve import resolve_model

    return str(resolve_model(model).path)


def cocktail_weights(paths: list[str], params: dict[str, Any]) -> dict[str, Any]:
    """LM-Cocktail weights: ``softmax(-loss / τ)`` of each model's contrastive loss on a few
    labelled examples (``cocktail_n`` train-qrels pairs of ``cocktail_beir`` with BM25-mined
    negatives; ``cocktail_temperature`` τ)."""
    from granite_index.eval import load_beir
    from trainer.data import read_beir_pairs
    from trainer.merging import few_shot_losses, lm_cocktail_weights
    from trainer.mining import MiningConfig, mine_hard_negatives

    beir = params.get("cocktail_beir")
    if not beir:
        raise ValueError("weights='cocktail' needs cocktail_beir: a BEIR folder with train qrels")
    split = params.get("cocktail_split", "train")
    n = int(params.get("cocktail_n", 32))
    pairs = read_beir_pairs(beir, split)
    pairs = [pairs[i] for i in np.random.default_rng(0).permutation(len(pairs))[:n]]
    corpus = [t for t in load_beir(beir, split=split).documents() if t.strip()]
    examples = mine_hard_negatives(pairs, corpus, MiningConfig(retriever="bm25", n_negatives=3))
    losses = few_shot_losses(paths, examples)
    tau = float(params.get("cocktail_temperature", 1.0))
    return {
        "examples": len(examples),
        "split": f"{beir} ({split})",
        "losses": losses,
        "temperature": tau,
        "weights": lm_cocktail_weights(losses, tau),
    }


def run_merge(params: dict[str, Any], out: Path) -> Path:
    """Merge ``params["models"]`` into ``out`` with :func:`trainer.merging.merge_models`.

    ``params``: ``models`` (folders, ``default`` for the bundled model), ``method``,
    ``weights`` (a list, or ``"cocktail"``: see :func:`cocktail_weights`), ``base``,
    ``scaling``, ``density``, ``eval_beir``, ``eval_split``.
    """
    from trainer.evaluation import evaluate
    from trainer.merging import merge_models
    from trainer.recipes.models import check_local_model

    models = params["models"]
    if isinstance(models, str) or not models:
        raise ValueError(f"models must be a non-empty list of model folders; got {models!r}")
    for m in models:
        check_local_model(str(m), "models")
    paths = [_resolve(str(m)) for m in models]
    base = _resolve(str(params["base"])) if params.get("base") else None
    weights = params.get("weights")
    cocktail = None
    if weights == "cocktail":
        cocktail = cocktail_weights(paths, params)
        weights = cocktail["weights"]
    merge_models(
        paths,
        out,
        params.get("method", "linear"),
        base=base,
        weights=weights,
        scaling=params.get("scaling", 1.0),
        density=params.get("density", 0.2),
    )
    for stale in ("train_log.jsonl", "train_summary.json", "training_args.json"):
        (out / stale).unlink(missing_ok=True)  # copied from the first model, not this one's
    metrics = {}
    if cocktail is not None:
        params = {**params, "cocktail": cocktail}
    if params.get("eval_beir"):
        metrics = evaluate(out, params["eval_beir"], params.get("eval_split", "test"))
    lines = [
        f"# {out.name}",
        "",
        f"A `{params.get('method', 'linear')}` merge (`trainer.merging.merge_models`) of:",
        "",
        *[f"- `{m}`" for m in models],
        "",
        "```json",
        json.dumps(params, indent=2, sort_keys=True),
        "```",
        "",
    ]
    if metrics:
        lines += [f"## Evaluation ({params['eval_beir']})", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in metrics.items()] + [""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "merge_summary.json").write_text(
        json.dumps({"params": params, "metrics": metrics}, indent=2), encoding="utf-8"
    )
    return out
