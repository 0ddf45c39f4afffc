"""RetroMAE continued pre-training of all-MiniLM-L6-v2 on the SciFact corpus.

Encoder masking 30%, decoder masking 50%; the saved encoder (a masked LM folder) starts a
dense fine-tune: ``granite-train dense-scifact -o model=runs/retromae-scifact``.
MiniLM ships without an MLM head, so the head's transform starts random (the vocabulary
projection is tied to the word embeddings).
"""

from __future__ import annotations

from trainer.recipes.base import SCIFACT, Recipe, beir_corpus

RECIPE = Recipe(
    name="retromae-scifact",
    stage="retromae",
    description=__doc__ or "",
    args={
        "model": "default",
        "learning_rate": 1e-4,
        "batch_size": 16,
        "max_steps": 300,
        "warmup_steps": 30,
        "passage_max_length": 256,
        "encoder_mask_ratio": 0.3,
        "decoder_mask_ratio": 0.5,
        "save_steps": 100,
    },
    params={"beir": SCIFACT, "limit": 0},
    data=beir_corpus,
)
