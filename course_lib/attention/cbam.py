"""CBAM: channel attention then spatial attention (introduced in notebook ``05_cbam``).

Woo, Park, Lee & Kweon, *CBAM: Convolutional Block Attention Module*, ECCV 2018.

**Channel attention** squeezes each channel twice — by average *and* by max pooling —
passes both through one shared bottleneck MLP (no biases, as in the paper's Eq. 2), adds,
and applies a sigmoid:
gate ``(N, C, 1, 1)``; ``2·C·C/r`` parameters (32,768 at C = 512, r = 16).

**Spatial attention** squeezes the channels at each position — their mean and their max,
a 2-channel map — and convolves it with one k×k kernel (no bias) to a sigmoid gate
``(N, 1, H, W)``; ``2·k²`` parameters (98 for k = 7).

**CBAM** applies channel then spatial attention (the order the paper found best); the
notebook also compares spatial→channel and the two in parallel.
Every module maps ``(N, C, H, W) → (N, C, H, W)``.

The course follows the paper's equations. The authors' code (``Jongchan/attention-module``,
``MODELS/cbam.py``) differs: its MLP layers have biases, its spatial gate has a BatchNorm
(momentum 0.01) after the conv, and it orders the channel summary (max, mean).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChannelAttention", "SpatialAttention", "CBAM"]


class ChannelAttention(nn.Module):
    """CBAM's channel attention: average- and max-pooled summaries through one shared MLP.

    Args:
        channels: C, the number of input channels.
        reduction: r; the bottleneck has ``max(1, C // r)`` units.

    Shapes: ``(N, C, H, W) → (N, C, H, W)``; :meth:`gate` is ``(N, C, 1, 1)``.
    Parameters: ``2·C·C/r`` (no biases, the paper's Eq. 2) — 32,768 at C = 512, r = 16.
    Introduced in notebook ``05_cbam``.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=False),
        )

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gates, ``(N, C, 1, 1)`` in (0, 1)."""
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class SpatialAttention(nn.Module):
    """CBAM's spatial attention: a k×k convolution of the channel mean and max, then a sigmoid.

    Args:
        kernel_size: k, odd so that the map keeps its size (7 in the paper).

    Shapes: ``(N, C, H, W) → (N, C, H, W)``; :meth:`gate` is ``(N, 1, H, W)``.
    Parameters: ``2·k²`` (no bias) — 98 for k = 7, whatever C is.
    Introduced in notebook ``05_cbam``.
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd, so that the map keeps its size")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial gate, ``(N, 1, H, W)`` in (0, 1)."""
        pooled = torch.cat(
            [x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1
        )
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class CBAM(nn.Module):
    """Convolutional Block Attention Module: channel attention, then spatial attention.

    Args:
        channels: C, the number of input channels.
        reduction: r of the channel MLP.
        kernel_size: k of the spatial convolution.
        order: "channel-spatial" (the paper's), "spatial-channel", or "parallel" (the mean
            of both gated maps).

    Shapes: ``(N, C, H, W) → (N, C, H, W)``.
    Parameters: ``2·C·C/r + 2·k²`` — 32,866 at C = 512, r = 16, k = 7.
    Introduced in notebook ``05_cbam``; the module docstring lists where the authors' code
    differs.
    """

    ORDERS = ("channel-spatial", "spatial-channel", "parallel")

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        kernel_size: int = 7,
        order: str = "channel-spatial",
    ):
        super().__init__()
        if order not in self.ORDERS:
            raise ValueError(
                f"order must be one of {', '.join(self.ORDERS)}, not {order!r}"
            )
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)
        self.order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == "channel-spatial":
            return self.spatial(self.channel(x))
        if self.order == "spatial-channel":
            return self.channel(self.spatial(x))
        return (self.channel(x) + self.spatial(x)) / 2
