"""Merge the SciFact-tuned dense model with its base (linear, equal weights).

Averaging a fine-tuned model with its start point keeps some of the base's generality (as in
LM-Cocktail and Granite's model merging). Override ``models=[...]``, ``weights=[...]``,
``method=ties base=default``, ``weights=cocktail`` (LM-Cocktail: weights from each model's loss
on ``cocktail_n`` SciFact train pairs) and so on. Run ``dense-scifact`` first.
"""

from __future__ import annotations

from trainer.recipes.base import SCIFACT, Recipe

RECIPE = Recipe(
    name="merge-scifact",
    stage="merge",
    description=__doc__ or "",
    args={},
    params={
        "models": ["runs/dense-scifact", "default"],
        "method": "linear",
        "weights": [0.5, 0.5],
        "base": None,
        "scaling": 1.0,
        "density": 0.2,
        "eval_beir": SCIFACT,
        "eval_split": "test",
        # weights="cocktail": LM-Cocktail weights from the models' losses on a few train pairs
        "cocktail_beir": SCIFACT,
        "cocktail_split": "train",
        "cocktail_n": 32,
        "cocktail_temperature": 1.0,
    },
)
