"""Training losses: improved contrastive (GTE), score distillation and SPLADE sparsity regularisers.

Each loss is a pure function of embeddings or scores, tested without a model, with a small
``torch.nn.Module`` around it that holds the hyper-parameters.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "ContrastiveLoss",
    "DistillationLoss",
    "RegWarmup",
    "SparseRegularizer",
    "distillation_loss",
    "embedding_distillation_loss",
    "flops_reg",
    "improved_contrastive_loss",
    "l1_reg",
]


def _check_tensor(value: object, name: str, ndim: int) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions; got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {value.dtype}")
    return value


def _check_positive(value: float, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}")
    return float(value)


def _check_pair(
    student: object, teacher: object, s_name: str, t_name: str, hint: str = ""
) -> tuple[Tensor, Tensor]:
    """Two 2-d tensors of one non-empty shape (a student's and its teacher's)."""
    student = _check_tensor(student, s_name, 2)
    teacher = _check_tensor(teacher, t_name, 2)
    if teacher.shape != student.shape:
        raise ValueError(
            f"{t_name} must have the shape of {s_name} {tuple(student.shape)}; "
            f"got {tuple(teacher.shape)}{hint}"
        )
    if student.numel() == 0:
        raise ValueError(f"{s_name} is empty")
    return student, teacher


def _masked_offdiag(sim: Tensor) -> Tensor:
    """``sim`` with its diagonal set to -inf, so ``exp`` drops the ``j == i`` terms."""
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    return sim.masked_fill(eye, float("-inf"))


def improved_contrastive_loss(
    q: Tensor,
    p: Tensor,
    negs: Tensor | None = None,
    *,
    temperature: float = 0.02,
    qq: bool = True,
    pp: bool = True,
    pq: bool = False,
    shared_negatives: bool = False,
) -> Tensor:
    """The "improved contrastive loss" of GTE (Li et al., 2023), as used by Granite Embedding.

    For query ``i``, with ``s`` the inner product (cosine on L2-normalised inputs) and ``τ`` the
    temperature, the loss is ``-log(exp(s(q_i, p_i)/τ) / Z_i)`` averaged over the batch, where
    ``Z_i`` sums ``exp(·/τ)`` over:

    * ``s(q_i, p_j)`` for every in-batch passage ``j`` (the positive included);
    * ``s(q_i, n_ik)`` for the hard negatives of query ``i`` (every hard negative in the batch
      when ``shared_negatives``);
    * ``s(q_i, q_j)``, ``j != i`` (when ``qq``): query-query negatives;
    * ``s(p_i, p_j)``, ``j != i`` (when ``pp``): passage-passage negatives;
    * ``s(q_j, p_i)``, ``j != i`` (when ``pq``): the reverse, passage-to-query direction of GTE's
      third term. GTE sums it over every ``j``; here ``j = i`` is left out so that the positive
      appears in ``Z_i`` once. Off by default: the brief for Granite lists the other four terms.

    With ``qq = pp = pq = False`` this is the usual InfoNCE with in-batch and hard negatives.

    Parameters
    ----------
    q : torch.Tensor, shape (batch, dim), floating point
        Query embeddings, L2-normalised by the caller.
    p : torch.Tensor, shape (batch, dim)
        Positive passage embeddings; row ``i`` is the positive of query ``i``.
    negs : torch.Tensor, shape (batch, n_negs, dim), optional
        Hard negative embeddings per query.
    temperature : float
        ``τ > 0``; Granite and GTE use 0.01-0.05.
    qq, pp, pq : bool
        Switch the query-query, passage-passage and passage-query terms of ``Z_i``.
    shared_negatives : bool
        Contrast each query against the hard negatives of every query in the batch.

    Returns
    -------
    torch.Tensor, shape (), dtype of the inputs
        The mean loss over the batch.
    """
    q = _check_tensor(q, "q", 2)
    p = _check_tensor(p, "p", 2)
    if p.shape != q.shape:
        raise ValueError(f"p must have the shape of q {tuple(q.shape)}; got {tuple(p.shape)}")
    tau = _check_positive(temperature, "temperature")
    batch = q.shape[0]
    if batch == 0:
        raise ValueError("q is empty: the batch needs at least one query")
    parts = [q @ p.T]  # (B, B): s(q_i, p_j)
    if negs is not None:
        negs = _check_tensor(negs, "negs", 3)
        if negs.shape[0] != batch or negs.shape[2] != q.shape[1]:
            raise ValueError(
                f"negs must have shape (batch={batch}, n_negs, dim={q.shape[1]}); "
                f"got {tuple(negs.shape)}"
            )
        if shared_negatives:
            parts.append(q @ negs.reshape(-1, negs.shape[2]).T)  # (B, B * n)
        else:
            parts.append(torch.einsum("bd,bnd->bn", q, negs))  # (B, n)
    if qq:
        parts.append(_masked_offdiag(q @ q.T))
    if pp:
        parts.append(_masked_offdiag(p @ p.T))
    if pq:
        parts.append(_masked_offdiag(p @ q.T))  # row i: s(p_i, q_j) = s(q_j, p_i)
    logits = torch.cat(parts, dim=1) / tau
    positive = (q * p).sum(dim=1) / tau
    return (torch.logsumexp(logits, dim=1) - positive).mean()


class ContrastiveLoss(torch.nn.Module):
    """:func:`improved_contrastive_loss` with its switches fixed at construction.

    Parameters
    ----------
    temperature, qq, pp, pq, shared_negatives
        As in :func:`improved_contrastive_loss`.
    """

    def __init__(
        self,
        temperature: float = 0.02,
        *,
        qq: bool = True,
        pp: bool = True,
        pq: bool = False,
        shared_negatives: bool = False,
    ) -> None:
        super().__init__()
        self.temperature = _check_positive(temperature, "temperature")
        self.qq, self.pp, self.pq = bool(qq), bool(pp), bool(pq)
        self.shared_negatives = bool(shared_negatives)

    def forward(self, q: Tensor, p: Tensor, negs: Tensor | None = None) -> Tensor:
        """Mean loss, shape (); see :func:`improved_contrastive_loss` for shapes."""
        return improved_contrastive_loss(
            q,
            p,
            negs,
            temperature=self.temperature,
            qq=self.qq,
            pp=self.pp,
            pq=self.pq,
            shared_negatives=self.shared_negatives,
        )

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, qq={self.qq}, pp={self.pp}, pq={self.pq}, "
            f"shared_negatives={self.shared_negatives}"
        )


def distillation_loss(
    student_scores: Tensor, teacher_scores: Tensor, *, temperature: float = 1.0
) -> Tensor:
    """Cross-entropy from the teacher's distribution over candidates to the student's.

    ``-sum_c softmax(t / T)_c * log_softmax(s / T)_c``, averaged over the batch. It differs from
    the KL divergence by the teacher's entropy, a constant for the student, so the gradients agree.

    Parameters
    ----------
    student_scores : torch.Tensor, shape (batch, n_candidates), floating point
        Student scores (logits) of each query's candidates.
    teacher_scores : torch.Tensor, shape (batch, n_candidates)
        Teacher scores of the same candidates; no gradient flows into them.
    temperature : float
        ``T > 0`` dividing both score sets.

    Returns
    -------
    torch.Tensor, shape ()
    """
    student_scores, teacher_scores = _check_pair(
        student_scores, teacher_scores, "student_scores", "teacher_scores"
    )
    t = _check_positive(temperature, "temperature")
    target = torch.softmax(teacher_scores.detach() / t, dim=1)
    log_probs = torch.log_softmax(student_scores / t, dim=1)
    return -(target * log_probs).sum(dim=1).mean()


def embedding_distillation_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean cosine distance from each student vector to the teacher's vector of the same text.

    ``mean_i (1 - cos(s_i, t_i))``: 0 when every student vector points where the teacher's does,
    at most 2. It pulls a student into its teacher's embedding space (DistilBERT's cosine
    embedding loss, applied to the output vectors), which score distillation alone does not ask
    for; it needs a teacher of the student's dimension.

    Parameters
    ----------
    student : torch.Tensor, shape (n, dim), floating point
    teacher : torch.Tensor, shape (n, dim)
        No gradient flows into it.

    Returns
    -------
    torch.Tensor, shape ()
    """
    student, teacher = _check_pair(
        student,
        teacher,
        "student",
        "teacher",
        " (the embedding term needs the student's dimension)",
    )
    cos = torch.nn.functional.cosine_similarity(student, teacher.detach().to(student.dtype), dim=1)
    return (1.0 - cos).mean()


class DistillationLoss(torch.nn.Module):
    """:func:`distillation_loss` with a fixed temperature."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = _check_positive(temperature, "temperature")

    def forward(self, student_scores: Tensor, teacher_scores: Tensor) -> Tensor:
        """Mean loss, shape (); both inputs (batch, n_candidates)."""
        return distillation_loss(student_scores, teacher_scores, temperature=self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


def flops_reg(reps: Tensor) -> Tensor:
    """FLOPS regulariser (Paria et al., 2020): ``sum_v (mean_b |w_bv|)^2``.

    Parameters
    ----------
    reps : torch.Tensor, shape (batch, vocab_size), floating point
        Sparse (SPLADE) representations of a batch.

    Returns
    -------
    torch.Tensor, shape ()
    """
    reps = _check_tensor(reps, "reps", 2)
    if reps.shape[0] == 0:
        raise ValueError("reps is empty: the batch needs at least one row")
    return (reps.abs().mean(dim=0) ** 2).sum()


def l1_reg(reps: Tensor) -> Tensor:
    """L1 regulariser: ``mean_b sum_v |w_bv|``.

    Parameters
    ----------
    reps : torch.Tensor, shape (batch, vocab_size), floating point

    Returns
    -------
    torch.Tensor, shape ()
    """
    reps = _check_tensor(reps, "reps", 2)
    if reps.shape[0] == 0:
        raise ValueError("reps is empty: the batch needs at least one row")
    return reps.abs().sum(dim=1).mean()


class RegWarmup:
    """Quadratic warm-up of a regularisation weight, as in SPLADE: ``λ_t = λ · min(1, t/T)^2``.

    Parameters
    ----------
    weight : float
        The final weight ``λ >= 0``.
    warmup_steps : int
        ``T >= 0``; 0 gives ``λ`` from the first step.
    """

    def __init__(self, weight: float, warmup_steps: int) -> None:
        if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
            raise ValueError(f"weight must be a number >= 0; got {weight!r}")
        if not isinstance(warmup_steps, int) or isinstance(warmup_steps, bool) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0; got {warmup_steps!r}")
        self.weight = float(weight)
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        """The weight at ``step`` (0-based, ``>= 0``)."""
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"step must be an int >= 0; got {step!r}")
        if self.warmup_steps == 0:
            return self.weight
        return self.weight * min(1.0, step / self.warmup_steps) ** 2

    def __repr__(self) -> str:
        return f"RegWarmup(weight={self.weight}, warmup_steps={self.warmup_steps})"


_REGS = {"flops": flops_reg, "l1": l1_reg}


class SparseRegularizer(torch.nn.Module):
    """A SPLADE sparsity term with its warmed-up weight: ``λ_t · reg(reps)``.

    Parameters
    ----------
    kind : {"flops", "l1"}
        :func:`flops_reg` or :func:`l1_reg`.
    weight, warmup_steps
        As in :class:`RegWarmup`.
    """

    def __init__(self, kind: Literal["flops", "l1"], weight: float, warmup_steps: int = 0) -> None:
        super().__init__()
        if kind not in _REGS:
            raise ValueError(f"kind must be 'flops' or 'l1'; got {kind!r}")
        self.kind = kind
        self.schedule = RegWarmup(weight, warmup_steps)

    def forward(self, reps: Tensor, step: int) -> Tensor:
        """Weighted regulariser, shape (); ``reps`` (batch, vocab_size)."""
        return self.schedule(step) * _REGS[self.kind](reps)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, {self.schedule!r}"
