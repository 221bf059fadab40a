"""Results with their uncertainty: intervals, paired comparisons, operating points and
calibration, for scores on the held-out test patients (notebook ``02_vgg16_baseline``;
chapters 09–13 use it for every verdict).

An AUC measured on a few hundred images is an estimate: another sample of patients would
give another number. Each function here says how far it could move, with a method a
reviewer of a medical paper expects, built on SciPy and scikit-learn:

- :func:`auc_ci` — a bootstrap interval of the ROC AUC (``scipy.stats.bootstrap``, BCa;
  Efron & Tibshirani, 1993). With ``groups`` (patient ids) it resamples **patients**, not
  images: the images of one patient are alike, and resampling them one by one pretends to
  more independent evidence than there is (the cluster bootstrap; Field & Welsh, 2007).
- :func:`compare_auc` — two models scored on the *same* images, compared **paired**:
  DeLong's test (DeLong, DeLong & Clarke-Pearson, 1988, with the midrank algorithm of Sun &
  Xu, 2014, as in R's ``pROC::roc.test``), or with ``groups`` a paired patient bootstrap.
- :func:`operating_point` — a screening test fixes the sensitivity (melanomas found) and
  asks what specificity (benign lesions cleared) is left; the threshold comes from
  scikit-learn's ``roc_curve``, the interval from the bootstrap (the threshold chosen anew
  in every resample).
- :func:`paired_mean_ci` — two measurements of the *same* images (or queries), e.g. a map's
  energy on the lesion against a random map's: the mean difference with a paired
  bootstrap interval, over patients with ``groups``.
- :func:`calibration` — the reliability curve (scikit-learn's ``calibration_curve``,
  equal-width bins) and the expected calibration error (Naeini et al., 2015; Guo et al.,
  2017): is a predicted 0.3 melanoma in 30 % of cases?

``benchmarks/interval_coverage.py`` simulates data sets with a known AUC and measures how
often these 95 % intervals cover it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "Interval",
    "AUCComparison",
    "OperatingPoint",
    "Calibration",
    "auc_ci",
    "compare_auc",
    "operating_point",
    "paired_mean_ci",
    "MeanDifference",
    "calibration",
]


@dataclass(frozen=True)
class Interval:
    """An estimate and its ``level`` confidence interval, found by ``method``."""

    estimate: float
    low: float
    high: float
    level: float
    method: str

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class AUCComparison:
    """``auc_a - auc_b`` on the same images, its interval and the two-sided p-value."""

    auc_a: float
    auc_b: float
    difference: float
    low: float
    high: float
    p_value: float
    level: float
    method: str

    @property
    def verdict(self) -> str:
        """ "better" or "worse" (A against B) when the interval excludes 0, else "inconclusive"."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "inconclusive"

    def __str__(self) -> str:
        return (
            f"{self.difference:+.3f} [{self.low:+.3f}, {self.high:+.3f}], "
            f"p = {self.p_value:.3g}: {self.verdict}"
        )


@dataclass(frozen=True)
class MeanDifference:
    """``mean_a - mean_b`` over the same items, its interval, and a verdict in words."""

    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    level: float
    method: str

    @property
    def verdict(self) -> str:
        """ "higher" or "lower" (A against B) when the interval excludes 0, else "inconclusive"."""
        if self.low > 0:
            return "higher"
        if self.high < 0:
            return "lower"
        return "inconclusive"

    def __str__(self) -> str:
        return f"{self.difference:+.3f} [{self.low:+.3f}, {self.high:+.3f}]: {self.verdict}"


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold that reaches ``target`` sensitivity with the highest specificity."""

    target: float
    threshold: float
    sensitivity: float
    specificity: Interval

    def __str__(self) -> str:
        spec = self.specificity
        return (
            f"threshold {self.threshold:.3g}: sensitivity {self.sensitivity:.1%}, "
            f"specificity {spec.estimate:.1%} [{spec.low:.1%}, {spec.high:.1%}]"
        )


@dataclass(frozen=True)
class Calibration:
    """A reliability curve over the non-empty bins, their image counts, and the ECE."""

    mean_predicted: np.ndarray
    fraction_positive: np.ndarray
    counts: np.ndarray
    ece: float


# --- checks -------------------------------------------------------------------------


def _targets_and_scores(targets, *score_arrays):
    """Targets as 0/1 integers and scores as floats, checked; raises ValueError."""
    targets = np.asarray(targets).ravel()
    if targets.size == 0:
        raise ValueError("targets is empty: there is nothing to evaluate")
    if not np.isin(targets, (0, 1)).all():
        raise ValueError("targets must be 0 (benign) or 1 (melanoma) only")
    targets = targets.astype(int)
    if len(np.unique(targets)) < 2:
        raise ValueError(
            f"targets hold one class only ({targets.size} images of class {targets[0]}): "
            "the AUC needs both classes"
        )
    checked = []
    for name, scores in score_arrays:
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if scores.shape != targets.shape:
            raise ValueError(
                f"{name} has {scores.size} values but targets has {targets.size}"
            )
        if not np.isfinite(scores).all():
            bad = int((~np.isfinite(scores)).sum())
            raise ValueError(f"{name} holds {bad} NaN or infinite value(s)")
        checked.append(scores)
    return targets, checked


def _group_index(groups, n: int) -> np.ndarray:
    """Each image's group as 0 ... P-1 (each image its own group when ``groups`` is None)."""
    if groups is None:
        return np.arange(n)
    groups = np.asarray(groups).ravel()
    if groups.size != n:
        raise ValueError(f"groups has {groups.size} values but targets has {n}")
    index = np.unique(groups, return_inverse=True)[1]
    if index.max() == 0:
        raise ValueError(
            "groups holds a single patient: resampling patients needs several"
        )
    return index


def _check_level(level: float, n_resamples: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level}")
    if int(n_resamples) != n_resamples or n_resamples < 100:
        raise ValueError(f"n_resamples must be an integer >= 100; got {n_resamples}")


# --- the AUC of weighted samples, many at once ------------------------------------------


def _per_score(scores, targets, weights):
    """The distinct scores (ascending) and, per row of ``weights`` (B, n), the weight of
    melanoma and of benign images at each of them (two arrays B x distinct)."""
    values, where = np.unique(scores, return_inverse=True)
    rows, n_values = weights.shape[0], len(values)
    slot = (np.arange(rows) * n_values)[:, None] + where[None, :]

    def counted(mask):
        total = np.bincount(
            slot[:, mask].ravel(),
            weights=weights[:, mask].ravel(),
            minlength=rows * n_values,
        )
        return total.reshape(rows, n_values)

    return values, counted(targets == 1), counted(targets == 0)


def _weighted_aucs(scores, targets, weights) -> np.ndarray:
    """The AUC of each row of ``weights`` (B, n): image i counted ``weights[b, i]`` times.

    The Mann-Whitney form: the share of (melanoma, benign) pairs ranked the right way, a tie
    counting one half. Sorting the distinct scores once serves every row.
    """
    _, positive, negative = _per_score(scores, targets, weights)
    below = np.cumsum(negative, axis=1) - negative
    pairs = positive.sum(1) * negative.sum(1)
    right = (positive * (below + 0.5 * negative)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, right / np.where(pairs > 0, pairs, 1), np.nan)


def _specificities_at(scores, targets, weights, target: float):
    """Per row of ``weights``: (threshold, sensitivity, specificity) of the highest
    threshold whose sensitivity reaches ``target`` (a score >= threshold is melanoma).

    The same point as the first one of scikit-learn's ``roc_curve`` to reach ``target``.
    """
    values, positive, negative = _per_score(scores, targets, weights)
    found = np.cumsum(positive[:, ::-1], axis=1)  # melanomas at or above each threshold
    false = np.cumsum(negative[:, ::-1], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = found / found[:, -1:]
        first = np.argmax(sensitivity >= target - 1e-12, axis=1)
        pick = np.arange(len(first))
        specificity = 1 - false[pick, first] / false[:, -1]
    return values[::-1][first], sensitivity[pick, first], specificity


def _resampled_weights(picked: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Image weights (B, n) from resampled group indices (B, m): how often each image's
    group was drawn."""
    picked = np.atleast_2d(picked)
    rows, n_groups = picked.shape[0], group.max() + 1
    slot = (np.arange(rows) * n_groups)[:, None] + picked
    counts = np.bincount(slot.ravel(), minlength=rows * n_groups)
    return counts.reshape(rows, n_groups)[:, group].astype(np.float64)


def _bootstrap(statistic, group, level, n_resamples, seed):
    """``scipy.stats.bootstrap`` (BCa) over the groups; ``statistic`` maps image weights
    (one row per resample) to one value per row."""

    def on_groups(picked, axis=-1):
        rows = picked.reshape(-1, picked.shape[-1])
        return statistic(_resampled_weights(rows, group)).reshape(picked.shape[:-1])

    with warnings.catch_warnings():  # a degenerate distribution is handled below
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap(
            (np.arange(group.max() + 1),),
            on_groups,
            n_resamples=n_resamples,
            confidence_level=level,
            method="BCa",
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    replicates = result.bootstrap_distribution
    if np.isfinite(replicates).all() and np.ptp(replicates) == 0:
        # every resample gives the same value (e.g. one model compared with itself)
        return float(replicates[0]), float(replicates[0]), 0.0, "BCa"
    low, high = result.confidence_interval
    if math.isfinite(low) and math.isfinite(high):
        return float(low), float(high), float(result.standard_error), "BCa"
    # BCa needs every resample (and its jackknife) defined; with few patients of a class
    # some resamples hold none, and their AUC does not exist. The percentile interval of
    # the resamples that hold both classes is then the fallback, when most do.
    finite = replicates[np.isfinite(replicates)]
    if finite.size < 0.9 * replicates.size:
        raise ValueError(
            "the bootstrap interval is undefined: too few images (or patients) of a class "
            f"for resampling ({replicates.size - finite.size} of {replicates.size} "
            "resamples lack one); evaluate on a larger held-out set"
        )
    alpha = (1 - level) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high), float(finite.std(ddof=1)), "percentile"


# --- the public functions ------------------------------------------------------------


def auc_ci(
    targets,
    scores,
    groups=None,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """The ROC AUC with a BCa bootstrap interval; with ``groups``, patients are resampled."""
    _check_level(level, n_resamples)
    targets, (scores,) = _targets_and_scores(targets, ("scores", scores))
    group = _group_index(groups, targets.size)

    def statistic(weights):
        return _weighted_aucs(scores, targets, weights)

    estimate = float(statistic(np.ones((1, targets.size)))[0])
    low, high, _, kind = _bootstrap(statistic, group, level, n_resamples, seed)
    unit = "patient" if groups is not None else "image"
    return Interval(estimate, low, high, level, f"{kind} bootstrap over {unit}s")


def _delong(targets, scores_a, scores_b):
    """The two AUCs and the variance of their difference (DeLong et al., 1988; Sun & Xu,
    2014): each image's placement among the other class, and their covariance."""
    positive, negative = targets == 1, targets == 0
    m, n = positive.sum(), negative.sum()
    aucs, v10, v01 = [], [], []
    for scores in (scores_a, scores_b):
        x, y = scores[positive], scores[negative]
        rank_all = stats.rankdata(np.concatenate([x, y]))
        rank_x, rank_y = stats.rankdata(x), stats.rankdata(y)
        # each melanoma's share of benign images below it, and each benign image's
        # share of melanomas above it
        v10.append((rank_all[:m] - rank_x) / n)
        v01.append(1 - (rank_all[m:] - rank_y) / m)
        aucs.append(float(v10[-1].mean()))
    s10, s01 = np.cov(np.array(v10)), np.cov(np.array(v01))
    contrast = np.array([1.0, -1.0])
    variance = contrast @ s10 @ contrast / m + contrast @ s01 @ contrast / n
    return aucs[0], aucs[1], float(variance)


def compare_auc(
    targets,
    scores_a,
    scores_b,
    groups=None,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> AUCComparison:
    """Model A against model B on the same images: ``auc_a - auc_b``, interval, p-value.

    Without ``groups``: DeLong's test (a normal interval from the paired variance). With
    ``groups``: a paired bootstrap over patients (BCa interval; the p-value from the
    normal approximation with the bootstrap's standard error).
    """
    _check_level(level, n_resamples)
    targets, (a, b) = _targets_and_scores(
        targets, ("scores_a", scores_a), ("scores_b", scores_b)
    )
    z = stats.norm.ppf(0.5 + level / 2)
    if groups is None:
        auc_a, auc_b, variance = _delong(targets, a, b)
        difference = auc_a - auc_b
        se = math.sqrt(max(variance, 0.0))
        low, high = difference - z * se, difference + z * se
        method = "DeLong's paired test"
    else:
        group = _group_index(groups, targets.size)

        def statistic(weights):
            return _weighted_aucs(a, targets, weights) - _weighted_aucs(
                b, targets, weights
            )

        auc_a, auc_b = (
            float(_weighted_aucs(s, targets, np.ones((1, targets.size)))[0])
            for s in (a, b)
        )
        difference = auc_a - auc_b
        low, high, se, kind = _bootstrap(statistic, group, level, n_resamples, seed)
        method = f"paired {kind} bootstrap over patients"
    if se > 0:
        p_value = float(2 * stats.norm.sf(abs(difference) / se))
    else:  # the same ranking twice: no difference, and no doubt about it
        p_value = 1.0 if difference == 0 else 0.0
    return AUCComparison(
        auc_a, auc_b, difference, float(low), float(high), p_value, level, method
    )


def operating_point(
    targets,
    scores,
    sensitivity: float = 0.95,
    groups=None,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> OperatingPoint:
    """The threshold that finds at least ``sensitivity`` of the melanomas, and the
    specificity left there, with a bootstrap interval (the threshold re-chosen in each
    resample, so the interval includes the threshold's own uncertainty).

    A score at or above ``threshold`` is called melanoma.
    """
    if not 0 < sensitivity <= 1:
        raise ValueError(f"sensitivity must be in (0, 1]; got {sensitivity}")
    _check_level(level, n_resamples)
    targets, (scores,) = _targets_and_scores(targets, ("scores", scores))
    group = _group_index(groups, targets.size)
    threshold, reached, specificity = (
        float(v[0])
        for v in _specificities_at(
            scores, targets, np.ones((1, targets.size)), sensitivity
        )
    )

    def statistic(weights):
        return _specificities_at(scores, targets, weights, sensitivity)[2]

    low, high, _, kind = _bootstrap(statistic, group, level, n_resamples, seed)
    unit = "patient" if groups is not None else "image"
    interval = Interval(specificity, low, high, level, f"{kind} bootstrap over {unit}s")
    return OperatingPoint(sensitivity, threshold, reached, interval)


def paired_mean_ci(
    values_a,
    values_b,
    groups=None,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> MeanDifference:
    """The mean of ``values_a - values_b`` over the same items, with a paired BCa bootstrap
    interval; with ``groups`` (the items' patients) whole patients are resampled.

    Items where either value is NaN (e.g. a saliency map without any signal) are left out.
    """
    _check_level(level, n_resamples)
    a = np.asarray(values_a, dtype=np.float64).ravel()
    b = np.asarray(values_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"values_a has {a.size} values but values_b has {b.size}")
    if np.isinf(a).any() or np.isinf(b).any():
        raise ValueError("the values hold infinite entries")
    if groups is not None and np.asarray(groups).size != a.size:
        raise ValueError(
            f"groups has {np.asarray(groups).size} values but values_a has {a.size}"
        )
    kept = ~(np.isnan(a) | np.isnan(b))
    if kept.sum() < 2:
        raise ValueError(
            f"{int(kept.sum())} item(s) with both values: too few to compare"
        )
    group = _group_index(
        None if groups is None else np.asarray(groups)[kept], kept.sum()
    )
    a, b = a[kept], b[kept]
    difference = a - b

    def statistic(weights):
        return weights @ difference / weights.sum(axis=1)

    low, high, _, kind = _bootstrap(statistic, group, level, n_resamples, seed)
    unit = "patient" if groups is not None else "item"
    return MeanDifference(
        float(a.mean()),
        float(b.mean()),
        float(difference.mean()),
        low,
        high,
        level,
        f"paired {kind} bootstrap over {unit}s",
    )


def calibration(targets, probabilities, n_bins: int = 10) -> Calibration:
    """The reliability curve in ``n_bins`` equal-width bins and the expected calibration
    error: the bins' gaps between mean prediction and observed rate, weighted by size."""
    if int(n_bins) != n_bins or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2; got {n_bins}")
    targets, (p,) = _targets_and_scores(targets, ("probabilities", probabilities))
    if p.min() < 0 or p.max() > 1:
        raise ValueError(
            "probabilities must lie in [0, 1] (apply the sigmoid to logits first)"
        )
    from sklearn.calibration import calibration_curve

    fraction, mean = calibration_curve(targets, p, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=n_bins)
    counts = counts[counts > 0]  # the bins calibration_curve reports
    ece = float(np.sum(counts / p.size * np.abs(fraction - mean)))
    return Calibration(mean, fraction, counts, ece)
