"""Grad-CAM for the course's models, through the ``grad-cam`` package (notebook ``11_seeing_attention``).

Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization*, ICCV 2017. For a target score ``y`` and a convolutional layer with feature
maps ``A^k``: weight each map by its average gradient ``w_k = mean_ij dy/dA^k_ij`` and keep the
positive part of ``sum_k w_k A^k``. Unlike AttnVGG's attention maps, Grad-CAM is computed
*after* training, from any model; it shows what the score is sensitive to, not what the
model was built to weigh.

Three things the package needs that the course's models do not give it by themselves:

1. **A model that returns a tensor.** AttnVGG returns ``(logits, a1, a2)``; :class:`LogitsOnly`
   wraps it to return the logits.
2. **No in-place ReLU in the way of its hooks.** The package hooks a layer's output and
   registers a gradient hook on it; if a later in-place ReLU overwrote that tensor, autograd
   would refuse (or the stored activation would not be what the layer produced).
   :func:`grad_cam` switches every ``ReLU(inplace=True)`` off while it runs and back after.
3. **A target for one logit.** A binary model has a single output; the package's
   ``BinaryClassifierOutputTarget`` explains the logit for "melanoma" (1) or its negative
   for "benign" (0).

**The target layer, chosen on purpose** (:func:`default_target_layer`): the last activation
of stage 5, just before pool-5 — the deepest map that still has a spatial layout (1/16 of
the input side: 14×14 at 224 px). Deeper means more semantic. Its gradient collects every path
from stage 5 to the score: AttnVGG's global branch (GAP of pool-5) *and* both gates, which
pool-5 guides through ``W_g``. What it does *not* see is the pooled pool-3 and pool-4 features
that reach the classifier without passing through stage 5 — that is what the attention maps
show, which is why notebook 11 looks at both.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget
from torch import nn

from .metrics import predicted_class
from .models import logits_of

__all__ = ["LogitsOnly", "default_target_layer", "grad_cam"]


class LogitsOnly(nn.Module):
    """Wraps a model whose output is a tuple ``(logits, ...)`` so that it returns the logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(x))


def default_target_layer(model: nn.Module) -> nn.Module:
    """The last activation of the last convolution stage (before its max-pool).

    Works for :class:`~course_lib.models.AttnVGG` and :class:`~course_lib.models.VGG`, whose
    ``features[-1]`` is stage 5 ending in ``..., ReLU, [attention], MaxPool2d``.
    """
    stage = model.features[-1]
    relus = [m for m in stage if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError(
            "the model's last stage has no ReLU; pass target_layer explicitly"
        )
    return relus[-1]


@contextmanager
def _no_inplace_relu(model: nn.Module):
    switched = [m for m in model.modules() if isinstance(m, nn.ReLU) and m.inplace]
    for m in switched:
        m.inplace = False
    try:
        yield
    finally:
        for m in switched:
            m.inplace = True


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    target_layer: nn.Module | None = None,
    target="predicted",
) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] at the images' size, one per image.

    ``target``: "predicted" explains each image's predicted class (melanoma when its
    probability is at least 0.5, else benign); "melanoma" or "benign" explain that class for
    every image; a sequence of N classes (1 melanoma, 0 benign) gives one per image. Each map
    is min-max scaled by the package. The model is put in eval mode.
    """
    named = isinstance(target, str)
    if named and target not in ("predicted", "melanoma", "benign"):
        raise ValueError(
            f"target must be 'predicted', 'melanoma', 'benign' or one class per image, not {target!r}"
        )
    if not named and len(target) != len(images):
        raise ValueError(f"{len(target)} target classes for {len(images)} images")
    wrapped = LogitsOnly(model).eval()
    layer = target_layer if target_layer is not None else default_target_layer(model)
    device = next(model.parameters()).device
    images = images.to(device)
    with _no_inplace_relu(model):
        if target == "predicted":
            with torch.no_grad():
                classes = predicted_class(wrapped(images)).tolist()
        elif named:
            classes = [int(target == "melanoma")] * len(images)
        else:
            classes = [int(c) for c in target]
        with GradCAM(model=wrapped, target_layers=[layer]) as cam:
            maps = cam(
                input_tensor=images,
                targets=[BinaryClassifierOutputTarget(c) for c in classes],
            )
    return np.asarray(maps, dtype=np.float32)
