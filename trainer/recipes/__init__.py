"""Training recipes: short configs that call the one runner (``granite-train <name>``).

==================  ===========  ======================================================
name                stage        what
==================  ===========  ======================================================
dense-scifact       contrastive  fine-tune all-MiniLM-L6-v2 on SciFact, mined negatives
distill-student     distill      3-layer student from the tuned model
merge-scifact       merge        tuned model + base, linear
splade-distill      splade       SPLADE-tiny distilled from the tuned dense model
retromae-scifact    retromae     RetroMAE continued pre-training on the SciFact corpus
==================  ===========  ======================================================
"""

from __future__ import annotations

from trainer.recipes import (
    dense_scifact,
    distill_student,
    merge_scifact,
    retromae_scifact,
    splade_distill,
)
from trainer.recipes.base import Recipe, parse_overrides, run_recipe

__all__ = ["RECIPES", "Recipe", "get_recipe", "parse_overrides", "run_recipe"]

RECIPES: dict[str, Recipe] = {
    m.RECIPE.name: m.RECIPE
    for m in (dense_scifact, distill_student, merge_scifact, splade_distill, retromae_scifact)
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises
    ------
    ValueError
        No recipe has that name (the message lists them).
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; recipes: {sorted(RECIPES)}")
    return RECIPES[name]
