"""Attention modules of the course, one file each (notebooks 04–08 introduce them, 10 and 12 add two).

Every module maps ``(N, C, H, W) → (N, C, H, W)`` except :class:`DualPooling`
(``(N, C, H, W) → (N, 2C)``) and :class:`AttentionGate` (notebook 10), which returns
``(attention_map, pooled_features)``. :func:`make_attention` builds the modules that go into
a network by name (:mod:`course_lib.attention.registry`).
"""

from .cbam import CBAM, ChannelAttention, SpatialAttention
from .eca import ECA
from .gates import AttentionGate
from .pooling import DualPooling
from .registry import ATTENTION, attention_names, is_attention, make_attention
from .se import SEBlock
from .self_attention import SelfAttention2d
from .triplet import TripletAttention, ZPool

__all__ = [
    "SEBlock",
    "ChannelAttention",
    "SpatialAttention",
    "CBAM",
    "DualPooling",
    "SelfAttention2d",
    "TripletAttention",
    "ZPool",
    "AttentionGate",
    "ECA",
    "ATTENTION",
    "make_attention",
    "attention_names",
    "is_attention",
]
