"""Dense fine-tune of the bundled all-MiniLM-L6-v2 on SciFact (Granite's contrastive stage).

Data: the BEIR train-qrels pairs plus title → abstract pairs of the corpus (weak pairs: they
include the abstracts of the test corpus, never its queries), hard negatives mined with the
start model (dense, ranks 5-100, candidates with cosine > 0.95 to a positive dropped), 7 kept
per query and 2 drawn per step. Improved contrastive loss with in-batch, hard, query-query and
passage-passage negatives. The two datasets are drawn equally often (``alpha=0``: the 919 train
pairs would otherwise get 30 % of the batches against the 5,183 title pairs); passages are cut
at 128 tokens in training only (the saved model keeps the start model's 256). These defaults are
the run in README "Training results" (420 steps, ~70 min on 2 CPU cores).
"""

from __future__ import annotations

from trainer.recipes.base import SCIFACT, Recipe, beir_pairs

RECIPE = Recipe(
    name="dense-scifact",
    stage="contrastive",
    description=__doc__ or "",
    args={
        "model": "default",
        "learning_rate": 3e-5,
        "batch_size": 16,
        "max_steps": 420,
        "warmup_steps": 30,
        "temperature": 0.05,
        "n_negatives": 2,
        "alpha": 0.0,
        "query_max_length": 64,
        "passage_max_length": 128,
        "save_steps": 30,
        "eval_beir": SCIFACT,
    },
    params={
        "beir": SCIFACT,
        "titles": True,
        "limit": 0,
        "mine": "dense",
        "mining_model": "default",
        "depth": 100,
        "skip": 5,
        "mine_negatives": 7,
        "max_similarity": 0.95,
    },
    data=beir_pairs,
)
