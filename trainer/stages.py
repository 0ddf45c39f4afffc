"""What one training step computes in each stage: a batch of examples → (loss, numbers to log).

=============  ============  =================================================================
stage          model         loss
=============  ============  =================================================================
contrastive    BiEncoder     improved contrastive (GTE): in-batch + hard negatives (+ qq, pp)
distill        BiEncoder     cross-entropy to the teacher's distribution over [positive,
                             negatives, in-batch positives]; + contrastive, + cosine to the
                             teacher's vectors, each if weighted
splade         SpladeModel   distillation from a dense teacher over the same candidates, or
                             contrastive on dot products without one; + FLOPS / L1 on
                             queries and documents (warmed up)
retromae       RetroMAE      encoder MLM + decoder reconstruction
=============  ============  =================================================================

Every random choice (which positive, which negatives, pseudo-negatives) draws from the runner's
``numpy.random.Generator``, which checkpoints save, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from trainer.args import TrainingArgs
from trainer.data import TrainExample, perturb_text
from trainer.losses import (
    ContrastiveLoss,
    DistillationLoss,
    SparseRegularizer,
    embedding_distillation_loss,
)

__all__ = ["STAGES", "Stage", "StageName", "StepInput"]

StageName = Literal["contrastive", "distill", "splade", "retromae"]


@dataclass
class StepInput:
    """Everything a step function reads besides the batch."""

    args: TrainingArgs
    model: torch.nn.Module
    teacher: Any
    rng: np.random.Generator
    step: int


@dataclass(frozen=True)
class Stage:
    """A stage: how to build its model, check its data, and compute one step."""

    name: str
    build: Callable[[TrainingArgs], torch.nn.Module]
    check: Callable[[Mapping[str, Sequence[Any]], bool], None]
    step: Callable[[StepInput, list[Any]], tuple[Tensor, dict[str, float]]]


# ---------------------------------------------------------------- sampling helpers
def _pick(ex: TrainExample, n: int, rng: np.random.Generator) -> tuple[int, list[int]]:
    """One positive index and ``n`` negative indices (with replacement if fewer exist)."""
    pos = int(rng.integers(len(ex.positives)))
    if n == 0 or not ex.negatives:
        return pos, []
    replace = len(ex.negatives) < n
    return pos, [int(i) for i in rng.choice(len(ex.negatives), size=n, replace=replace)]


@dataclass
class _Texts:
    queries: list[str]
    positives: list[str]
    negatives: list[str]  # flat, n per query (empty when n == 0)
    n: int
    teacher_scores: list[list[float]] | None  # [positive, negatives...] per query, precomputed


def _gather(
    inp: StepInput, batch: list[TrainExample], *, pseudo: bool, scores: bool = False
) -> _Texts:
    """Texts of a batch; ``pseudo``: perturbed positives stand in for missing negatives."""
    n = inp.args.n_negatives
    if not pseudo and not all(ex.negatives for ex in batch):
        n = 0  # a batch with an example without negatives trains on in-batch negatives only
    queries, positives, negatives, teacher = [], [], [], []
    for ex in batch:
        pos, negs = _pick(ex, n, inp.rng)
        queries.append(ex.prompt + ex.query)
        positives.append(ex.positives[pos])
        if n and not negs:
            negatives += [perturb_text(ex.positives[pos], inp.rng) for _ in range(n)]
        else:
            negatives += [ex.negatives[i] for i in negs]
        if scores:
            teacher.append(
                [ex.positive_scores[pos]] + [ex.negative_scores[i] for i in negs]  # type: ignore[index]
            )
    return _Texts(queries, positives, negatives, n, teacher if scores else None)


def _encode(model: Any, texts: _Texts, args: TrainingArgs) -> tuple[Tensor, Tensor, Tensor | None]:
    """Queries (B, d), positives (B, d), negatives (B, n, d) or None."""
    q = model.encode(texts.queries, args.query_max_length, prefix=model.query_prefix)
    d = model.encode(
        texts.positives + texts.negatives, args.passage_max_length, prefix=model.document_prefix
    )
    b = len(texts.queries)
    negs = d[b:].view(b, texts.n, -1) if texts.n else None
    return q, d[:b], negs


def _candidate_scores(q: Tensor, p: Tensor, negs: Tensor | None, in_batch: bool) -> Tensor:
    """Scores of each query's [positive, negatives..., other queries' positives]: (B, C)."""
    parts = [(q * p).sum(dim=1, keepdim=True)]
    if negs is not None:
        parts.append(torch.einsum("bd,bnd->bn", q, negs))
    if in_batch and len(q) > 1:
        off = ~torch.eye(len(q), dtype=torch.bool, device=q.device)
        parts.append((q @ p.T)[off].view(len(q), len(q) - 1))
    return torch.cat(parts, dim=1)


def _teacher_scores(inp: StepInput, texts: _Texts) -> Tensor:
    """The teacher's candidate scores / temperature, or the precomputed ones: (B, C)."""
    return _teacher_outputs(inp, texts)[0]


def _teacher_outputs(inp: StepInput, texts: _Texts) -> tuple[Tensor, Tensor | None]:
    """:func:`_teacher_scores` and the teacher's vectors of queries, positives and negatives
    stacked in that order (None with precomputed scores)."""
    if inp.teacher is None:
        scores = torch.tensor(texts.teacher_scores, dtype=torch.float32, device=_device(inp.model))
        return scores, None
    with torch.no_grad():
        q, p, negs = _encode(inp.teacher, texts, inp.args)
        scores = _candidate_scores(q.float(), p.float(), negs, True) / inp.args.temperature
        return scores, _stack(q, p, negs).float()


def _stack(q: Tensor, p: Tensor, negs: Tensor | None) -> Tensor:
    """Rows of queries, positives, then negatives: (B * (2 + n), d)."""
    parts = [q, p] if negs is None else [q, p, negs.reshape(-1, p.shape[1])]
    return torch.cat(parts)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


# ---------------------------------------------------------------- checks
def _check_examples(datasets: Mapping[str, Sequence[Any]]) -> None:
    for name, data in datasets.items():
        for i, ex in enumerate(data):
            if not isinstance(ex, TrainExample):
                raise TypeError(
                    f"datasets[{name!r}][{i}] is a {type(ex).__name__}, not a TrainExample"
                )


def _check_distill(datasets: Mapping[str, Sequence[Any]], has_teacher: bool) -> None:
    _check_examples(datasets)
    if has_teacher:
        return
    for name, data in datasets.items():
        for i, ex in enumerate(data):
            if ex.positive_scores is None or ex.negative_scores is None or not ex.negatives:
                raise ValueError(
                    f"datasets[{name!r}][{i}] has no teacher scores (pos_scores, neg_scores with "
                    "negatives); give a teacher model or precomputed scores"
                )


def _check_splade(datasets: Mapping[str, Sequence[Any]], has_teacher: bool) -> None:
    """Without a teacher, every example has scores (distillation) or none has (contrastive)."""
    _check_examples(datasets)
    if has_teacher:
        return
    scored = {
        ex.positive_scores is not None and ex.negative_scores is not None and bool(ex.negatives)
        for data in datasets.values()
        for ex in data
    }
    if len(scored) > 1:
        raise ValueError(
            "some examples have teacher scores (pos_scores, neg_scores with negatives) and some "
            "not; without a teacher model the splade stage needs all or none"
        )


def _check_texts(datasets: Mapping[str, Sequence[Any]], has_teacher: bool) -> None:
    for name, data in datasets.items():
        for i, item in enumerate(data):
            if not isinstance(item, str | TrainExample):
                raise TypeError(
                    f"datasets[{name!r}][{i}] is a {type(item).__name__}; retromae takes texts "
                    "(str) or TrainExample (their first positive is used)"
                )


# ---------------------------------------------------------------- steps
def _contrastive(inp: StepInput, batch: list[TrainExample]) -> tuple[Tensor, dict[str, float]]:
    texts = _gather(inp, batch, pseudo=False)
    q, p, negs = _encode(inp.model, texts, inp.args)
    loss = ContrastiveLoss(**inp.args.loss_kwargs())(q, p, negs)
    return loss, {"negatives": float(texts.n)}


def _distill(inp: StepInput, batch: list[TrainExample]) -> tuple[Tensor, dict[str, float]]:
    args = inp.args
    texts = _gather(inp, batch, pseudo=inp.teacher is not None, scores=inp.teacher is None)
    q, p, negs = _encode(inp.model, texts, args)
    student = _candidate_scores(q, p, negs, inp.teacher is not None) / args.temperature
    teacher, vectors = _teacher_outputs(inp, texts)
    kd = DistillationLoss(args.distill_temperature)(student, teacher)
    logs = {"distill_loss": float(kd.detach())}
    if args.contrastive_weight > 0:
        con = ContrastiveLoss(**args.loss_kwargs())(q, p, negs)
        logs["contrastive_loss"] = float(con.detach())
        kd = kd + args.contrastive_weight * con
    if args.embedding_weight > 0:
        if vectors is None:  # train() refuses this; a guard for direct callers
            raise ValueError("embedding_weight > 0 needs a teacher model, not precomputed scores")
        emb = embedding_distillation_loss(_stack(q, p, negs), vectors)
        logs["embedding_loss"] = float(emb.detach())
        kd = kd + args.embedding_weight * emb
    return kd, logs


def _splade(inp: StepInput, batch: list[TrainExample]) -> tuple[Tensor, dict[str, float]]:
    args = inp.args
    distill = inp.teacher is not None or all(ex.positive_scores is not None for ex in batch)
    texts = _gather(
        inp, batch, pseudo=inp.teacher is not None, scores=inp.teacher is None and distill
    )
    q, p, negs = _encode(inp.model, texts, args)
    dot = {"temperature": 1.0, "qq": False, "pp": False, "pq": False}
    logs: dict[str, float] = {}
    if distill:
        student = _candidate_scores(q, p, negs, inp.teacher is not None)
        loss = DistillationLoss(args.distill_temperature)(student, _teacher_scores(inp, texts))
        logs["distill_loss"] = float(loss.detach())
        if args.contrastive_weight > 0:
            loss = loss + args.contrastive_weight * ContrastiveLoss(**dot)(q, p, negs)
    else:
        loss = ContrastiveLoss(**dot)(q, p, negs)
    docs = p if negs is None else torch.cat([p, negs.reshape(-1, p.shape[1])])
    reg_q = SparseRegularizer(args.sparse_reg, args.query_reg_weight, args.reg_warmup_steps)
    reg_d = SparseRegularizer(args.sparse_reg, args.doc_reg_weight, args.reg_warmup_steps)
    reg = reg_q(q, inp.step) + reg_d(docs, inp.step)
    logs["reg"] = float(reg.detach())
    logs["query_nnz"] = float((q > 0).sum(dim=1).float().mean())
    logs["doc_nnz"] = float((docs > 0).sum(dim=1).float().mean())
    return loss + reg, logs


def _retromae(inp: StepInput, batch: list[Any]) -> tuple[Tensor, dict[str, float]]:
    texts = [x if isinstance(x, str) else x.positives[0] for x in batch]
    return inp.model(texts, inp.args.passage_max_length)


# ---------------------------------------------------------------- models
def _bi_encoder(args: TrainingArgs) -> torch.nn.Module:
    from trainer.modeling import BiEncoder

    # training truncates through args.*_max_length; the model keeps its own limit, which is
    # what the saved folder declares for inference
    return BiEncoder(args.model, pooling=args.pooling or None)


def _splade_model(args: TrainingArgs) -> torch.nn.Module:
    from trainer.modeling import SpladeModel

    return SpladeModel(args.model)


def _retromae_model(args: TrainingArgs) -> torch.nn.Module:
    from trainer.retromae import RetroMAE

    return RetroMAE(
        args.model,
        encoder_mask_ratio=args.encoder_mask_ratio,
        decoder_mask_ratio=args.decoder_mask_ratio,
        max_length=args.passage_max_length,
    )


def _no_check_teacher(fn: Callable[[Mapping[str, Sequence[Any]]], None]) -> Any:
    def check(datasets: Mapping[str, Sequence[Any]], has_teacher: bool) -> None:
        fn(datasets)

    return check


STAGES: dict[str, Stage] = {
    "contrastive": Stage(
        "contrastive", _bi_encoder, _no_check_teacher(_check_examples), _contrastive
    ),
    "distill": Stage("distill", _bi_encoder, _check_distill, _distill),
    "splade": Stage("splade", _splade_model, _check_splade, _splade),
    "retromae": Stage("retromae", _retromae_model, _check_texts, _retromae),
}
