"""The additive attention gate of AttnVGG (introduced in notebook ``10_attnvgg_melanoma``).

Jetley et al., *Learn to Pay Attention*, ICLR 2018; Yan, Kawahara & Hamarneh, *Melanoma
Recognition via Visual Attention*, IPMI 2019.

A *local* feature map ``l`` (pool-3 or pool-4: fine, but each position sees little) is
scored against the *global* map ``g`` (pool-5: coarse, but it has seen the whole lesion):

    c = phi( ReLU( W_l · l + upsample(W_g · g) ) )          one score per local position

``W_l``, ``W_g`` are 1×1 convolutions to ``attn_channels`` (no bias), ``phi`` a 1×1
convolution to one channel (with bias); the projected global map is upsampled bilinearly to
the local map's size (by ``up_factor`` when the input side is a multiple of 32).

- ``normalize_attn=True``: ``a = softmax(c)`` over positions (it sums to 1) and the output is
  the attention-weighted *sum* of the local features — attention pooling;
- ``normalize_attn=False``: ``a = sigmoid(c)`` (each position gated on its own) and the output
  is the global *average* of the gated local features.

Returns ``(a, pooled)``: ``a`` is ``(N, 1, H, W)``, ``pooled`` is ``(N, C_local)``.
Parameters: ``C_l·A + C_g·A + A + 1`` with ``A = attn_channels`` (196,865 for pool-3 and
262,401 for pool-4 at full width).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttentionGate"]


class AttentionGate(nn.Module):
    """Additive attention gate: score each local position against the global map, then pool.

    Args:
        local_channels: C_l of the local map (pool-3 or pool-4).
        global_channels: C_g of the global map (pool-5).
        attn_channels: A, the width of the 1×1 projections ``W_l`` and ``W_g``.
        up_factor: how much smaller the global map is (informative: the sizes decide).
        normalize_attn: softmax over positions and a weighted sum (True), or a sigmoid per
            position and an average (False).

    ``forward(local, global_)`` returns ``(a, pooled)``: ``a`` is ``(N, 1, H, W)``,
    ``pooled`` is ``(N, C_l)``; :meth:`scores` gives the unnormalised scores.
    Parameters: ``C_l·A + C_g·A + A + 1``. Introduced in notebook ``10_attnvgg_melanoma``.
    """

    def __init__(
        self,
        local_channels: int,
        global_channels: int,
        attn_channels: int,
        up_factor: int,
        normalize_attn: bool = True,
    ):
        super().__init__()
        self.up_factor = up_factor
        self.normalize_attn = normalize_attn
        self.W_l = nn.Conv2d(local_channels, attn_channels, kernel_size=1, bias=False)
        self.W_g = nn.Conv2d(global_channels, attn_channels, kernel_size=1, bias=False)
        self.phi = nn.Conv2d(attn_channels, 1, kernel_size=1, bias=True)

    def scores(self, local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
        """Unnormalised compatibility scores ``c``, ``(N, 1, H, W)`` at the local map's size."""
        g = self.W_g(global_)
        if g.shape[-2:] != local.shape[-2:]:
            # the size, not up_factor, decides: any input side divisible by 32 works
            g = F.interpolate(
                g, size=local.shape[-2:], mode="bilinear", align_corners=False
            )
        return self.phi(F.relu(self.W_l(local) + g))

    def forward(self, local: torch.Tensor, global_: torch.Tensor):
        n, c, h, w = local.shape
        scores = self.scores(local, global_)
        if self.normalize_attn:
            a = F.softmax(scores.flatten(2), dim=2).view(n, 1, h, w)
            pooled = (a * local).flatten(2).sum(dim=2)  # attention-weighted sum
        else:
            a = torch.sigmoid(scores)
            pooled = (a * local).mean(dim=(2, 3))  # average of the gated features
        return a, pooled
