"""Classification metrics over a whole validation set (introduced in notebook ``02_vgg16_baseline``).

Melanoma screening is an imbalanced problem, so accuracy alone misleads: a model that calls
every lesion benign is 90 % "accurate" on data with 10 % melanoma. The course reports the
ROC AUC (threshold-free), sensitivity (melanomas found), specificity (benign lesions
cleared) and balanced accuracy (their mean). All come from scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

__all__ = ["classification_metrics"]


def classification_metrics(targets, scores, threshold: float = 0.5) -> dict[str, float]:
    """AUC, accuracy, sensitivity, specificity and balanced accuracy.

    ``scores`` are probabilities: shape ``(N,)`` for a binary task (probability of class 1,
    thresholded at ``threshold``) or ``(N, K)`` for K classes (arg-max; AUC one-vs-rest,
    sensitivity and specificity macro-averaged). The AUC is NaN when only one class is present.
    """
    targets = np.asarray(targets).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64)
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
        auc = roc_auc_score(targets, scores, multi_class="ovr", average="macro", labels=labels)
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
        "balanced_accuracy": float(balanced_accuracy_score(targets, predicted)) if len(present) > 1 else math.nan,
    }
