"""Efficient channel attention, ECA (notebook ``12_going_further``).

Wang, Wu, Zhu, Li, Zuo & Hu, *ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks*, CVPR 2020.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ECA", "eca_kernel_size"]


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """The paper's adaptive kernel: ``|(log2 C + b) / gamma|`` rounded to an odd number (5 at C = 512)."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """SE without the bottleneck: each channel's gate comes from its k neighbouring channel averages.

    Squeeze each channel to its average (global average pooling), run a 1-D convolution of
    size ``k`` (no bias) along the channel axis, apply a sigmoid, and scale the channels:
    ``(N, C, H, W) → (N, C, H, W)``; the gate is ``(N, C, 1, 1)``. ``k`` grows slowly with C
    (:func:`eca_kernel_size`) unless given. Parameters: ``k`` — 5 at C = 512, against SE's
    33,312. As the authors' code (``BangguWu/ECANet``, ``models/eca_module.py``).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | None = None,
        gamma: float = 2,
        b: float = 1,
    ):
        super().__init__()
        self.k = kernel_size or eca_kernel_size(channels, gamma, b)
        if self.k % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd, so that every channel keeps its place, got {self.k}"
            )
        self.conv = nn.Conv1d(1, 1, self.k, padding=self.k // 2, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gates, ``(N, C, 1, 1)`` in (0, 1)."""
        # (N, 1, C): the channels as a sequence
        averages = x.mean(dim=(2, 3))[:, None, :]
        return torch.sigmoid(self.conv(averages))[:, 0, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)
