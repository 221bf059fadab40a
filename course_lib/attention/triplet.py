"""Triplet attention (introduced in notebook ``08_triplet_attention``).

Misra, Nalamada, Arasanipalai & Hou, *Rotate to Attend: Convolutional Triplet Attention
Module*, WACV 2021.

Three branches, each capturing the interaction of two of the three dimensions (C, H, W):

1. rotate so that H plays the role of channels — ``(N, H, C, W)`` — and gate the (C, W) plane;
2. rotate so that W plays the role of channels — ``(N, W, H, C)`` — and gate the (H, C) plane;
3. no rotation: gate the (H, W) plane (a CBAM-like spatial attention).

In each branch *Z-pool* concatenates the max and the mean over the leading axis (2 maps),
a k×k convolution 2→1 (no bias) with BatchNorm and a sigmoid makes the gate, the rotated
tensor is multiplied by it and rotated back. The three results are averaged (1/3 each).

There are no queries, keys, values or softmax (a widely copied blog post on VGG16 with
attention calls a self-attention block "Triplet Attention"; chapter 08 shows the difference). Shapes: ``(N, C, H, W) → (N, C, H, W)``.
Parameters: ``3·(2·k² + 2)`` — 300 for k = 7, whatever the number of channels.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ZPool", "AttentionGateBranch", "TripletAttention", "BN_MOMENTUM"]


class ZPool(nn.Module):
    """``(N, D, A, B) → (N, 2, A, B)``: max and mean over dimension 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1
        )


#: BatchNorm momentum of the authors' code (``landskape-ai/triplet-attention``,
#: ``MODELS/triplet_attention.py``: ``BatchNorm2d(eps=1e-5, momentum=0.01)``); PyTorch's default
#: is 0.1. Outputs in training mode do not depend on it; the running statistics used in
#: evaluation do: with 0.1 they follow the last few batches, with 0.01 about the last hundred.
BN_MOMENTUM = 0.01


class AttentionGateBranch(nn.Module):
    """Z-pool → k×k conv 2→1 → BatchNorm (momentum :data:`BN_MOMENTUM`) → sigmoid; multiplies its input by the gate."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.pool = ZPool()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, momentum=BN_MOMENTUM)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.bn(self.conv(self.pool(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class TripletAttention(nn.Module):
    """Triplet attention: three Z-pool gates on the (C, W), (H, C) and (H, W) planes, averaged.

    Args:
        channels: accepted and ignored, like every registered module's first argument; the
            gates pool over one axis, so the module is the same for any C.
        kernel_size: k of each branch's convolution, odd (7 in the paper).

    Shapes: ``(N, C, H, W) → (N, C, H, W)``; :meth:`branches` gives the three branch outputs.
    Parameters: ``3·(2·k² + 2)`` (a k×k conv 2→1 and a BatchNorm per branch) — 300 for k = 7.
    Introduced in notebook ``08_triplet_attention``.
    """

    # (permutation into the branch, which is its own inverse)
    ROTATIONS = ((0, 2, 1, 3), (0, 3, 2, 1))

    def __init__(self, channels: int | None = None, kernel_size: int = 7):
        super().__init__()  # channels: accepted, like every registered module's, and not needed
        if kernel_size % 2 == 0:
            raise ValueError(
                "kernel_size must be odd, so that the maps keep their size"
            )
        self.ch = AttentionGateBranch(kernel_size)  # C-W plane (H rotated to the front)
        self.cw = AttentionGateBranch(kernel_size)  # H-C plane (W rotated to the front)
        # H-W plane (plain spatial attention)
        self.hw = AttentionGateBranch(kernel_size)

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The three branch outputs, each ``(N, C, H, W)``."""
        p1, p2 = self.ROTATIONS
        return [
            self.ch(x.permute(*p1)).permute(*p1),
            self.cw(x.permute(*p2)).permute(*p2),
            self.hw(x),
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c = self.branches(x)
        return (a + b + c) / 3
