"""AttnVGG: VGG16-BN with attention gates on pool-3 and pool-4 (notebook ``10_attnvgg_melanoma``).

Yan, Kawahara & Hamarneh, *Melanoma Recognition via Visual Attention*, IPMI 2019, after
Jetley et al., *Learn to Pay Attention*, ICLR 2018.

The five convolution stages of VGG16-BN (no FC layers). The output of stage 5 (pool-5) is
the *global* feature map; two :class:`~course_lib.attention.AttentionGate` s score the
*local* maps pool-3 and pool-4 against it and pool them. The classifier reads the
concatenation of GAP(pool-5) and the two attention-pooled vectors (512 + 256 + 512 = 1280
at full width). ``forward`` returns ``(logits, a1, a2)``: the maps are 28×28 and 14×14 at a
224 px input; any input side divisible by 32 works (the global pooling is adaptive, not
the Paperspace tutorial's ``AvgPool2d(7)``).

With ``num_classes=1, width=1.0``: 15,183,683 parameters — 14,723,136 in the convolutions,
196,865 + 262,401 in the gates, 1,281 in the classifier.

``global_branch=False`` classifies from the two attention-pooled vectors alone, as Jetley et
al. do: the global map then only *guides* the gates. Notebook 11 uses it to show that what a
gate attends to depends on what else the classifier can read.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.hub import get_dir
from torchvision.models import VGG16_BN_Weights, vgg16_bn

from ..attention import AttentionGate
from ..config import imagenet_weights_file
from .vgg import (
    VGG16_STAGES,
    check_model_arguments,
    init_weights,
    scaled,
    vgg16_features,
)

__all__ = ["AttnVGG", "load_imagenet_features", "WeightsError"]


class WeightsError(RuntimeError):
    """The ImageNet weights cannot be had: no network, or a missing or broken file."""


def load_imagenet_features(features: nn.Sequential) -> None:
    """Copy torchvision's ImageNet VGG16-BN convolution weights into ``features``, in order.

    Reads the file named by ``COURSE_PRETRAINED`` when it names one; otherwise uses
    torchvision's weights API, which caches the file in torch's hub folder
    (``$TORCH_HOME/hub/checkpoints``) and downloads it only when it is not there.
    """
    weights = VGG16_BN_Weights.IMAGENET1K_V1
    local = imagenet_weights_file()
    try:
        if local is not None:
            reference = vgg16_bn()
            reference.load_state_dict(
                torch.load(local, map_location="cpu", weights_only=True)
            )
        else:
            reference = vgg16_bn(weights=weights)
    except Exception as err:  # no network, a proxy, a truncated or wrong file...
        where = (
            f"the file {local}"
            if local is not None
            else f"{weights.url} (cached in {get_dir()}/checkpoints)"
        )
        raise WeightsError(
            f"could not load the ImageNet VGG16-BN weights from {where} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). On a machine without internet, download "
            f"{weights.url} elsewhere and set COURSE_PRETRAINED to its path (or copy it into that cache folder), "
            "or set COURSE_PRETRAINED=0 to train from scratch."
        ) from err
    ours, theirs = (
        list(features.state_dict().items()),
        list(reference.features.state_dict().values()),
    )
    if len(ours) != len(theirs) or any(
        a.shape != b.shape for (_, a), b in zip(ours, theirs)
    ):
        raise ValueError(
            "ImageNet weights fit the full-width VGG16-BN features only (width=1.0, no "
            "attention module inside the stages): train this model from scratch "
            "(COURSE_PRETRAINED=0)"
        )
    features.load_state_dict({name: tensor for (name, _), tensor in zip(ours, theirs)})


class AttnVGG(nn.Module):
    """VGG16-BN whose classifier reads pool-5 and two attention-pooled local maps.

    Args:
        num_classes: 1 for a single melanoma logit, 2 for two-class logits.
        normalize_attn: softmax attention with a weighted sum (True) or a sigmoid gate with
            an average (False), in both gates (see :class:`~course_lib.attention.AttentionGate`).
        width: multiplies every stage's channels (1.0 is VGG16's 64…512).
        pretrained: start the convolutions from torchvision's ImageNet VGG16-BN (width 1.0).
        dropout: probability before the classifier (none by default).
        global_branch: include GAP(pool-5) in the classifier's input (AttnMel) or not
            (Jetley et al.).

    ``forward(x)`` returns ``(logits, a1, a2)``: logits ``(N, num_classes)``, attention maps
    ``(N, 1, H/8, W/8)`` and ``(N, 1, H/16, W/16)``; H and W must be multiples of 32.
    :meth:`forward_features` returns every intermediate by name.
    Parameters at full width with one class: 15,183,683 (module docstring: the breakdown).
    Introduced in notebook ``10_attnvgg_melanoma``.
    """

    def __init__(
        self,
        num_classes: int,
        normalize_attn: bool = True,
        width: float = 1.0,
        pretrained: bool = False,
        dropout: float | None = None,
        global_branch: bool = True,
    ):
        super().__init__()
        check_model_arguments(num_classes, width)
        # stages 1-5: VGG16-BN's features, initialised as torchvision's VGG
        self.features = vgg16_features(width)
        if pretrained:
            load_imagenet_features(self.features)
        else:
            init_weights(self.features, conv_mode="fan_out")
        c3, c4, c5 = (scaled(VGG16_STAGES[i][-1], width) for i in (2, 3, 4))
        attn = c3  # the gates' inner width: pool-3's channels (256 at full width)
        # pool-3
        self.attn1 = AttentionGate(
            c3, c5, attn, up_factor=4, normalize_attn=normalize_attn
        )
        # pool-4
        self.attn2 = AttentionGate(
            c4, c5, attn, up_factor=2, normalize_attn=normalize_attn
        )
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.global_branch = global_branch
        self.classifier = nn.Linear((c5 if global_branch else 0) + c3 + c4, num_classes)
        # as AttnMel's reset_parameters
        for module in (
            self.attn1,
            self.attn2,
            self.classifier,
        ):
            init_weights(module, conv_mode="fan_in")

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything before the classifier: ``pool3``, ``pool4``, ``pool5`` (feature maps),
        ``a1``, ``a2`` (attention maps) and ``g1``, ``g2`` (the attention-pooled vectors)."""
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(
                f"AttnVGG needs height and width divisible by 32, got {tuple(x.shape[-2:])}"
            )
        pool1 = self.features[0](x)
        pool2 = self.features[1](pool1)
        pool3 = self.features[2](pool2)  # local map 1: 1/8 of the input side
        pool4 = self.features[3](pool3)  # local map 2: 1/16
        pool5 = self.features[4](pool4)  # global map: 1/32
        a1, g1 = self.attn1(pool3, pool5)
        a2, g2 = self.attn2(pool4, pool5)
        return {
            "pool3": pool3,
            "pool4": pool4,
            "pool5": pool5,
            "a1": a1,
            "g1": g1,
            "a2": a2,
            "g2": g2,
        }

    def forward(self, x: torch.Tensor):
        f = self.forward_features(x)
        pooled = [self.global_pool(f["pool5"]).flatten(1)] if self.global_branch else []
        logits = self.classifier(
            self.dropout(torch.cat([*pooled, f["g1"], f["g2"]], dim=1))
        )
        return logits, f["a1"], f["a2"]
