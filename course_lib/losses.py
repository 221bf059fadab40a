"""Losses: focal loss on logits (notebook ``10_attnvgg_melanoma``) and the lesion-mask
regulariser of attention maps (notebook ``12_going_further``).

Lin, Goyal, Girshick, He & Dollár, *Focal Loss for Dense Object Detection*, ICCV 2017:

    FL = - alpha_t · (1 - p_t)^gamma · log(p_t)

with ``p_t`` the predicted probability of the true class and ``alpha_t = alpha`` for
positives, ``1 - alpha`` for negatives (the Paperspace tutorial weighted every example by the same
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

__all__ = ["focal_loss", "FocalLoss", "attention_dice_loss", "AttentionMaskLoss"]


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Binary focal loss of ``logits`` against ``targets`` in [0, 1] (same shape).

    Raises ``ValueError`` for ``gamma < 0``, ``alpha`` outside [0, 1], and — for targets on
    the CPU, where the check costs no wait for a device — targets outside [0, 1].
    """
    _check_focal(alpha, gamma)
    if targets.device.type == "cpu" and targets.numel():
        low, high = float(targets.min()), float(targets.max())
        if low < 0 or high > 1:
            raise ValueError(
                f"focal_loss targets must lie in [0, 1] (binary labels), got values "
                f"from {low:g} to {high:g}"
            )
    targets = targets.to(logits.dtype)
    # -log(p_t)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    one_minus_p_t = (
        torch.sigmoid(logits) * (1 - targets) + torch.sigmoid(-logits) * targets
    )
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


def _check_focal(alpha, gamma) -> None:
    if not gamma >= 0:  # also refuses NaN
        raise ValueError(f"focal loss gamma must be >= 0, not {gamma}")
    if alpha is not None and not 0 <= alpha <= 1:
        raise ValueError(f"focal loss alpha must be in [0, 1] or None, not {alpha}")


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss` (``alpha=None`` turns the class weighting off)."""

    def __init__(
        self, alpha: float | None = 0.25, gamma: float = 2.0, reduction: str = "mean"
    ):
        super().__init__()
        _check_focal(alpha, gamma)
        self.alpha, self.gamma, self.reduction = alpha, gamma, reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, targets, self.alpha, self.gamma, self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"


def attention_dice_loss(
    attention: torch.Tensor, masks: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """``1 - Dice`` between attention maps ``(N, 1, h, w)`` and lesion masks ``(N, 1, H, W)``.

    As in AttnMel-Lesion (Yan et al., IPMI 2019): each mask is shrunk to the map's size by
    area averaging (``adaptive_avg_pool2d``: a cell half covered by lesion gets 0.5), and Dice
    is ``2·Σ(a·m) / (Σa + Σm)`` summed over the whole batch. For a softmax map (``Σa = 1``
    per image) Dice grows with ``Σ(a·m)``, the attention energy inside the lesion, so the loss
    pulls attention onto the lesion; for a sigmoid map it is the usual soft Dice.
    """
    if attention.dim() != 4 or attention.shape[1] != 1:
        raise ValueError(
            f"attention maps must be shaped (N, 1, h, w), got {tuple(attention.shape)}"
        )
    attention = attention.float()  # sums over many small values: never in bf16/fp16
    masks = masks.float().reshape(len(masks), 1, *masks.shape[-2:])
    target = F.adaptive_avg_pool2d(masks, attention.shape[-2:])
    return 1 - 2 * (attention * target).sum() / (attention.sum() + target.sum()).clamp(
        min=eps
    )


class AttentionMaskLoss(nn.Module):
    """Weighted :func:`attention_dice_loss` of AttnVGG's maps: ``Σ_k w_k · (1 - Dice(a_k, mask))``.

    Called as ``fit``'s ``aux_loss`` with the model's output ``(logits, a1, a2)`` and the
    masks of the batch. AttnMel-Lesion's weights are 0.001 (pool-3) and 0.01 (pool-4).
    """

    def __init__(self, weights=(0.001, 0.01)):
        super().__init__()
        self.weights = tuple(float(w) for w in weights)

    def forward(self, output, masks: torch.Tensor) -> torch.Tensor:
        maps = output[1:]
        if len(maps) != len(self.weights):
            raise ValueError(
                f"{len(self.weights)} weights for {len(maps)} attention maps"
            )
        return sum(
            w * attention_dice_loss(a, masks) for w, a in zip(self.weights, maps)
        )

    def extra_repr(self) -> str:
        return f"weights={self.weights}"
