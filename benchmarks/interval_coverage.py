"""How often do the course's 95 % intervals cover the truth? (``course_lib.evaluation``)

    python benchmarks/interval_coverage.py --datasets 400 --results benchmarks/results

An interval is only as good as its coverage: a 95 % interval should contain the true value
in 95 % of data sets. This script draws data sets whose true AUCs are known and counts.

**The model.** Each image has a label (melanoma with probability ``--prevalence``) and two
scores, as two models would give: ``a = mu_a * y + z + e_a`` and ``b = mu_b * y + z + e_b``
with ``z, e_a, e_b`` standard normal (``z`` shared: the two models err on the same hard
images, which is why a comparison must be paired). Without clustering the images are
independent; with clustering they come in patients of ``--images-per-patient`` images of
one lesion (one label), that share a patient effect of variance ``--patient-variance``
(several photographs of one lesion look alike), in both scores, correlated 0.5 between
the models. A score is then normal with variance
``v = 2`` (independent) or ``2 + patient variance`` given the label, so the true AUC of
a is ``Phi(mu_a / sqrt(2 v))`` (binormal model; pairs of images of different patients),
the true difference is ``AUC_a - AUC_b``, and the true specificity at 95 % sensitivity
is ``Phi(mu_a / sqrt(v) - 1.645)``.

**What is counted** (each over ``--datasets`` data sets):

- ``auc_ci`` over images on independent data, and over patients on clustered data — the
  two uses the course makes — and, to show why the second exists, over images on
  clustered data (it pretends to more independent images than there are);
- ``compare_auc``: DeLong on independent data, the paired patient bootstrap on clustered
  data (and DeLong on clustered data, for the same reason);
- ``operating_point``'s specificity interval at 95 % sensitivity.

A coverage measured on N data sets has a standard error of about ``sqrt(0.95 * 0.05 / N)``
(1.1 points for N = 400): read 93-97 % as "as advertised". About 6 minutes for 400 data
sets on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from records import describe_machine, machine_line, save_record  # noqa: E402


def draw(rng, args, clustered: bool):
    """One data set: labels, two scores, patient ids."""
    n = args.images
    per = args.images_per_patient if clustered else 1
    patients = np.arange(n) // per
    # one label per patient (all of a patient's images are of their one lesion), so every
    # (melanoma, benign) pair is of two patients and the binormal truth below is exact
    y = (rng.random(n // per + 1) < args.prevalence).astype(int)[patients]
    shared = rng.normal(size=n)
    a = args.mu_a * y + shared + rng.normal(size=n)
    b = args.mu_b * y + shared + rng.normal(size=n)
    if clustered:  # patient effects, correlated 0.5 between the two models
        u, own = rng.normal(size=(2, n // per + 1))
        scale = np.sqrt(args.patient_variance)
        a += scale * u[patients]
        b += scale * (0.5 * u + np.sqrt(0.75) * own)[patients]
    return y, a, b, patients


def truth(args, clustered: bool) -> dict:
    v = 2.0 + (args.patient_variance if clustered else 0.0)
    auc_a, auc_b = (norm.cdf(mu / np.sqrt(2 * v)) for mu in (args.mu_a, args.mu_b))
    return {
        "auc": float(auc_a),
        "difference": float(auc_a - auc_b),
        "specificity": float(norm.cdf(args.mu_a / np.sqrt(v) - norm.ppf(0.95))),
    }


def covered(interval_low, interval_high, value) -> bool:
    return bool(interval_low <= value <= interval_high)


def one(rng, args, clustered: bool, true: dict) -> dict:
    from course_lib.evaluation import auc_ci, compare_auc, operating_point

    y, a, b, patients = draw(rng, args, clustered)
    seed = int(rng.integers(2**31))
    hits, widths = {}, {}

    def count(name, low, high, value):
        hits[name] = covered(low, high, value)
        widths[name] = high - low

    image = auc_ci(y, a, seed=seed, n_resamples=args.resamples)
    count("auc_ci over images", image.low, image.high, true["auc"])
    delong = compare_auc(y, a, b)
    count("compare_auc, DeLong", delong.low, delong.high, true["difference"])
    if clustered:
        grouped = auc_ci(y, a, groups=patients, seed=seed, n_resamples=args.resamples)
        count("auc_ci over patients", grouped.low, grouped.high, true["auc"])
        paired = compare_auc(
            y, a, b, groups=patients, seed=seed, n_resamples=args.resamples
        )
        count(
            "compare_auc, patient bootstrap",
            paired.low,
            paired.high,
            true["difference"],
        )
    point = operating_point(
        y,
        a,
        0.95,
        groups=patients if clustered else None,
        seed=seed,
        n_resamples=args.resamples,
    )
    count(
        "operating_point specificity",
        point.specificity.low,
        point.specificity.high,
        true["specificity"],
    )
    return {"hits": hits, "widths": widths}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=400)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--prevalence", type=float, default=0.2)
    parser.add_argument("--mu-a", type=float, default=1.7)
    parser.add_argument("--mu-b", type=float, default=1.3)
    parser.add_argument("--images-per-patient", type=int, default=6)
    parser.add_argument("--patient-variance", type=float, default=2.0)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    machine = describe_machine()
    record = {"machine": machine, "settings": vars(args) | {"results": None}}
    print(f"interval coverage, {machine_line(machine)}")
    print(
        f"{args.datasets} data sets of {args.images} images, prevalence {args.prevalence}, "
        f"95 % intervals, {args.resamples} bootstrap resamples"
    )
    started = time.perf_counter()
    for clustered in (False, True):
        true = truth(args, clustered)
        runs = [one(rng, args, clustered, true) for _ in range(args.datasets)]
        kind = (
            f"clustered: {args.images_per_patient} images per patient, patient variance "
            f"{args.patient_variance}"
            if clustered
            else "independent images"
        )
        print(
            f"\n{kind}; true AUC {true['auc']:.3f}, difference {true['difference']:+.3f}, "
            f"specificity at 95 % sensitivity {true['specificity']:.3f}"
        )
        rows = {}
        for name in runs[0]["hits"]:
            hits = np.array([r["hits"][name] for r in runs])
            width = float(np.mean([r["widths"][name] for r in runs]))
            rate = float(hits.mean())
            se = float(np.sqrt(rate * (1 - rate) / len(hits)))
            rows[name] = {"coverage": rate, "se": se, "mean_width": width}
            print(
                f"  {name:34s} coverage {100 * rate:5.1f} % (± {100 * se:.1f})  "
                f"mean width {width:.3f}"
            )
        record["clustered" if clustered else "independent"] = {
            "truth": true,
            "rows": rows,
        }
    record["seconds"] = time.perf_counter() - started
    print(f"\n{record['seconds']:.0f} s")
    save_record(args.results, "interval_coverage.json", record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
