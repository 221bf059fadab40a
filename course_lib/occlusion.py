"""Occlusion, an attribution that needs no gradient, through Captum (notebook ``11``).

Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014: slide a
grey square over the image and record how much the score falls wherever it covers. Grad-CAM
reads the gradient at one layer — what the score is *locally* sensitive to; occlusion
measures what the score loses when a region is really taken away. The two can disagree, and
where they do the deletion curve (:mod:`course_lib.faithfulness`) says which told the truth.
Captum's :class:`captum.attr.Occlusion` does the sliding; :func:`occlusion_maps` sets it up
for the course's one-logit models.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import Occlusion

from .gradcam import LogitsOnly

__all__ = ["occlusion_maps"]


def occlusion_maps(
    model, images: torch.Tensor, window: int = 8, stride: int | None = None
) -> np.ndarray:
    """``(N, H, W)``: how much the melanoma logit falls when a ``window``-pixel square around
    each pixel is replaced by 0 (the data set's mean after normalisation), averaged over the
    windows that cover it. Positive: evidence for melanoma. ``stride`` defaults to ``window``
    (the windows tile the image: ``(H / window)²`` forward passes per image)."""
    stride = window if stride is None else stride
    side = min(images.shape[-2:])
    for name, value in (("window", window), ("stride", stride)):
        if not isinstance(value, int) or not 1 <= value <= side:
            raise ValueError(
                f"{name} must be an integer from 1 to {side}, not {value!r}"
            )
    wrapped = LogitsOnly(model).eval()
    device = next(model.parameters()).device
    channels = images.shape[1]
    with torch.no_grad():
        attributions = Occlusion(wrapped).attribute(
            images.to(device),
            sliding_window_shapes=(channels, window, window),
            strides=(channels, stride, stride),
            baselines=0.0,
            target=0,
            perturbations_per_eval=16,
        )
    return attributions.mean(dim=1).float().cpu().numpy()
