"""Squeeze-and-Excitation (introduced in notebook ``04_squeeze_excitation``).

Hu, Shen & Sun, *Squeeze-and-Excitation Networks*, CVPR 2018.

*Squeeze*: global average pooling summarises each channel by one number. *Excite*: a
bottleneck MLP (C → C/r → C, ReLU between, sigmoid after) turns the C numbers into C gates
in (0, 1). *Scale*: each channel of the input is multiplied by its gate.

Shapes: ``(N, C, H, W) → (N, C, H, W)``; the gate is ``(N, C, 1, 1)``.
Parameters (with biases, as torchvision's ``SqueezeExcitation``): ``2·C·C/r + C/r + C``
— 33,312 at C = 512, r = 16 (32,768 without the biases).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SEBlock"]


class SEBlock(nn.Module):
    """Squeeze-and-Excitation: rescale each channel by a gate computed from all channels.

    Args:
        channels: C, the number of input channels.
        reduction: r; the bottleneck has ``max(1, C // r)`` units.

    Shapes: ``(N, C, H, W) → (N, C, H, W)``; :meth:`gate` is ``(N, C, 1, 1)``.
    Parameters: ``2·C·C/r + C/r + C`` (biases included, as torchvision's
    ``SqueezeExcitation``, which it matches weight for weight) — 33,312 at C = 512, r = 16.
    Introduced in notebook ``04_squeeze_excitation``.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        # 1x1 convolutions on a 1x1 map are linear layers; named as torchvision's fc1/fc2
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.activation = nn.ReLU()

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gates, ``(N, C, 1, 1)`` in (0, 1)."""
        return torch.sigmoid(self.fc2(self.activation(self.fc1(self.squeeze(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)
