# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Every module on the same footing
#
# **What you will learn**
#
# - how to compare architectural changes fairly: one backbone, one data split, one training
#   budget, several seeds;
# - what each attention module costs — parameters, FLOPs, CPU latency — measured side by side;
# - what each buys in test AUC on the lesion task, and how to tell a real difference from
#   noise: a paired comparison on the same test images (DeLong's idea, bootstrapped over
#   patients), next to the seed-to-seed spread.
#
# **Expected run time** (2 cores of an Intel(R) Xeon(R) Processor with native bf16, in float32; {doc}`../book/performance`): `smoke` about 15 s · `cpu` about 3 min · `gpu` not measured yet.
# Six modules, two seeds each. Finished runs are checkpointed under `runs/`, so an
# interrupted execution resumes where it stopped.
#
# **Launch:** [open in Colab](https://colab.research.google.com/github/attention-course/attention-image-classification/blob/main/notebooks/09_module_comparison.ipynb)

# %% tags=["course-setup", "hide-input"]
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = "https://github.com/attention-course/attention-image-classification"
if importlib.util.find_spec("course_lib") is None:  # Colab, Gradient: install it
    if not any(k.startswith(("COLAB_", "PAPERSPACE_")) for k in os.environ):
        raise ModuleNotFoundError("course_lib is missing: run `make book` first")
    here = [Path.cwd(), *Path.cwd().parents]  # Gradient starts in a clone: that one
    clone = [str(p) for p in here if (p / "course_lib").is_dir()]
    source = clone[0] if clone else f"git+{os.environ.get('COURSE_REPO_URL', REPO)}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
    importlib.invalidate_caches()

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd

import course_lib
from course_lib.bench import cost_table
from course_lib.data import (
    ensure_synthetic_lesions,
    load_melanoma,
    make_loaders,
    split_by_patient,
)
from course_lib.evaluation import compare_auc
from course_lib.models import COMPARED_MODELS, build_model
from course_lib.notebook import glue
from course_lib.recipes import eval_loader
from course_lib.runspec import ModelSpec, TrainConfig
from course_lib.train import evaluate, train_run

profile, device = course_lib.setup_notebook()  # seeded with 0, figure style set
# label -> command-line name, shared with benchmarks/module_cost.py
MODELS = COMPARED_MODELS
# twelve trainings (six models, two seeds) must fit the profile's budget: in the cpu
# profile at
# half the width and 2 epochs each, about 3 minutes on 2 CPU cores (see CONTRIBUTING.md)
WIDTH = {"cpu": profile.width / 2}.get(profile.name, profile.width)
EPOCHS = {"cpu": 2}.get(profile.name, max(1, profile.epochs // 2))
SEEDS = profile.seeds
print(
    f"profile {profile.name}: {profile.image_size} px, width {WIDTH}, {EPOCHS} epochs, "
    f"seeds {SEEDS}, {device}"
)

# %% [markdown]
# ## 1. The rules of the comparison
#
# - **Same backbone:** the GAP-head VGG16 of chapter 02, at one width for all (in the `cpu`
#   profile half of chapter 02's, 1/8, so that twelve trainings fit a few minutes); each variant
#   changes one thing (an attention module at the end of stages, or the pooling head).
# - **Same data:** the synthetic lesions of chapters 01–02, split by patient once.
# - **Same budget:** the same epochs, optimiser (AdamW, learning rate 10⁻³, cosine schedule),
#   batch size and augmentation for every model.
# - **Same seeds, several of them:** a difference smaller than the spread between seeds of
#   one model is not evidence of anything.
# - **Same test images, paired:** every model is scored on chapter 01's test patients, which
#   chose nothing, after its last epoch (not the best epoch's: choosing on the data you
#   report flatters every model). Two models scored on the *same* images share most of
#   their luck — an easy test set lifts both — so their *difference* is far less noisy than
#   either AUC, and `compare_auc` measures exactly that difference with an interval.
#
# ## 2. What each module costs
#
# Parameters and FLOPs (from `FlopCounterMode`, at the profile's image size) are exact.
# Latency is measured on the CPU for a batch of 8 by `torch.utils.benchmark`, in three
# interleaved rounds (every model once per round, median kept) with
# `course_lib.bench.cost_table`; on a shared machine compare the ratios, not the
# milliseconds.

# %%
costs = cost_table(
    {
        label: build_model(name, num_classes=1, width=WIDTH)
        for label, name in MODELS.items()
    },
    profile.image_size,
    batch_size=8,
    rounds=3,
    baseline="baseline (GAP)",
)
costs = costs.rename(columns={"ms / batch of 8": "CPU ms / batch of 8"})
assert costs.loc["triplet", "extra parameters"] == 1500
costs.round(2)

# %% [markdown]
# ## 3. Training every model
#
# Each (model, seed) run is a `RunSpec` (chapter 02): `train_run` trains it from scratch with
# `fit` into the folder its fingerprint names under `runs/`, or reads back a finished run.

# %%
frame = load_melanoma(
    ensure_synthetic_lesions(profile.n_images, profile.image_size, seed=0)
)
train_frame, val_frame, test_frame = split_by_patient(frame, 0.2, 0.2, seed=0)
train_loader, val_loader = make_loaders(
    train_frame,
    val_frame,
    profile.image_size,
    profile.batch_size,
    num_workers=profile.num_workers,
    device=device,
)
test_loader = eval_loader(profile, test_frame, device=device)
patients = test_frame.patient_id.to_numpy()
print(
    f"{len(train_frame)} training, {len(val_frame)} validation and "
    f"{len(test_frame)} test "
    "images, split by patient"
)

runs, scores = [], {}
for seed in SEEDS:
    config = TrainConfig.for_profile(profile, device, epochs=EPOCHS, seed=seed)
    for label, name in MODELS.items():
        started = time.perf_counter()
        model, history = train_run(
            ModelSpec(name, {"width": WIDTH}),
            train_loader,
            val_loader,
            config,
            tag="09-comparison",
            verbose=False,
        )
        test = evaluate(model, test_loader, device, return_predictions=True)
        scores[label, seed] = test["scores"]
        runs.append(
            {
                "model": label,
                "seed": seed,
                "val_auc": history.val_auc.iloc[-1],
                "test_auc": test["auc"],
                "train_seconds": history.seconds.sum(),
            }
        )
        print(
            f"seed {seed}  {label:15s} test AUC {test['auc']:.3f}  "
            f"({time.perf_counter() - started:.0f} s)"
        )
targets = test["targets"]  # the same images, in the same order, for every model
runs = pd.DataFrame(runs)
assert runs.test_auc.between(0, 1).all()

# %% [markdown]
# ## 4. One table

# %%
auc = runs.groupby("model", sort=False).test_auc
table = costs[
    ["parameters", "extra parameters", "MFLOPs / image", "CPU ms / batch of 8"]
].copy()
table["AUC mean"] = auc.mean()
table["AUC spread (max − min)"] = auc.max() - auc.min()
table["AUC vs baseline"] = table["AUC mean"] - table.loc["baseline (GAP)", "AUC mean"]
table["seeds"] = auc.count()
assert len(table) == 6 and (table["seeds"] == len(SEEDS)).all()
table.round(4)

# %% [markdown]
# ## 5. Signal or noise?
#
# Two sources of variation stand between a difference in the table and a conclusion:
#
# - **the test images**: another draw of patients would give other AUCs. For each seed,
#   `compare_auc(targets, module, baseline, groups=patients)` redraws the test *patients*
#   2,000 times, recomputes both models' AUCs on each redraw, and gives the 95 % interval
#   of their difference: "better" or "worse" when it excludes zero, "inconclusive" when not;
# - **the training seed**: another initialisation and batch order give another model. A
#   module is called better (or worse) only when it is so **for every seed**.

# %%
comparisons = []
for label in table.index.drop("baseline (GAP)"):
    for seed in SEEDS:
        result = compare_auc(
            targets,
            scores[label, seed],
            scores["baseline (GAP)", seed],
            groups=patients,
        )
        comparisons.append(
            {
                "model": label,
                "seed": seed,
                "difference": result.difference,
                "low": result.low,
                "high": result.high,
                "verdict": result.verdict,
            }
        )
comparisons = pd.DataFrame(comparisons)


def overall(verdicts):
    """ "better"/"worse" when every seed says so, else "inconclusive"."""
    return verdicts.iloc[0] if verdicts.nunique() == 1 else "inconclusive"


verdicts = comparisons.groupby("model", sort=False).verdict.agg(overall)
table["verdict vs baseline"] = verdicts.reindex(table.index).fillna("—")
half_width = ((comparisons.high - comparisons.low) / 2).median()
assert comparisons.low.le(comparisons.difference).all()
assert comparisons.difference.le(comparisons.high).all()
assert set(verdicts) <= {"better", "worse", "inconclusive"}
comparisons.round(3)

# %% [markdown]
# **Can this budget resolve a difference?** The width of those intervals is set by the
# number of test images, not by the models: an interval's half-width shrinks as
# 1/√(images). The cell below turns the run's own numbers into the size of test set that
# would be needed to call the largest difference the table shows.

# %%
largest = comparisons.groupby("model").difference.mean().abs().max()
needed = len(test_frame) * (half_width / max(largest, 1e-3)) ** 2
conclusive = sorted(verdicts[verdicts != "inconclusive"].index)
glue("ch09_half_width", half_width, ".3f")
glue("ch09_largest", largest, ".3f")
glue("ch09_needed", needed, ",.0f")
glue("ch09_n_test", len(test_frame))
glue("ch09_conclusive", ", ".join(conclusive) if conclusive else "none")
print(
    f"median half-width of a paired 95 % interval: {half_width:.3f} AUC on "
    f"{len(test_frame)} test images; largest mean difference from the baseline "
    f"{largest:.3f}; to resolve it, about {needed:,.0f} test images"
)
print("conclusive for every seed:", ", ".join(conclusive) if conclusive else "none")
for label, verdict in verdicts.items():
    print(f"{label:15s} {verdict}")

# %%
fig, axes = plt.subplots(2, 1, figsize=(9, 7.5))
order = list(table.index)
for i, label in enumerate(order):
    values = runs[runs.model == label].test_auc
    axes[0].scatter([i] * len(values), values, color="tab:gray", zorder=3)
    axes[0].errorbar(
        i,
        values.mean(),
        yerr=[[values.mean() - values.min()], [values.max() - values.mean()]],
        fmt="o",
        color="tab:blue",
        capsize=4,
    )
axes[0].axhline(table.loc["baseline (GAP)", "AUC mean"], color="tab:blue", ls=":", lw=1)
axes[0].set_xticks(range(len(order)), order)
axes[0].set(
    ylabel="test AUC\n(last epoch)",
    title="AUC per seed (grey), mean and range (blue)",
)
# cost on a log axis (triplet is several times the baseline); labels to the right of
# each
# point, nudged apart vertically where two points sit at almost the same AUC
axes[1].scatter(table["CPU ms / batch of 8"], table["AUC mean"], color="tab:blue")
axes[1].set_xscale("log")
placed: list[float] = []
span = max(table["AUC mean"].max() - table["AUC mean"].min(), 1e-3)
for label, row in table.sort_values("AUC mean").iterrows():
    y = row["AUC mean"]
    while any(abs(y - other) < 0.07 * span for other in placed):
        y += 0.07 * span
    placed.append(y)
    axes[1].annotate(
        label,
        (row["CPU ms / batch of 8"], row["AUC mean"]),
        xytext=(row["CPU ms / batch of 8"] * 1.04, y),
        va="center",
        arrowprops=dict(arrowstyle="-", color="0.6", lw=0.8),
    )
axes[1].margins(x=0.25, y=0.2)
axes[1].set(
    xlabel="CPU latency for a batch of 8 (ms, log scale)",
    ylabel="mean test AUC",
    title="what it costs, what it buys",
)
fig.tight_layout()

# %% [markdown]
# ## 6. Reading the result
#
# The verdicts above are this run's; the notebook hard-codes no winner. On
# {glue:text}`ch09_n_test` test images a paired 95 % interval is about
# ±{glue:text}`ch09_half_width` AUC wide, and the largest mean difference from the baseline
# is {glue:text}`ch09_largest`. Modules better or worse for every seed:
# {glue:text}`ch09_conclusive`. Resolving a difference of that size would take about
# {glue:text}`ch09_needed` test images — this budget, chosen so that twelve trainings fit
# a few minutes of a laptop, can show how to compare but cannot settle which module helps
# on this task. That is the honest answer, and the one a reader should expect from most
# small comparisons in papers too. A few things hold whatever the run:
#
# - the channel and spatial gates (SE, CBAM, triplet) add little computation; their
#   latency overhead comes from extra memory passes over the feature maps, not from FLOPs;
# - self-attention at stage 4 adds more parameters than every other module together at
#   this width, and its cost grows with the square of the map's area;
# - claims such as "CBAM improves accuracy" need an interval that excludes zero, for every
#   seed, on images that chose nothing — more test patients, more seeds, and ideally the
#   real images.
#
# ## Summary
#
# - A fair comparison fixes the backbone, data, split, budget and seeds, and reports the
#   spread across seeds next to every mean.
# - Costs: SE and CBAM add `~2·C²/r` parameters per stage, triplet attention 300 per stage,
#   dual pooling C weights in the classifier, self-attention `~1.25·C²` at one stage.
# - Whether a module helps is decided on the same test images by a paired interval
#   (`compare_auc`), for every seed; when the interval holds zero the verdict is
#   "inconclusive", and the test set's size says how much data a verdict would need.
#
# ## Exercises
#
# :::{exercise}
# :label: ex-09-seeds
#
# With two seeds per model, the spread is the distance between two numbers. Why is that a
# weak estimate of the noise, and what would you change to strengthen the comparison?
# :::
#
# :::{solution} ex-09-seeds
# :class: dropdown
#
# Two samples give a very uncertain spread: it can be small by chance and make a noise-level
# difference look real. Run more seeds (5–10), vary the data split as well as the
# initialisation (cross-validation folds by patient), and compare paired differences
# (same seed and split for both models) with a confidence interval.
# :::
#
# :::{exercise}
# :label: ex-09-budget
#
# The modules with more parameters might simply need more epochs. How would you check that
# the budget is not biasing the comparison?
# :::
#
# :::{solution} ex-09-budget
# :class: dropdown
#
# Plot each model's validation AUC per epoch (the `metrics.csv` in its `runs/` folder) and
# check whether the curves have flattened by the last epoch; rerun with twice the epochs and
# see whether the ranking changes.
# :::
#
# ## References
#
# - {cite:p}`hu2018senet`, {cite:p}`woo2018cbam`, {cite:p}`zhang2019sagan`, {cite:p}`misra2021triplet`.
# - PyTorch, *Benchmark utils* (`torch.utils.benchmark`): <https://pytorch.org/tutorials/recipes/recipes/benchmark.html>.
