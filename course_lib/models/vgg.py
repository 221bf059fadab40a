"""VGG16, configurable for the course (introduced in notebook ``02_vgg16_baseline``).

VGG16 {Simonyan & Zisserman, 2015} is thirteen 3x3 convolutions in five stages, each stage
ending in a 2x2 max-pool, followed by three fully connected layers. Two knobs make it fit a
laptop: ``width`` scales every channel count (1.0 is the real network), and ``head="gap"``
replaces the three FC layers — 124 M of its 138 M parameters — by global average pooling
and one linear layer.

At full width the parameter counts equal torchvision's: 138,357,544 (``batch_norm=False``)
and 138,365,992 (``batch_norm=True``), with ``num_classes=1000`` and ``head="fc"``.

**Attention slots** (notebooks 04–09). ``attention=`` names a module of the registry
(:data:`course_lib.attention.ATTENTION`) and inserts one at the end of its default stages,
after the last ReLU and before the max-pool, where a stage's features are richest:

- ``"se"``, ``"cbam"``, ``"triplet"``, ``"eca"``: every stage (1–5). They cost O(C²/r),
  O(C²/r), O(1) and O(log C) parameters and O(HW·C) operations, cheap enough everywhere;
- ``"self"``: stage 4 only (28×28 positions at 224 px, 8×8 at 64 px). Its attention matrix
  has (HW)² entries: 615 thousand at 28×28, but 2.5 billion (10 GB in fp32) at 224×224,
  where a widely copied blog post on VGG16 with attention put it.

``attention_stages`` overrides the default stages. ``head="dualpool"`` concatenates global
average and max pooling before the linear layer (notebook 06).
"""

from __future__ import annotations

import torch
from torch import nn

from ..attention import ATTENTION, DualPooling, is_attention, make_attention

__all__ = ["VGG16_STAGES", "VGG", "vgg16", "scaled", "init_weights"]


#: Output channels of the convolutions of each of the five stages (configuration "D").
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def init_weights(model: nn.Module, conv_mode: str = "fan_out") -> None:
    """torchvision's VGG initialisation for every conv, BatchNorm and linear layer of ``model``
    outside its attention modules: Kaiming-normal convolutions (``conv_mode`` "fan_out" as
    torchvision, "fan_in" as AttnMel's gates), BatchNorm at 1 and 0, linear layers N(0, 0.01),
    biases 0. Attention modules keep their own initialisation (SAGAN's gamma must start at 0)."""
    inside_attention = {
        id(sub)
        for m in model.modules()
        if m is not model and is_attention(m)
        for sub in m.modules()
    }
    for m in model.modules():
        if id(m) in inside_attention:
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def scaled(channels: int, width: float) -> int:
    """Channel count at a width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


def conv_stage(in_channels: int, widths, batch_norm: bool) -> nn.Sequential:
    """One VGG stage: (3x3 conv [+ BN] + ReLU) per entry of ``widths``, then a 2x2 max-pool."""
    layers: list[nn.Module] = []
    for out_channels in widths:
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` (five stages; ``features[i]`` is stage i+1) then ``pool`` and ``classifier``."""

    def __init__(
        self,
        num_classes: int,
        width: float = 1.0,
        batch_norm: bool = True,
        head: str = "fc",
        dropout: float = 0.5,
        attention: str | None = None,
        attention_stages=None,
    ):
        super().__init__()
        if attention is not None and attention not in ATTENTION:
            raise ValueError(
                f"attention must be one of {', '.join(ATTENTION)} or None, not {attention!r}"
            )
        slots = set(
            attention_stages or (ATTENTION[attention].stages if attention else ())
        )
        stages, in_channels = [], 3
        for index, widths in enumerate(VGG16_STAGES, start=1):
            widths = [scaled(c, width) for c in widths]
            stage = conv_stage(in_channels, widths, batch_norm)
            if attention is not None and index in slots:  # before the stage's max-pool
                stage = nn.Sequential(
                    *stage[:-1], make_attention(attention, widths[-1]), stage[-1]
                )
            stages.append(stage)
            in_channels = widths[-1]
        self.attention = attention
        self.features = nn.Sequential(*stages)
        self.out_channels = in_channels
        if head == "fc":
            hidden = scaled(4096, width)
            # adaptive pooling to 7x7 lets any input size reach the FC layers (224 px gives 7x7)
            self.pool = nn.AdaptiveAvgPool2d(7)
            self.classifier = nn.Sequential(
                nn.Flatten(),
                nn.Linear(in_channels * 7 * 7, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        elif head == "gap":
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_channels, num_classes)
            )
        elif head == "dualpool":
            self.pool = DualPooling()  # (N, C, H, W) -> (N, 2C)
            self.classifier = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(2 * in_channels, num_classes)
            )
        else:
            raise ValueError(f"head must be 'fc', 'gap' or 'dualpool', not {head!r}")
        self.head = head
        self._init_weights()

    def _init_weights(self) -> None:
        # the backbone and head only: attention modules keep their own (SAGAN's gamma must start at 0)
        init_weights(self, conv_mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(
                f"VGG16 halves the input five times: height and width must be multiples of 32, "
                f"got {tuple(x.shape[-2:])}"
            )
        return self.classifier(self.pool(self.features(x)))


def vgg16(
    num_classes: int,
    width: float = 1.0,
    batch_norm: bool = True,
    head: str = "fc",
    attention: str | None = None,
    dropout: float = 0.5,
    attention_stages=None,
) -> VGG:
    """VGG16 with ``num_classes`` outputs (1 for a binary task scored by one logit).

    ``head``: "fc", "gap" or "dualpool"; ``attention``: None or a name of
    :data:`course_lib.attention.ATTENTION` ("se", "cbam", "self", "triplet", "eca").
    """
    return VGG(
        num_classes,
        width=width,
        batch_norm=batch_norm,
        head=head,
        dropout=dropout,
        attention=attention,
        attention_stages=attention_stages,
    )
