"""course_lib.evaluation against independent implementations: scikit-learn's AUC and ROC
curve, MLstatkit's DeLong test (a test-only dependency), and a published worked example.
How often the intervals cover the truth is measured by benchmarks/interval_coverage.py."""

import numpy as np
import pytest
from MLstatkit.delong import Delong_test
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from course_lib.evaluation import (
    _specificities_at,
    _weighted_aucs,
    auc_ci,
    calibration,
    compare_auc,
    operating_point,
    paired_mean_ci,
)


def scored(n=400, seed=0, ties=False, per_patient=1):
    """Labels, two correlated scores and patient ids."""
    rng = np.random.default_rng(seed)
    patients = np.arange(n) // per_patient
    # several images of one lesion: one label, and alike (a shared effect)
    y = (rng.random(n // per_patient + 1) < 0.25).astype(int)[patients]
    shared = rng.normal(size=n)
    if per_patient > 1:
        shared += 2 * rng.normal(size=n // per_patient + 1)[patients]
    a = 1.5 * y + shared + rng.normal(size=n)
    b = 1.0 * y + shared + rng.normal(size=n)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return y, a, b, patients


# The ratings of 109 CT images by a radiologist (Hanley & McNeil, 1982, Radiology 143:29,
# table 1): counts of normal and abnormal images at ratings 1 (definitely normal) ... 5.
NORMAL, ABNORMAL = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]


def hanley_mcneil():
    y = np.r_[np.zeros(sum(NORMAL)), np.ones(sum(ABNORMAL))].astype(int)
    ratings = np.r_[
        np.repeat(np.arange(1, 6), NORMAL), np.repeat(np.arange(1, 6), ABNORMAL)
    ]
    return y, ratings.astype(float)


@pytest.mark.parametrize("ties", [False, True])
def test_the_weighted_auc_is_scikit_learns(ties):
    y, a, _, _ = scored(ties=ties)
    weights = np.random.default_rng(1).integers(0, 4, size=(5, len(y))).astype(float)
    ours = _weighted_aucs(a, y, weights)
    for row, value in zip(weights, ours):
        assert value == pytest.approx(roc_auc_score(y, a, sample_weight=row), abs=1e-12)


def test_the_worked_example_of_hanley_and_mcneil():
    """Their AUC of the ratings is 0.893 (SE 0.032); the interval is SciPy's BCa bootstrap
    of scikit-learn's AUC, resample for resample, and near DeLong's (from MLstatkit)."""
    y, ratings = hanley_mcneil()
    interval = auc_ci(y, ratings, seed=0)
    assert interval.estimate == pytest.approx(0.893, abs=5e-4)

    def auc(picked, axis=-1):
        rows = np.atleast_2d(picked)
        values = [roc_auc_score(y[row], ratings[row]) for row in rows]
        return np.array(values).reshape(np.shape(picked)[:-1])

    plain = stats.bootstrap(
        (np.arange(len(y)),),
        auc,
        n_resamples=2000,
        method="BCa",
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert (interval.low, interval.high) == pytest.approx(tuple(plain), abs=1e-12)
    _, _, (delong_low, delong_high), _, _, _, _ = Delong_test(y, ratings, ratings)
    # BCa follows the skew of an AUC near 1: lower than DeLong's symmetric interval
    assert interval.low == pytest.approx(delong_low, abs=0.02)
    assert interval.high == pytest.approx(delong_high, abs=0.02)
    assert (interval.high - interval.low) / 3.92 == pytest.approx(0.032, abs=0.002)


@pytest.mark.parametrize("seed, ties", [(0, False), (1, True), (2, False)])
def test_delong_matches_mlstatkit(seed, ties):
    y, a, b, _ = scored(seed=seed, ties=ties)
    ours = compare_auc(y, a, b)
    z, p_value, _, _, auc_a, auc_b, info = Delong_test(y, b, a)  # its z is (A - B) / se
    assert info["method"] == "delong"
    assert ours.auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert (ours.auc_a, ours.auc_b) == pytest.approx((auc_b, auc_a), abs=1e-12)
    assert ours.p_value == pytest.approx(p_value, rel=1e-9)
    se = ours.difference / z
    assert ours.high - ours.low == pytest.approx(2 * 1.959964 * se, rel=1e-5)


def test_the_interval_is_reproducible_and_holds_the_estimate():
    y, a, _, patients = scored()
    first, again = auc_ci(y, a, seed=3), auc_ci(y, a, seed=3)
    assert first == again
    assert first.low < first.estimate < first.high
    assert first.estimate == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    # one image per patient: resampling patients is resampling images
    grouped = auc_ci(y, a, groups=patients, seed=3)
    assert (grouped.low, grouped.high) == (first.low, first.high)


def test_resampling_patients_widens_the_interval_of_clustered_images():
    """Six alike images of one lesion are less evidence than six patients."""
    y, a, b, patients = scored(n=600, per_patient=6)
    over_images = auc_ci(y, a)
    over_patients = auc_ci(y, a, groups=patients)
    assert over_patients.estimate == over_images.estimate
    width = over_patients.high - over_patients.low
    assert width > 1.5 * (over_images.high - over_images.low)
    assert "patient" in over_patients.method


def test_the_paired_bootstrap_comparison():
    y, a, b, patients = scored(n=600, per_patient=3)
    paired = compare_auc(y, a, b, groups=patients)
    assert paired.difference == pytest.approx(
        roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12
    )
    assert paired.low < paired.difference < paired.high
    assert paired.verdict == ("better" if paired.low > 0 else "inconclusive")
    same = compare_auc(y, a, a, groups=patients)
    assert (same.difference, same.p_value, same.verdict) == (0.0, 1.0, "inconclusive")
    assert compare_auc(y, b, a).verdict in ("worse", "inconclusive")
    assert compare_auc(y, 2 * y + 0.01 * a, a).verdict == "better"
    assert compare_auc(y, a, 2 * y + 0.01 * a).verdict == "worse"


@pytest.mark.parametrize("target", [0.5, 0.8, 0.95, 1.0])
def test_the_operating_point_is_the_first_roc_point_reaching_the_sensitivity(target):
    y, a, _, _ = scored(ties=True)
    weights = np.random.default_rng(2).integers(0, 3, size=(4, len(y))).astype(float)
    thresholds, sensitivities, specificities = _specificities_at(a, y, weights, target)
    for row, t, se, sp in zip(weights, thresholds, sensitivities, specificities):
        fpr, tpr, cut = roc_curve(y, a, sample_weight=row, drop_intermediate=False)
        first = int(np.argmax(tpr >= target - 1e-12))
        assert (t, se, sp) == pytest.approx((cut[first], tpr[first], 1 - fpr[first]))
    point = operating_point(y, a, target)
    called = a >= point.threshold
    assert called[y == 1].mean() == pytest.approx(point.sensitivity)
    assert point.sensitivity >= target
    assert (~called[y == 0]).mean() == pytest.approx(point.specificity.estimate)
    assert point.specificity.low <= point.specificity.estimate <= point.specificity.high


def test_calibration_against_a_hand_count():
    rng = np.random.default_rng(0)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(int)  # calibrated by construction
    curve = calibration(y, p, n_bins=10)
    assert curve.counts.sum() == 5000 and curve.ece < 0.03
    gaps = [
        abs(y[(p >= lo) & (p < lo + 0.1)].mean() - p[(p >= lo) & (p < lo + 0.1)].mean())
        * ((p >= lo) & (p < lo + 0.1)).mean()
        for lo in np.arange(10) / 10
    ]
    assert curve.ece == pytest.approx(sum(gaps), abs=1e-12)
    overconfident = calibration(y, np.clip(2 * p - 0.5, 0, 1))
    assert overconfident.ece > 0.1


Y = np.array([0, 1, 0, 1, 0, 1])
S = np.array([0.1, 0.9, 0.3, 0.6, 0.2, 0.4])


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: auc_ci(np.zeros(6), S), "one class only"),
        (lambda: auc_ci(Y, np.r_[S[:5], np.nan]), "1 NaN or infinite"),
        (lambda: compare_auc(Y, S, np.r_[S[:5], np.inf]), "scores_b holds 1 NaN"),
        (lambda: auc_ci(Y, S[:5]), "scores has 5 values but targets has 6"),
        (lambda: auc_ci(Y, S, groups=np.zeros(6)), "a single patient"),
        (lambda: auc_ci(Y, S, groups=np.arange(5)), "groups has 5 values"),
        (lambda: auc_ci(Y, S, level=0), "level must be in (0, 1)"),
        (lambda: compare_auc(Y, S, S, level=95), "level must be in (0, 1)"),
        (lambda: auc_ci(np.r_[Y[:5], 2], S), "0 (benign) or 1 (melanoma)"),
        (lambda: auc_ci([], []), "empty"),
        (lambda: auc_ci(Y, S, n_resamples=10), "n_resamples must be an integer >= 100"),
        (lambda: operating_point(Y, S, sensitivity=0), "sensitivity must be in (0, 1]"),
        (lambda: calibration(Y, S + 0.5), "must lie in [0, 1]"),
        (lambda: calibration(Y, S, n_bins=1), "n_bins must be an integer >= 2"),
    ],
)
def test_bad_input_is_refused_by_name(call, words):
    with pytest.raises(ValueError) as err:
        call()
    assert words in str(err.value)


def test_too_few_of_a_class_to_resample_is_a_clear_error():
    y = np.r_[np.zeros(50), 1].astype(int)
    with pytest.raises(ValueError, match="too few images"):
        auc_ci(y, np.r_[np.linspace(0, 1, 50), 0.5])


def test_a_few_resamples_without_a_class_fall_back_to_the_percentile_interval():
    """Few melanoma patients: some patient resamples hold none, and BCa is undefined."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 3)
    y = (groups < 6).astype(int)  # 6 of 40 patients have melanoma
    scores = y + rng.normal(0, 0.8, y.size)
    interval = auc_ci(y, scores, groups=groups, n_resamples=2000)
    assert interval.method == "percentile bootstrap over patients"
    assert interval.low < interval.estimate < interval.high <= 1
    # the percentile interval of the resamples that hold both classes, reproduced by hand
    kept = []
    draw = np.random.default_rng(1)
    for _ in range(2000):
        picked = draw.integers(0, 40, 40)
        weights = np.bincount(picked, minlength=40)[groups]
        if (weights * y).sum() and (weights * (1 - y)).sum():
            kept.append(roc_auc_score(y, scores, sample_weight=weights))
    low, high = np.quantile(kept, [0.025, 0.975])
    assert abs(interval.low - low) < 0.03 and abs(interval.high - high) < 0.03


def test_the_paired_mean_difference_is_scipys_bootstrap_of_the_differences():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.3, 0.1, 150), rng.normal(0.25, 0.1, 150)
    result = paired_mean_ci(a, b, n_resamples=2000, seed=7)
    direct = stats.bootstrap(
        (a - b,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(7)
    ).confidence_interval
    assert result.difference == pytest.approx((a - b).mean())
    assert result.low == pytest.approx(direct.low, abs=1e-9)
    assert result.high == pytest.approx(direct.high, abs=1e-9)
    assert result.verdict == "higher" and "higher" in str(result)
    # clustered items: resampling the clusters gives the honest, wider interval
    groups = np.repeat(np.arange(15), 10)
    shared = np.repeat(rng.normal(0, 0.1, 15), 10)
    one_by_one = paired_mean_ci(a + shared, b, n_resamples=2000)
    by_group = paired_mean_ci(a + shared, b, groups=groups, n_resamples=2000)
    assert by_group.high - by_group.low > 1.5 * (one_by_one.high - one_by_one.low)
    # NaN items are left out; bad input is named
    with_gap = paired_mean_ci(np.r_[a, np.nan], np.r_[b, 0.0])
    assert with_gap.difference == pytest.approx(result.difference)
    with pytest.raises(ValueError, match="values_a has 150 values but values_b has 3"):
        paired_mean_ci(a, b[:3])
    with pytest.raises(ValueError, match="groups has 2 values"):
        paired_mean_ci(a, b, groups=[1, 2])
