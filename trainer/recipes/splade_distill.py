"""SPLADE distillation: the bundled SPLADE-tiny learns the tuned dense model's scores on SciFact.

Dot-product scores of [positive, 3 BM25 negatives, in-batch positives] against the teacher's
cosine / 0.05 distribution, with FLOPS regularisation of queries and documents warmed up over
100 steps; the log and card report non-zero terms per query and per document. Run
``dense-scifact`` first, or override ``teacher=``.
"""

from __future__ import annotations

from trainer.recipes.base import SCIFACT, Recipe, beir_pairs

RECIPE = Recipe(
    name="splade-distill",
    stage="splade",
    description=__doc__ or "",
    args={
        "model": "bundled:splade-tiny",
        "learning_rate": 5e-5,
        "batch_size": 8,
        "max_steps": 300,
        "warmup_steps": 30,
        "temperature": 0.05,
        "n_negatives": 3,
        "query_max_length": 64,
        "passage_max_length": 256,
        "sparse_reg": "flops",
        "query_reg_weight": 3e-4,
        "doc_reg_weight": 1e-4,
        "reg_warmup_steps": 100,
        "save_steps": 100,
        "eval_beir": SCIFACT,
    },
    params={
        "teacher": "runs/dense-scifact",
        "beir": SCIFACT,
        "titles": False,
        "limit": 0,
        "mine": "bm25",
        "mining_model": None,
        "depth": 100,
        "skip": 0,
        "mine_negatives": 7,
        "max_similarity": None,
    },
    data=beir_pairs,
)
