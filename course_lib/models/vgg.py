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

__all__ = [
    "VGG16_STAGES",
    "HEADS",
    "VGG",
    "vgg16",
    "vgg16_features",
    "scaled",
    "init_weights",
    "check_model_arguments",
]


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


def _check_width(width: float) -> None:
    if not 0 < width <= 4:  # also refuses NaN
        raise ValueError(
            f"width must be in (0, 4] (1 is the real VGG16), not {width!r}"
        )


def check_model_arguments(num_classes: int, width: float) -> None:
    """Refuse a model that cannot be trained: no outputs, or channels scaled to nothing."""
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or num_classes < 1
    ):
        raise ValueError(
            f"num_classes must be an integer >= 1 (1: one logit for a binary task), "
            f"not {num_classes!r}"
        )
    _check_width(width)


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


def vgg16_features(
    width: float = 1.0,
    batch_norm: bool = True,
    attention: str | None = None,
    attention_stages=None,
) -> nn.Sequential:
    """VGG16's five convolution stages (``features[i]`` is stage i+1), as torchvision's
    ``make_layers``: the backbone every model of the course is built on.

    ``attention`` inserts a module of the registry at the end of its default stages (or of
    ``attention_stages``), after the stage's last ReLU and before its max-pool. The weights
    keep PyTorch's default initialisation: the model built on them initialises them
    (:func:`init_weights`). ``features.out_channels`` is the last stage's width,
    ``features.attention`` the registry name inserted (or None).
    """
    _check_width(width)
    if attention is not None and attention not in ATTENTION:
        raise ValueError(
            f"attention must be one of {', '.join(ATTENTION)} or None, not {attention!r}"
        )
    slots = set(attention_stages or (ATTENTION[attention].stages if attention else ()))
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
    features = nn.Sequential(*stages)
    features.out_channels, features.attention = in_channels, attention
    return features


def _fc_head(channels: int, num_classes: int, width: float, dropout: float):
    hidden = scaled(4096, width)
    # adaptive pooling to 7x7 lets any input size reach the FC layers (224 px gives 7x7)
    return nn.AdaptiveAvgPool2d(7), nn.Sequential(
        nn.Flatten(),
        nn.Linear(channels * 7 * 7, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


def _gap_head(channels: int, num_classes: int, width: float, dropout: float):
    return nn.AdaptiveAvgPool2d(1), nn.Sequential(
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes)
    )


def _dualpool_head(channels: int, num_classes: int, width: float, dropout: float):
    # (N, C, H, W) -> (N, 2C): average and max pooling side by side (notebook 06)
    return DualPooling(), nn.Sequential(
        nn.Dropout(dropout), nn.Linear(2 * channels, num_classes)
    )


#: The heads a VGG can end in: name -> builder of ``(pool, classifier)``.
HEADS = {"fc": _fc_head, "gap": _gap_head, "dualpool": _dualpool_head}


class VGG(nn.Module):
    """``features`` (given, as in torchvision) then ``pool`` and ``classifier`` (a head of
    :data:`HEADS`). ``width`` scales the FC head's hidden layers."""

    def __init__(
        self,
        features: nn.Sequential,
        num_classes: int,
        head: str = "fc",
        width: float = 1.0,
        dropout: float = 0.5,
    ):
        super().__init__()
        check_model_arguments(num_classes, width)
        if head not in HEADS:
            raise ValueError(f"head must be 'fc', 'gap' or 'dualpool', not {head!r}")
        self.features = features
        self.out_channels = features.out_channels
        self.pool, self.classifier = HEADS[head](
            self.out_channels, num_classes, width, dropout
        )
        self.head = head
        # the backbone and head only: attention modules keep their own (SAGAN's gamma must start at 0)
        init_weights(self, conv_mode="fan_out")

    @property
    def attention(self) -> str | None:
        """The registry name of the attention modules inside the stages, if any."""
        return getattr(self.features, "attention", None)

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
    """VGG16 with ``num_classes`` outputs (1 for a binary task scored by one logit): the
    features of :func:`vgg16_features` and a head.

    ``head``: "fc", "gap" or "dualpool"; ``attention``: None or a name of
    :data:`course_lib.attention.ATTENTION` ("se", "cbam", "self", "triplet", "eca").
    """
    features = vgg16_features(width, batch_norm, attention, attention_stages)
    return VGG(features, num_classes, head=head, width=width, dropout=dropout)
