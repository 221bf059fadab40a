"""One registry of the attention modules that go into a network by name (notebooks 04–09, 12).

Modelled on timm's ``create_attn``: every module takes the number of channels first (one
that does not need it, like triplet attention, accepts and ignores it), and
:func:`make_attention` builds one by name. :func:`course_lib.models.vgg16` (``attention=``),
the command line's model names (``vgg16-<name>``) and chapter 09 all read this table.

**Adding a module** is one file in ``course_lib/attention/`` and one line in
:data:`ATTENTION` below; nothing else needs to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .cbam import CBAM
from .eca import ECA
from .se import SEBlock
from .self_attention import SelfAttention2d
from .triplet import TripletAttention

__all__ = [
    "AttentionSpec",
    "ATTENTION",
    "make_attention",
    "attention_names",
    "is_attention",
]

EVERY_STAGE = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class AttentionSpec:
    """How to build one kind of attention module and where VGG16 puts it by default."""

    factory: Callable[..., nn.Module]  # called as factory(channels, **options)
    # the VGG16 stages (1–5) that get one, at the end of the stage
    stages: tuple[int, ...]
    label: str  # how tables and plots name it


#: name → spec. Self-attention goes on stage 4 only: its (HW)² matrix is too large earlier.
ATTENTION: dict[str, AttentionSpec] = {
    "se": AttentionSpec(SEBlock, EVERY_STAGE, "SE"),
    "cbam": AttentionSpec(CBAM, EVERY_STAGE, "CBAM"),
    "self": AttentionSpec(SelfAttention2d, (4,), "self-attention"),
    "triplet": AttentionSpec(TripletAttention, EVERY_STAGE, "triplet"),
    "eca": AttentionSpec(ECA, EVERY_STAGE, "ECA"),
}


def attention_names() -> tuple[str, ...]:
    return tuple(ATTENTION)


def make_attention(name: str, channels: int, **options) -> nn.Module:
    """A fresh attention module of kind ``name`` for a feature map with ``channels`` channels."""
    try:
        spec = ATTENTION[name]
    except KeyError:
        raise ValueError(
            f"unknown attention {name!r}; choose one of {', '.join(ATTENTION)}"
        ) from None
    return spec.factory(channels, **options)


def is_attention(module: nn.Module) -> bool:
    """Whether ``module`` is one of the registered attention modules."""
    return isinstance(
        module,
        tuple(
            spec.factory
            for spec in ATTENTION.values()
            if isinstance(spec.factory, type)
        ),
    )
