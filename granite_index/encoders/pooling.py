"""Pooling stages: token states → one vector per text."""

from __future__ import annotations

import torch


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """First token's state. ``hidden`` (batch, seq, dim), ``mask`` (batch, seq) → (batch, dim)."""
    return hidden[:, 0]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the states of non-padding tokens. Shapes as :func:`cls_pool`."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


POOLERS = {"cls": cls_pool, "mean": mean_pool}
