"""Distil the tuned dense model into a 3-layer student made of its layers 0, 2 and 5.

The student starts as the teacher (``runs/dense-scifact``) with half its layers
(:func:`trainer.modeling.truncate_layers`; ``student_from=default`` takes them from the untuned
all-MiniLM-L6-v2 instead) and learns the teacher's score distribution over each query's
[positive, BM25 negatives, in-batch positives] (Granite's knowledge-distillation stage), plus a
cosine term pulling its vectors to the teacher's (``embedding_weight``). Run ``dense-scifact``
first, or override ``teacher=``.
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
        "embedding_weight": 1.0,
        "alpha": 0.0,
        "n_negatives": 2,
        "query_max_length": 64,
        "passage_max_length": 128,
        "save_steps": 50,
        "eval_beir": SCIFACT,
    },
    params={
        "teacher": "runs/dense-scifact",
        "student_from": None,  # None: the teacher
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
