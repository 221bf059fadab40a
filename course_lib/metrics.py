"""Metrics: classification over a validation set (notebook ``02_vgg16_baseline``) and the
localisation of saliency maps against lesion masks (notebook ``11_seeing_attention``).

**Classification.** Melanoma screening is an imbalanced problem, so accuracy alone misleads:
a model that calls every lesion benign is 90 % "accurate" on data with 10 % melanoma. The
course reports the ROC AUC (threshold-free), sensitivity (melanomas found), specificity
(benign lesions cleared) and balanced accuracy (their mean). All come from scikit-learn.

**Localisation.** Does a map (an attention map, a Grad-CAM) point at the lesion? Three
measures, each per image, batched, for maps of any size (a map is upsampled bilinearly to
its mask's size first):

- :func:`pointing_game` — is the map's peak inside the mask (Zhang et al., 2016)?
- :func:`energy_in_mask` — the share of the map's non-negative mass inside the mask;
- :func:`binarized_jaccard` — min-max normalise, threshold, Jaccard index with the mask
  (the measure of the AttnMel project, Yan et al., 2019).

A map spread evenly over the image scores the mask's area fraction on the first two, which
is what a random guess scores: compare every map with that baseline.

**Conventions** (each tested; where others differ, said here):

- a probability of *exactly* 0.5 counts as melanoma (``>=``): a tie is referred for a second
  look, as a screening tool should. The ISIC challenge's scorer counts it as benign (``>``);
  the two differ only for scores of exactly 0.5 (a logit of exactly 0);
- with one class only in the targets, the AUC and the balanced accuracy are NaN, and so is
  the rate of the absent class (specificity without benign images, sensitivity without
  melanomas); the rate of the present class is computed;
- the pointing game counts a peak at a distance of *exactly* ``tolerance`` pixels from the
  mask as a hit (``<=``); TorchRay's implementation requires a distance below it (``<``);
- ties at the map's peak score the share of tied pixels that hit (random tie-breaking, in
  expectation).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

from .data.errors import listed

__all__ = [
    "classification_metrics",
    "predicted_class",
    "pointing_game",
    "energy_in_mask",
    "binarized_jaccard",
]

#: A probability at least this high is called melanoma (see the conventions above).
THRESHOLD = 0.5


def predicted_class(logits: torch.Tensor) -> torch.Tensor:
    """1 (melanoma) where a binary model's logit is >= 0, i.e. its probability >= 0.5, else 0.

    Accepts ``(N,)`` or ``(N, 1)`` logits; returns ``(N,)`` integers.
    """
    return (logits.detach().float().reshape(len(logits), -1)[:, 0] >= 0).long()


def classification_metrics(
    targets, scores, threshold: float = THRESHOLD
) -> dict[str, float]:
    """AUC, accuracy, sensitivity, specificity and balanced accuracy.

    ``scores`` are probabilities: shape ``(N,)`` for a binary task (probability of class 1,
    thresholded at ``threshold``) or ``(N, K)`` for K classes (arg-max; AUC one-vs-rest,
    sensitivity and specificity macro-averaged). The AUC is NaN when only one class is present.
    """
    targets = np.asarray(targets).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 2 and scores.shape[1] == 2:  # two outputs for a binary task
        scores = scores[:, 1]  # the probability of class 1, as for one logit
    if scores.ndim == 1:
        predicted = (scores >= threshold).astype(int)
        labels = [0, 1]
    else:
        predicted = scores.argmax(axis=1)
        labels = list(range(scores.shape[1]))
    present = np.unique(targets)
    if len(present) < 2:
        auc = math.nan
    elif scores.ndim == 1:
        auc = roc_auc_score(targets, scores)
    else:
        auc = roc_auc_score(
            targets, scores, multi_class="ovr", average="macro", labels=labels
        )
    cm = confusion_matrix(targets, predicted, labels=labels)
    tp = np.diag(cm).astype(float)
    fn = cm.sum(axis=1) - tp
    fp = cm.sum(axis=0) - tp
    tn = cm.sum() - tp - fn - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / (tp + fn)
        spec = tn / (tn + fp)
    if scores.ndim == 1:
        sensitivity, specificity = recall[1], spec[1]
    else:
        sensitivity, specificity = np.nanmean(recall), np.nanmean(spec)
    return {
        "auc": float(auc),
        "accuracy": float((predicted == targets).mean()),
        "sensitivity": float(sensitivity),
        "specificity": float(specificity),
        "balanced_accuracy": float(balanced_accuracy_score(targets, predicted))
        if len(present) > 1
        else math.nan,
    }


# ------------------------------------------------------------------ localisation of saliency maps


def _maps_and_masks(saliency, mask) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(N, H, W)`` float maps at the masks' size and ``(N, H, W)`` boolean masks.

    Accepts arrays or tensors shaped ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)``; a mask is
    inside wherever it is non-zero (bool, {0, 1} or {0, 255} all work). Returns whether the
    input was a single map, so that callers can return a number rather than an array.
    """

    def batch(x, what):
        if x.dim() == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.dim() not in (2, 3):
            raise ValueError(
                f"{what} must be shaped (H, W), (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}"
            )
        return x.reshape(-1, *x.shape[-2:])

    saliency, mask = (
        (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)))
        .detach()
        .cpu()
        for x in (saliency, mask)
    )
    single = saliency.dim() == 2
    maps, masks = batch(saliency, "saliency").float(), batch(mask, "mask") > 0
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} saliency map(s) but {len(masks)} mask(s)")
    empty = torch.nonzero(~masks.flatten(1).any(dim=1)).flatten().tolist()
    if empty:
        raise ValueError(
            f"mask(s) {listed(empty)} are empty: localisation is undefined without a lesion "
            "(leave such images out, e.g. images without a lesion mask)"
        )
    if maps.shape[-2:] != masks.shape[-2:]:
        maps = F.interpolate(
            maps[:, None], size=masks.shape[-2:], mode="bilinear", align_corners=False
        )[:, 0]
    return maps, masks, single


def _result(values: torch.Tensor, single: bool):
    values = values.double().numpy()
    return float(values[0]) if single else values


def _dilate(masks: torch.Tensor, radius: float) -> torch.Tensor:
    """Grow boolean masks by ``radius`` pixels (a disk: Euclidean distance <= radius)."""
    r = int(math.floor(radius))
    offsets = torch.arange(-r, r + 1, dtype=torch.float32)
    disk = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).float()
    grown = F.conv2d(masks[:, None].float(), disk[None, None], padding=r)[:, 0]
    return grown > 0


def pointing_game(saliency, mask, tolerance: float = 0):
    """1 when the map's peak falls inside the mask (or within ``tolerance`` pixels of it), else 0.

    When several pixels share the maximum, the answer is the share of them that hit — the
    expected score if the tie were broken at random. A constant map therefore scores the
    (grown) mask's area fraction, like a random guess. Returns a float for one ``(H, W)`` map,
    else an array of shape ``(N,)``.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    maps, masks, single = _maps_and_masks(saliency, mask)
    if tolerance > 0:
        masks = _dilate(masks, tolerance)
    peaks = maps == maps.flatten(1).amax(dim=1)[:, None, None]
    hits = (peaks & masks).flatten(1).sum(dim=1) / peaks.flatten(1).sum(dim=1)
    return _result(hits, single)


def energy_in_mask(saliency, mask):
    """The share of the map's non-negative mass that lies inside the mask, in [0, 1].

    Negative values are clipped to 0 first (Grad-CAM and attention maps are non-negative
    anyway). A map without positive mass has no share to measure: ``ValueError``.
    """
    maps, masks, single = _maps_and_masks(saliency, mask)
    mass = maps.clamp(min=0).flatten(1)
    total = mass.sum(dim=1)
    empty = torch.nonzero(total <= 0).flatten().tolist()
    if empty:
        raise ValueError(
            f"saliency map(s) {listed(empty)} have no positive mass: energy_in_mask is undefined"
        )
    return _result((mass * masks.flatten(1)).sum(dim=1) / total, single)


def binarized_jaccard(saliency, mask, threshold: float = 0.5):
    """Jaccard index (intersection over union) of the binarised map and the mask, in [0, 1].

    The map is min-max normalised to [0, 1] and kept where it is ``>= threshold``. A constant
    map highlights nothing (its binarised map is empty) and scores 0.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    maps, masks, single = _maps_and_masks(saliency, mask)
    flat = maps.flatten(1)
    low, high = flat.amin(dim=1, keepdim=True), flat.amax(dim=1, keepdim=True)
    spread = high - low
    normalised = torch.where(
        spread > 0, (flat - low) / spread.clamp(min=torch.finfo(flat.dtype).tiny), 0.0
    )
    binary = (normalised >= threshold) & (spread > 0)
    inside = masks.flatten(1)
    intersection = (binary & inside).sum(dim=1)
    union = (binary | inside).sum(dim=1)  # > 0: masks are never empty
    return _result(intersection / union, single)
