"""SAGAN-style self-attention over positions (introduced in notebook ``07_self_attention``).

Zhang, Goodfellow, Metaxas & Odena, *Self-Attention Generative Adversarial Networks*, ICML 2019
(the non-local block of Wang et al., CVPR 2018, is the same idea).

Every position ``i`` of a feature map attends to every position ``j``: 1×1 convolutions make
a query (C/8 channels), a key (C/8) and a value (C); the weights ``softmax_j(q_i · k_j)`` —
no 1/√d scaling in SAGAN — average the values; a learned scalar ``gamma``, initialised at 0,
mixes the result into the input: ``y = gamma · attention(x) + x``. The block therefore starts
as the identity and learns how much non-local context to add.

The (HW)×(HW) weight matrix is what makes it expensive: 784² entries at 28×28, 50,176² ≈
2.5·10⁹ at 224×224. The computation goes through
``torch.nn.functional.scaled_dot_product_attention``, whose fused kernels never store that
matrix whole. They need queries and values of the same width, SAGAN's are C/8 and C, so
by default (``fused=True``) the queries and keys are zero-padded to C channels: a dot product
ignores zeros, and the scale is passed explicitly, so the result is unchanged while the
fused kernel (flash attention, also on the CPU) becomes eligible. They also need contiguous
inputs. Notebook 07 and ``benchmarks/attention_memory.py`` measure it.

Shapes: ``(N, C, H, W) → (N, C, H, W)``.
Parameters: ``2·(C·C/8 + C/8) + C·C + C + 1`` — 328,321 at C = 512; 5,201 at C = 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SelfAttention2d"]


class SelfAttention2d(nn.Module):
    """SAGAN self-attention: every position adds a weighted average of all positions' values.

    Args:
        channels: C, the number of input channels.
        key_channels: width of queries and keys (default ``max(1, C // 8)``, SAGAN's).
        scale: factor on ``q · k`` before the softmax; 1.0 is SAGAN's (no scaling), ``None``
            gives the transformer's ``1/sqrt(key_channels)``.
        fused: zero-pad queries and keys to C channels so that the fused (flash) kernels of
            ``scaled_dot_product_attention`` apply; the result is unchanged.

    Shapes: ``(N, C, H, W) → (N, C, H, W)``; :meth:`attend` is the output before the mix
    ``gamma · attend(x) + x`` (``gamma`` starts at 0: the block starts as the identity).
    Parameters: ``2·(C·C/8 + C/8) + C·C + C + 1`` — 328,321 at C = 512.
    Introduced in notebook ``07_self_attention``.
    """

    def __init__(
        self,
        channels: int,
        key_channels: int | None = None,
        scale: float | None = 1.0,
        fused: bool = True,
    ):
        super().__init__()
        self.fused = fused
        key_channels = key_channels or max(1, channels // 8)
        self.query = nn.Conv2d(channels, key_channels, kernel_size=1)
        self.key = nn.Conv2d(channels, key_channels, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.scale = scale  # SAGAN: 1.0 (no scaling); None: 1/sqrt(key_channels) as in transformers

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The attention output before the residual mix, ``(N, C, H, W)``."""
        n, c, h, w = x.shape
        # (N, HW, channels), contiguous: the fused kernels need unit stride on the last axis and
        # otherwise fall back, silently, to the math kernel that stores the (HW)x(HW) matrix
        q = self.query(x).flatten(2).transpose(1, 2).contiguous()  # (N, HW, C/8)
        k = self.key(x).flatten(2).transpose(1, 2).contiguous()  # (N, HW, C/8)
        v = self.value(x).flatten(2).transpose(1, 2).contiguous()  # (N, HW, C)
        scale = self.scale if self.scale is not None else q.shape[-1] ** -0.5
        # same width as v: fused kernels become eligible
        if self.fused and q.shape[-1] != c:
            q, k = F.pad(q, (0, c - q.shape[-1])), F.pad(k, (0, c - k.shape[-1]))
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)  # (N, HW, C)
        return out.transpose(1, 2).reshape(n, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * self.attend(x) + x
