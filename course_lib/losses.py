"""Focal loss on logits (introduced in notebook ``10_attnvgg_melanoma``).

Lin, Goyal, Girshick, He & Dollár, *Focal Loss for Dense Object Detection*, ICCV 2017:

    FL = - alpha_t · (1 - p_t)^gamma · log(p_t)

with ``p_t`` the predicted probability of the true class and ``alpha_t = alpha`` for
positives, ``1 - alpha`` for negatives (seed 000 weighted every example by the same
``alpha``, which only rescales the loss). ``(1 - p_t)^gamma`` shrinks the loss of examples
the model already gets right, so training concentrates on hard ones; ``gamma = 0`` and
``alpha = None`` give plain binary cross-entropy.

Computed from logits: ``log(p_t)`` comes from ``binary_cross_entropy_with_logits`` and
``1 - p_t`` from a sigmoid of the signed logit, both stable for large |logit|. Equal to
``torchvision.ops.sigmoid_focal_loss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["focal_loss", "FocalLoss"]


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float | None = 0.25, gamma: float = 2.0,
               reduction: str = "mean") -> torch.Tensor:
    """Binary focal loss of ``logits`` against ``targets`` in [0, 1] (same shape)."""
    targets = targets.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # -log(p_t)
    one_minus_p_t = torch.sigmoid(logits) * (1 - targets) + torch.sigmoid(-logits) * targets
    loss = ce * one_minus_p_t.pow(gamma) if gamma else ce
    if alpha is not None:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss` (``alpha=None`` turns the class weighting off)."""

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0, reduction: str = "mean"):
        super().__init__()
        self.alpha, self.gamma, self.reduction = alpha, gamma, reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, targets, self.alpha, self.gamma, self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"
