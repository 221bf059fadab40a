"""Dual pooling head: global average and global max, concatenated (notebook ``06_dual_pooling``).

Average pooling summarises how much of a pattern a map holds overall; max pooling keeps
its strongest single occurrence. Concatenating both gives the classifier the two views.
Shapes: ``(N, C, H, W) → (N, 2C)`` (averages first, then maxima). No parameters.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DualPooling"]


class DualPooling(nn.Module):
    """Global average and global max pooling, concatenated: two summaries of each channel.

    Shapes: ``(N, C, H, W) → (N, 2C)``, the C averages first, then the C maxima.
    No parameters. Introduced in notebook ``06_dual_pooling``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
