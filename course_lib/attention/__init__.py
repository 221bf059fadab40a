"""Attention modules of the course, one file each (notebooks 04–08 introduce them).

Every module maps ``(N, C, H, W) → (N, C, H, W)`` except :class:`DualPooling`
(``(N, C, H, W) → (N, 2C)``) and :class:`AttentionGate` (notebook 10), which returns
``(attention_map, pooled_features)``.
"""

from .cbam import CBAM, ChannelAttention, SpatialAttention
from .gates import AttentionGate
from .pooling import DualPooling
from .se import SEBlock
from .self_attention import SelfAttention2d
from .triplet import TripletAttention, ZPool

__all__ = ["SEBlock", "ChannelAttention", "SpatialAttention", "CBAM", "DualPooling", "SelfAttention2d",
           "TripletAttention", "ZPool", "AttentionGate"]
