"""Losses against values computed by hand with plain Python math (no model)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.losses import (
    ContrastiveLoss,
    DistillationLoss,
    RegWarmup,
    SparseRegularizer,
    distillation_loss,
    embedding_distillation_loss,
    flops_reg,
    improved_contrastive_loss,
    l1_reg,
)


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _expected(q, p, negs, tau, *, qq, pp, pq=False):
    """Plain-Python loss following the definition term by term."""
    total = 0.0
    b = len(q)
    for i in range(b):
        z = sum(math.exp(_dot(q[i], p[j]) / tau) for j in range(b))
        z += sum(math.exp(_dot(q[i], n) / tau) for n in (negs[i] if negs else []))
        others = [j for j in range(b) if j != i]
        if qq:
            z += sum(math.exp(_dot(q[i], q[j]) / tau) for j in others)
        if pp:
            z += sum(math.exp(_dot(p[i], p[j]) / tau) for j in others)
        if pq:
            z += sum(math.exp(_dot(q[j], p[i]) / tau) for j in others)
        total += -math.log(math.exp(_dot(q[i], p[i]) / tau) / z)
    return total / b


Q = [[1.0, 0.0], [0.6, 0.8]]
P = [[0.8, 0.6], [0.0, 1.0]]
NEGS = [[[0.0, -1.0]], [[-0.6, 0.8]]]


def _t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_orthonormal_closed_form():
    q = p = _t([[1.0, 0.0], [0.0, 1.0]])
    # s(q_i, p_i) = 1, every other similarity 0, τ = 1: Z_i = e + 1 (+1 per in-batch term)
    base = improved_contrastive_loss(q, p, temperature=1.0, qq=False, pp=False)
    assert base.item() == pytest.approx(math.log((math.e + 1) / math.e))
    full = improved_contrastive_loss(q, p, temperature=1.0, qq=True, pp=True)
    assert full.item() == pytest.approx(math.log((math.e + 3) / math.e))


@pytest.mark.parametrize("qq", [False, True])
@pytest.mark.parametrize("pp", [False, True])
@pytest.mark.parametrize("with_negs", [False, True])
def test_matches_hand_computed(qq, pp, with_negs):
    negs = NEGS if with_negs else None
    got = improved_contrastive_loss(
        _t(Q), _t(P), _t(negs) if negs else None, temperature=0.5, qq=qq, pp=pp
    )
    assert got.item() == pytest.approx(_expected(Q, P, negs, 0.5, qq=qq, pp=pp), rel=1e-12)


def test_pq_term_hand_computed():
    got = improved_contrastive_loss(_t(Q), _t(P), temperature=0.5, qq=True, pp=True, pq=True)
    assert got.item() == pytest.approx(_expected(Q, P, None, 0.5, qq=True, pp=True, pq=True))


def test_each_switch_adds_to_the_partition():
    q, p, n = _t(Q), _t(P), _t(NEGS)
    off = improved_contrastive_loss(q, p, temperature=0.5, qq=False, pp=False)
    for kwargs in ({"qq": True, "pp": False}, {"qq": False, "pp": True}, {"pq": True}):
        kw = {"qq": False, "pp": False, **kwargs}
        assert improved_contrastive_loss(q, p, temperature=0.5, **kw) > off
    assert improved_contrastive_loss(q, p, n, temperature=0.5, qq=False, pp=False) > off
    own = improved_contrastive_loss(q, p, n, temperature=0.5)
    shared = improved_contrastive_loss(q, p, n, temperature=0.5, shared_negatives=True)
    assert shared > own


def test_shared_negatives_hand_computed():
    # every query sees both hard negatives: same as giving each query the pair of them
    both = [[NEGS[0][0], NEGS[1][0]], [NEGS[0][0], NEGS[1][0]]]
    got = improved_contrastive_loss(_t(Q), _t(P), _t(NEGS), temperature=0.5, shared_negatives=True)
    assert got.item() == pytest.approx(_expected(Q, P, both, 0.5, qq=True, pp=True))


def test_plain_infonce_equals_cross_entropy():
    torch.manual_seed(0)
    q = F.normalize(torch.randn(5, 8), dim=1)
    p = F.normalize(torch.randn(5, 8), dim=1)
    got = improved_contrastive_loss(q, p, temperature=0.05, qq=False, pp=False)
    want = F.cross_entropy(q @ p.T / 0.05, torch.arange(5))
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_gradient_flows_and_low_temperature_is_finite():
    torch.manual_seed(0)
    q = F.normalize(torch.randn(4, 16), dim=1).requires_grad_()
    p = F.normalize(torch.randn(4, 16), dim=1).requires_grad_()
    n = F.normalize(torch.randn(4, 3, 16), dim=2).requires_grad_()
    loss = ContrastiveLoss(temperature=0.01)(q, p, n)
    loss.backward()
    assert torch.isfinite(loss)
    for t in (q, p, n):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_module_matches_function():
    q, p = _t(Q), _t(P)
    mod = ContrastiveLoss(0.5, qq=False, pp=True)
    assert mod(q, p).item() == improved_contrastive_loss(q, p, temperature=0.5, qq=False).item()
    assert "qq=False" in repr(mod)


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        (([[1.0, 0.0]], [[1.0, 0.0]]), {}, TypeError, "q must be a torch.Tensor"),
        ((torch.ones(2, 3), torch.ones(2, 4)), {}, ValueError, "p must have the shape"),
        ((torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3)), {}, ValueError, "negs must"),
        ((torch.ones(2, 3), torch.ones(2, 3), torch.ones(3, 1, 3)), {}, ValueError, "negs must"),
        ((torch.ones(2, 3), torch.ones(2, 3)), {"temperature": 0}, ValueError, "temperature"),
        ((torch.ones(3), torch.ones(3)), {}, ValueError, "q must have 2"),
        ((torch.ones(2, 3, dtype=torch.long),) * 2, {}, TypeError, "floating-point"),
    ],
)
def test_contrastive_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        improved_contrastive_loss(*args, **kwargs)


def test_distillation_hand_computed():
    student = _t([[0.0, math.log(2.0)], [1.0, 1.0]])  # softmax: [1/3, 2/3], [1/2, 1/2]
    teacher = _t([[math.log(3.0), 0.0], [0.0, 0.0]])  # softmax: [3/4, 1/4], [1/2, 1/2]
    row0 = -(0.75 * math.log(1 / 3) + 0.25 * math.log(2 / 3))
    row1 = -math.log(0.5)
    assert distillation_loss(student, teacher).item() == pytest.approx((row0 + row1) / 2)


def test_distillation_temperature_and_gradient():
    student = _t([[2.0, 0.0]]).requires_grad_()
    teacher = _t([[0.0, 2.0]])
    # T = 2: student softmax([1, 0]), teacher softmax([0, 1])
    ps = [math.e / (math.e + 1), 1 / (math.e + 1)]
    pt = [1 / (math.e + 1), math.e / (math.e + 1)]
    want = -sum(t * math.log(s) for t, s in zip(pt, ps))
    loss = DistillationLoss(temperature=2.0)(student, teacher)
    assert loss.item() == pytest.approx(want)
    loss.backward()
    assert student.grad is not None and student.grad[0, 0] > 0  # push the wrong winner down


def test_distillation_bad_input():
    with pytest.raises(ValueError, match="teacher_scores must have the shape"):
        distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=-1.0)


def test_embedding_distillation_hand_computed():
    student = _t([[1.0, 0.0], [3.0, 4.0], [0.0, 2.0]]).requires_grad_()
    teacher = _t([[1.0, 0.0], [4.0, 3.0], [0.0, -5.0]])
    # cosines: 1, 24/25, -1 -> distances 0, 1/25, 2
    loss = embedding_distillation_loss(student, teacher)
    assert loss.item() == pytest.approx((0.0 + 1 / 25 + 2.0) / 3)
    loss.backward()
    assert teacher.grad is None and student.grad is not None
    assert torch.count_nonzero(student.grad[0]) == 0  # already aligned: nothing to move
    with pytest.raises(ValueError, match="teacher must have the shape"):
        embedding_distillation_loss(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="student is empty"):
        embedding_distillation_loss(torch.ones(0, 3), torch.ones(0, 3))


def test_sparse_regularisers_hand_computed():
    reps = _t([[1.0, -2.0, 0.0], [3.0, 0.0, 0.0]])
    # mean |w| per term: [2, 1, 0] -> 4 + 1 + 0
    assert flops_reg(reps).item() == pytest.approx(5.0)
    # per-row sum |w|: 3 and 3
    assert l1_reg(reps).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="reps must have 2"):
        flops_reg(torch.ones(3))


def test_reg_warmup_is_quadratic():
    sched = RegWarmup(2.0, 4)
    assert [sched(s) for s in (0, 1, 2, 4, 10)] == pytest.approx([0.0, 0.125, 0.5, 2.0, 2.0])
    assert RegWarmup(3.0, 0)(0) == 3.0
    with pytest.raises(ValueError, match="weight"):
        RegWarmup(-1.0, 3)
    with pytest.raises(ValueError, match="step"):
        sched(-1)


def test_sparse_regularizer_module():
    reps = _t([[1.0, -2.0, 0.0], [3.0, 0.0, 0.0]])
    reg = SparseRegularizer("flops", 2.0, warmup_steps=4)
    assert reg(reps, 2).item() == pytest.approx(0.5 * 5.0)
    assert SparseRegularizer("l1", 1.0)(reps, 0).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="kind"):
        SparseRegularizer("l2", 1.0)  # type: ignore[arg-type]
