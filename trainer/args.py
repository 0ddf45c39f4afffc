"""Training arguments shared by the recipes: one frozen dataclass with help text per field.

Works with ``transformers.HfArgumentParser`` for command lines, and round-trips through
:meth:`TrainingArgs.to_dict` / :meth:`TrainingArgs.from_dict` to be saved with a run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["TrainingArgs"]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class TrainingArgs:
    """Arguments of a training run of any stage (contrastive, distill, splade, retromae).

    Raises
    ------
    ValueError
        A field out of range (named in the message).
    """

    model: str = field(metadata=_help("Model to start from: local folder or Hugging Face id."))
    output_dir: str = field(metadata=_help("Folder for checkpoints and the final model."))
    learning_rate: float = field(default=2e-5, metadata=_help("Peak learning rate (AdamW)."))
    batch_size: int = field(default=32, metadata=_help("Queries per batch (per device)."))
    epochs: float = field(default=1.0, metadata=_help("Passes over the data; see max_steps."))
    max_steps: int = field(default=-1, metadata=_help("Stop after this many steps; -1: epochs."))
    warmup_steps: int = field(default=0, metadata=_help("Linear learning-rate warm-up steps."))
    temperature: float = field(default=0.02, metadata=_help("Contrastive temperature τ."))
    qq: bool = field(default=True, metadata=_help("Query-query negatives in the loss."))
    pp: bool = field(default=True, metadata=_help("Passage-passage negatives in the loss."))
    pq: bool = field(default=False, metadata=_help("Passage-query negatives (GTE's 3rd term)."))
    n_negatives: int = field(default=0, metadata=_help("Hard negatives per query (0: none)."))
    alpha: float = field(default=0.5, metadata=_help("Dataset sampling p ∝ size^alpha."))
    query_max_length: int = field(default=64, metadata=_help("Query truncation (tokens)."))
    passage_max_length: int = field(default=256, metadata=_help("Passage truncation (tokens)."))
    seed: int = field(default=42, metadata=_help("Seed for data order and initialisation."))
    bf16: bool = field(default=False, metadata=_help("bf16 autocast where supported."))
    save_steps: int = field(default=0, metadata=_help("Checkpoint every N steps; 0: never."))
    save_total_limit: int = field(
        default=2, metadata=_help("Checkpoints kept (oldest removed first); 0: keep all.")
    )
    logging_steps: int = field(default=10, metadata=_help("Log averages every N steps."))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay."))
    max_grad_norm: float = field(default=1.0, metadata=_help("Gradient clipping; 0: off."))
    pooling: str = field(
        default="",
        metadata=_help("Dense pooling 'cls' or 'mean'; '': the model folder's, else cls."),
    )
    distill_temperature: float = field(
        default=1.0, metadata=_help("Temperature of the distillation cross-entropy.")
    )
    contrastive_weight: float = field(
        default=0.0,
        metadata=_help("Weight of a contrastive term added to distillation (distill, splade)."),
    )
    embedding_weight: float = field(
        default=0.0,
        metadata=_help(
            "distill with a teacher model: weight of a cosine term pulling the student's vectors "
            "to the teacher's (same dimension)."
        ),
    )
    sparse_reg: str = field(default="flops", metadata=_help("SPLADE regulariser: flops or l1."))
    query_reg_weight: float = field(default=3e-4, metadata=_help("SPLADE query reg. weight."))
    doc_reg_weight: float = field(default=1e-4, metadata=_help("SPLADE document reg. weight."))
    reg_warmup_steps: int = field(
        default=0, metadata=_help("Quadratic warm-up steps of the SPLADE regularisers.")
    )
    encoder_mask_ratio: float = field(
        default=0.3, metadata=_help("RetroMAE: share of encoder tokens masked (0.15-0.3).")
    )
    decoder_mask_ratio: float = field(
        default=0.5, metadata=_help("RetroMAE: share of decoder tokens masked (0.5-0.7).")
    )
    eval_beir: str = field(
        default="", metadata=_help("BEIR folder evaluated after training (model card); '': none.")
    )
    eval_split: str = field(default="test", metadata=_help("Qrels split of eval_beir."))
    format_version: int = field(default=1, metadata=_help("Version of this argument format."))

    def __post_init__(self) -> None:
        for name in ("model", "output_dir"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string")
        positive = ("learning_rate", "batch_size", "temperature", "query_max_length")
        for name in (*positive, "epochs", "passage_max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number; got {type(value).__name__}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be > 0; got {value!r}")
        for name in ("warmup_steps", "n_negatives", "save_steps", "alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)!r}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be -1 (use epochs) or > 0; got {self.max_steps}")
        self._check_stage_fields()

    def _check_stage_fields(self) -> None:
        non_negative = (
            "save_total_limit",
            "weight_decay",
            "max_grad_norm",
            "contrastive_weight",
            "embedding_weight",
            "query_reg_weight",
            "doc_reg_weight",
            "reg_warmup_steps",
        )
        for name in non_negative:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number; got {type(value).__name__}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be >= 0; got {value!r}")
        if not isinstance(self.logging_steps, int) or self.logging_steps < 1:
            raise ValueError(f"logging_steps must be an int >= 1; got {self.logging_steps!r}")
        if not self.distill_temperature > 0:
            raise ValueError(f"distill_temperature must be > 0; got {self.distill_temperature!r}")
        for name in ("encoder_mask_ratio", "decoder_mask_ratio"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1); got {getattr(self, name)!r}")
        if self.pooling not in ("", "cls", "mean"):
            raise ValueError(f"pooling must be '', 'cls' or 'mean'; got {self.pooling!r}")
        if self.sparse_reg not in ("flops", "l1"):
            raise ValueError(f"sparse_reg must be 'flops' or 'l1'; got {self.sparse_reg!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingArgs:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainingArgs fields: {unknown}")
        if d.get("format_version", 1) != 1:
            raise ValueError(f"format_version {d['format_version']} is not supported (expected 1)")
        return cls(**d)

    def loss_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`trainer.losses.ContrastiveLoss`."""
        return {"temperature": self.temperature, "qq": self.qq, "pp": self.pp, "pq": self.pq}
