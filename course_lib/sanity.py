"""Sanity checks for saliency maps: does the map change when the model does? (notebook ``11``)

Adebayo et al., *Sanity Checks for Saliency Maps*, NeurIPS 2018. **Cascading model-parameter
randomisation**: re-initialise the trained model's layers from the top (the classifier) down
to the input, one block at a time, and compare each map of the damaged model with the
trained model's map of the same image. A map that *explains the model* must drift away as
the layers it depends on lose what they learned; a map that stays the same describes the
image (edges, the centre, a bright blob) whatever the weights are. The similarity is measured
two ways, as the paper does: Spearman's rank correlation of the two maps, and the structural
similarity index (SSIM, :func:`skimage.metrics.structural_similarity`) of the maps scaled to
[0, 1].

:func:`attnvgg_blocks` names AttnVGG's blocks from the top; :func:`attnvgg_explanations`
computes the maps chapter 11 tests; :func:`map_similarity` compares two sets of maps;
:func:`cascading_randomization` runs the whole cascade.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from .gradcam import grad_cam

__all__ = [
    "attnvgg_blocks",
    "attnvgg_explanations",
    "map_similarity",
    "cascading_randomization",
]


def attnvgg_blocks(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """AttnVGG's blocks in the cascade's order, top first: the classifier, the two attention
    gates, then convolution stages 5 to 1."""
    stages = [
        (f"stage {i + 1}", [model.features[i]]) for i in range(len(model.features))
    ]
    return [
        ("classifier", [model.classifier]),
        ("attention gates", [model.attn1, model.attn2]),
        *reversed(stages),
    ]


def attnvgg_explanations(model: nn.Module, images: torch.Tensor) -> dict:
    """AttnVGG's two attention maps and Grad-CAM of the melanoma logit, ``{name: (N, h, w)}``
    under the names of :data:`course_lib.saliency.MAP_NAMES`."""
    model.eval()
    images = images.to(next(model.parameters()).device)
    with torch.no_grad():
        _, a1, a2 = model(images)
    return {
        "pool-3 attention": a1.float()[:, 0].cpu().numpy(),
        "pool-4 attention": a2.float()[:, 0].cpu().numpy(),
        "Grad-CAM": grad_cam(model, images, target="melanoma"),
    }


def _scaled(m: np.ndarray) -> np.ndarray:
    low, high = m.min(), m.max()
    return (m - low) / (high - low) if high > low else np.zeros_like(m)


def map_similarity(reference, other) -> pd.DataFrame:
    """Per image: Spearman's rank correlation and SSIM of ``other`` against ``reference``
    (two arrays of N maps of one size). Where the reference map is constant (Grad-CAM can
    find no positive evidence at all) there is nothing to compare: NaN. A constant map
    beside a varying one shares no ranking with it: correlation 0."""
    reference = np.asarray(reference, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if reference.shape != other.shape or reference.ndim != 3:
        raise ValueError(
            f"two (N, h, w) sets of maps of one shape, not {reference.shape} and "
            f"{other.shape}"
        )
    side = min(reference.shape[1:])
    window = min(
        7, side if side % 2 else side - 1
    )  # SSIM's window: odd, inside the map
    rows = []
    for a, b in zip(reference, other):
        if np.ptp(a) == 0:
            rows.append({"rank correlation": np.nan, "SSIM": np.nan})
            continue
        rho = (
            0.0 if np.ptp(b) == 0 else float(spearmanr(a.ravel(), b.ravel()).statistic)
        )
        ssim = structural_similarity(
            _scaled(a), _scaled(b), data_range=1.0, win_size=window
        )
        rows.append({"rank correlation": rho, "SSIM": float(ssim)})
    return pd.DataFrame(rows)


def _randomize(modules: list[nn.Module], seed: int) -> None:
    """Every layer in ``modules`` back to a fresh draw of its initialisation (BatchNorm: to
    weight 1, bias 0 and fresh running statistics)."""
    torch.manual_seed(seed)
    for block in modules:
        for m in block.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()


def cascading_randomization(
    model: nn.Module,
    images: torch.Tensor,
    explain: Callable[[nn.Module, torch.Tensor], dict],
    blocks: Callable[[nn.Module], list] = attnvgg_blocks,
    seed: int = 0,
) -> pd.DataFrame:
    """Similarity of each map to the trained model's as the blocks are re-initialised.

    ``explain(model, images)`` returns ``{method: (N, h, w) maps}``; ``blocks(model)``
    (default :func:`attnvgg_blocks`) lists its ``(name, modules)`` from the top. The model is copied,
    never changed. One row per step and method: ``randomised`` (``"none"`` for the trained
    model, then the name of the lowest block re-initialised so far), ``step``, ``method``
    ``images`` (how many were compared: those whose trained map is not constant) and the
    mean and standard error over them of ``rank correlation`` and ``SSIM``.
    """
    damaged = copy.deepcopy(model).eval()
    reference = explain(damaged, images)
    cascade = [("none", [])] + blocks(damaged)  # the copy's own modules
    rows = []
    for step, (name, modules) in enumerate(cascade):
        if step:  # this block too, on top of those above it
            _randomize(modules, seed + step)
        maps = explain(damaged, images) if step else reference
        for method, m in maps.items():
            similar = map_similarity(reference[method], m)
            similar = similar.dropna()
            row = {"step": step, "randomised": name, "method": method}
            row["images"] = len(similar)
            for column in ("rank correlation", "SSIM"):
                row[column] = similar[column].mean()
                row[f"{column} s.e."] = similar[column].sem()
            rows.append(row)
    return pd.DataFrame(rows)
