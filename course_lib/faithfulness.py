"""Does a saliency map show what the model *uses*? Deletion and insertion curves (notebook ``11``).

Petsiuk, Das & Saenko, *RISE: Randomized Input Sampling for Explanation of Black-box Models*,
BMVC 2018. Rank the pixels by the map, most salient first. **Deletion**: remove them in that
order (replace them by 0, the data set's mean after normalisation) and follow the model's
score; a map that found the evidence makes the score fall fast, so the area under the curve
is *small*. **Insertion**: start from a blurred copy of the image and put the original
pixels back in the same order; a faithful map makes the score rise fast, so the area is
*large*. Unlike the localisation measures of :mod:`course_lib.saliency`, these need no
mask: they ask the model itself, not a human annotation.

:func:`perturbation_curves` computes either curve for a batch of images and maps;
:func:`curve_areas` integrates them over the fraction of pixels changed (0 to 1);
:func:`faithfulness_table` scores several maps of the same images, each against a baseline
map image by image, with a paired interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.integrate import trapezoid
from torch.nn import functional as F
from torchvision.transforms.functional import gaussian_blur

from .evaluation import paired_mean_ci
from .models import logits_of

__all__ = ["perturbation_curves", "curve_areas", "faithfulness_table", "blurred"]

MODES = ("deletion", "insertion")


def blurred(images: torch.Tensor) -> torch.Tensor:
    """The insertion curve's start: a Gaussian blur with a standard deviation of 1/16 of the
    image side (Petsiuk et al. use sigma 5 at 224 px; this keeps the same proportion)."""
    sigma = images.shape[-1] / 16
    kernel = 2 * round(3 * sigma) + 1
    return gaussian_blur(images, [kernel, kernel], [sigma, sigma])


def _ranks(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Each pixel's rank in its map, 0 for the most salient, at the images' size.

    Maps smaller than the image (attention at 1/8 of the side) are upsampled bilinearly;
    ties keep the pixels' reading order (a stable sort), so the curve is deterministic."""
    m = F.interpolate(maps[:, None].float(), size=size, mode="bilinear")[:, 0]
    flat = m.flatten(1)
    order = torch.from_numpy(np.argsort(-flat.numpy(), axis=1, kind="stable"))
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order).contiguous())
    return ranks.view(len(maps), *size)


def _check(images, maps, mode: str, steps: int) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be 'deletion' or 'insertion', not {mode!r}")
    if not isinstance(steps, int) or not 1 <= steps <= 1024:
        raise ValueError(f"steps must be an integer from 1 to 1024, not {steps!r}")
    if images.ndim != 4 or maps.ndim != 3 or len(images) != len(maps):
        raise ValueError(
            f"images (N, C, H, W) and maps (N, h, w) for the same N, not "
            f"{tuple(images.shape)} and {tuple(maps.shape)}"
        )


@torch.no_grad()
def perturbation_curves(
    model,
    images: torch.Tensor,
    maps,
    mode: str = "deletion",
    steps: int = 16,
    batch_size: int = 256,
) -> np.ndarray:
    """The melanoma probability as the map's pixels are removed or inserted: ``(N, steps + 1)``.

    Column ``k`` is the score with the ``k / steps`` most salient share of the pixels deleted
    (replaced by 0) or inserted (into :func:`blurred`); column 0 is the untouched image
    (deletion) or the blurred one (insertion). ``model`` returns one logit per image, alone
    or first in a tuple (AttnVGG); it is put in eval mode.
    """
    maps = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    _check(images, maps, mode, steps)
    model.eval()
    device = next(model.parameters()).device
    n, pixels = len(images), images.shape[-2] * images.shape[-1]
    ranks = _ranks(maps, tuple(images.shape[-2:]))
    # per step, how many of the top-ranked pixels are changed
    changed = torch.tensor([round(k * pixels / steps) for k in range(steps + 1)])
    start = blurred(images) if mode == "insertion" else torch.zeros_like(images)
    # every (image, step) pair is one input; score them in chunks of batch_size
    pairs = [(i, k) for i in range(n) for k in range(steps + 1)]
    scores = torch.empty(n, steps + 1)
    for first in range(0, len(pairs), batch_size):
        chunk = pairs[first : first + batch_size]
        index = torch.tensor([i for i, _ in chunk])
        moved = ranks[index] < changed[[k for _, k in chunk]].view(-1, 1, 1)
        original = images[index]
        if mode == "deletion":
            x = torch.where(moved[:, None], start[index], original)
        else:
            x = torch.where(moved[:, None], original, start[index])
        logit = logits_of(model(x.to(device))).float().reshape(len(chunk), -1)[:, 0]
        scores[index, [k for _, k in chunk]] = torch.sigmoid(logit).cpu()
    return scores.numpy()


def curve_areas(curves) -> np.ndarray:
    """The area under each curve over the fraction of pixels changed, 0 to 1 (trapezoids)."""
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[1] < 2:
        raise ValueError(
            f"curves must be (N, steps + 1) with at least two points, not {curves.shape}"
        )
    return trapezoid(curves, dx=1 / (curves.shape[1] - 1), axis=1)


def faithfulness_table(
    model,
    images: torch.Tensor,
    maps: dict,
    reference: str = "random map",
    groups=None,
    steps: int = 16,
) -> tuple[pd.DataFrame, dict]:
    """Deletion and insertion areas of every map in ``maps`` ({name: (N, h, w)}), each
    compared with the ``reference`` map's on the same images.

    Returns ``(table, curves)``: one row per map with the mean areas, the mean difference
    from the reference and its paired 95 % interval (``low``, ``high``) (:func:`course_lib.evaluation.
    paired_mean_ci`, whole patients resampled with ``groups``), and a verdict: "faithful"
    when deletion is lower *and* insertion higher than the reference's beyond the interval,
    "unfaithful" when both are beyond it the other way, else "inconclusive"; ``curves``
    holds the ``(N, steps + 1)`` curves by name and mode.
    """
    if reference not in maps:
        raise ValueError(
            f"reference {reference!r} is not one of the maps: {list(maps)}"
        )
    curves, areas = {}, {}
    for name, m in maps.items():
        for mode in MODES:
            curves[name, mode] = perturbation_curves(model, images, m, mode, steps)
            areas[name, mode] = curve_areas(curves[name, mode])
    rows = {}
    for name in maps:
        row, signs = {}, []
        for mode in MODES:
            row[f"{mode} area"] = areas[name, mode].mean()
            if name == reference:
                continue
            d = paired_mean_ci(areas[name, mode], areas[reference, mode], groups=groups)
            row[f"{mode} − {reference}"] = d.difference
            row[f"{mode} low"], row[f"{mode} high"] = d.low, d.high
            # deletion should fall (lower area), insertion rise (higher area)
            better, worse = (
                (d.high < 0, d.low > 0)
                if mode == "deletion"
                else (d.low > 0, d.high < 0)
            )
            signs.append(1 if better else -1 if worse else 0)
        if signs:
            row["verdict"] = (
                "faithful"
                if signs == [1, 1]
                else "unfaithful"
                if signs == [-1, -1]
                else "inconclusive"
            )
        rows[name] = row
    return pd.DataFrame(rows).T, curves
