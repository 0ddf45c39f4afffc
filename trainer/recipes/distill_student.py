"""Distil the tuned dense model into a 3-layer student built from its base's layers 0, 2 and 5.

The student starts as all-MiniLM-L6-v2 with half its layers
(:func:`trainer.modeling.truncate_layers`) and learns the teacher's score distribution over each
query's [positive, BM25 negatives, in-batch positives] (Granite's knowledge-distillation stage).
Run ``dense-scifact`` first, or override ``teacher=``.
"""

from __future__ import annotations

from trainer.recipes.base import SCIFACT, Recipe, beir_pairs, student_from_layers

RECIPE = Recipe(
    name="distill-student",
    stage="distill",
    description=__doc__ or "",
    args={
        "model": "default",  # replaced by the truncated student
        "learning_rate": 1e-4,
        "batch_size": 16,
        "max_steps": 300,
        "warmup_steps": 30,
        "temperature": 0.05,
        "distill_temperature": 1.0,
        "n_negatives": 3,
        "query_max_length": 64,
        "passage_max_length": 256,
        "save_steps": 100,
        "eval_beir": SCIFACT,
    },
    params={
        "teacher": "runs/dense-scifact",
        "student_from": "default",
        "student_layers": 3,
        "beir": SCIFACT,
        "titles": True,
        "limit": 0,
        "mine": "bm25",
        "mining_model": None,
        "depth": 100,
        "skip": 0,
        "mine_negatives": 7,
        "max_similarity": None,
    },
    data=beir_pairs,
    prepare=student_from_layers,
)
