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
# # 01 · The lesion data: task, splits, augmentation
#
# **What you will learn**
#
# - the melanoma task and the Kaggle data set behind it: its CSV, its class imbalance;
# - the synthetic lesions that stand in for it, drawn with the clinical ABCD rule,
#   each with a mask of the lesion;
# - why images must be split **by patient**, measured on data where it matters, and why
#   into three sides (train, validation, test) rather than two;
# - two ways to handle class imbalance, and augmentation applied to image and mask together.
#
# **Expected run time** (2 cores of an Intel(R) Xeon(R) Processor with native bf16, in float32; {doc}`../book/performance`): `smoke` about 5 s · `cpu` about 15 s · `gpu` about 55 s (one H100 80GB HBM3, bf16, from scratch).
#
# **Launch:** [open in Colab](https://colab.research.google.com/github/attention-course/attention-image-classification/blob/main/notebooks/01_lesion_data.ipynb)

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
import numpy as np
import pandas as pd
from PIL import Image

import course_lib
from course_lib.data import (
    MelanomaDataset,
    balanced_sampler,
    ensure_synthetic_lesions,
    load_melanoma,
    split_by_patient,
    train_transforms,
    undersample,
)
from course_lib.data.transforms import denormalize

profile, device = course_lib.setup_notebook()  # seeded with 0, figure style set
print(profile.name, profile.image_size, "px,", profile.n_images, "images")

# %% [markdown]
# ## 1. The task
#
# Melanoma is the deadliest common skin cancer, and it is curable when caught early. A
# dermatologist looks at a pigmented lesion through a dermatoscope and decides whether to
# cut it out. The ISIC archive {cite:p}`rotemberg2021isic` collects such dermoscopy images
# with their diagnosis; the Kaggle data set
# `shonenkov/melanoma-merged-external-data-512x512-jpeg` merges the ISIC 2020 challenge
# images with earlier ISIC data, resized to 512×512 px: about 37,000 images.
#
# Its `marking.csv` has one row per image:
#
# | column | meaning |
# |---|---|
# | `image_id` | file name without `.jpg` |
# | `patient_id` | the person photographed: several images can share one |
# | `sex`, `age_approx`, `anatom_site_general_challenge` | metadata |
# | `source` | which ISIC collection the image comes from |
# | `target` | 1 melanoma, 0 benign |
#
# Only about one image in ten is a melanoma: a model that always answers "benign" is 90 %
# accurate and useless. This is why the course reports the ROC AUC, sensitivity and
# specificity rather than accuracy.
#
# In the `gpu` profile the training chapters download this data with
# `course_lib.data.download_melanoma` (it needs a Kaggle token, see {doc}`00_setup`).
# Everywhere else the course uses synthetic lesions that follow the same layout.

# %% [markdown]
# ## 2. Synthetic lesions with the ABCD rule
#
# Doctors screen a pigmented lesion by eye with the clinical ABCD rule
# {cite:p}`friedman1985abcd`: **A**symmetry, **B**order irregularity, **C**olour variety,
# **D**iameter (above 6 mm is suspicious). Under the dermatoscope, the ABCD rule of
# Nachbar et al. {cite:p}`nachbar1994abcd` keeps A, B and C but replaces diameter by
# **D**ifferential structures (dots, globules, streaks, network) and weighs the four into a
# total dermoscopy score. The generator imitates the clinical rule, which needs no
# microscopic structure to draw. It draws each lesion from a hidden *severity* whose mean
# depends on the label and derives the four traits from it, each with its own noise. Benign lesions therefore *tend* to be small,
# round and evenly brown, malignant ones larger, ragged and multi-coloured — with overlap,
# as in real life. Skin tone, texture, hairs and position vary; images come in patients
# that share their skin; and every image has a mask of its lesion, which chapter 11 uses to
# measure where a network looks.

# %%
started = time.perf_counter()
root = ensure_synthetic_lesions(profile.n_images, profile.image_size, seed=0)
frame = load_melanoma(root)
print(
    f"{len(frame)} images of {frame.patient_id.nunique()} patients in {root} "
    f"(ready in {time.perf_counter() - started:.1f} s)"
)
frame[
    [
        "image_id",
        "patient_id",
        "sex",
        "age_approx",
        "anatom_site_general_challenge",
        "source",
        "target",
    ]
].head()


# %%
def show_examples(frame, n=6):
    fig, axes = plt.subplots(4, n, figsize=(1.6 * n, 6.8))
    for row, target in enumerate((0, 1)):
        examples = frame[frame.target == target].head(n)
        for col, (_, item) in enumerate(examples.iterrows()):
            axes[2 * row, col].imshow(Image.open(item.path))
            axes[2 * row + 1, col].imshow(Image.open(item.mask_path), cmap="gray")
        axes[2 * row, 0].set_ylabel("benign" if target == 0 else "malignant")
        axes[2 * row + 1, 0].set_ylabel("mask")
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("Synthetic lesions and their masks")
    fig.tight_layout()


show_examples(frame)

# %% [markdown]
# The generator also records the four traits it drew. Their distributions overlap between
# the classes: no single trait — and, as later chapters show, no model — separates them
# perfectly.

# %%
traits = ["diameter", "asymmetry", "border", "colours"]
fig, axes = plt.subplots(1, 4, figsize=(10, 2.6))
for ax, trait in zip(axes, traits):
    for target, colour in ((0, "tab:blue"), (1, "tab:red")):
        ax.hist(
            frame.loc[frame.target == target, trait],
            bins=15,
            alpha=0.6,
            color=colour,
            density=True,
            label="malignant" if target else "benign",
        )
    ax.set_title(trait)
axes[0].legend()
fig.tight_layout()
means = frame.groupby("target")[traits].mean()
assert (means.loc[1] > means.loc[0]).all(), (
    "malignant lesions score higher on every ABCD trait"
)
means

# %% [markdown]
# ## 3. Class balance and patients

# %%
counts = frame.target.value_counts().sort_index()
per_patient = frame.groupby("patient_id").size()
fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
axes[0].bar(["benign", "malignant"], counts.values, color=["tab:blue", "tab:red"])
axes[0].set_title(f"classes ({counts[1] / len(frame):.0%} malignant)")
axes[1].hist(
    per_patient, bins=range(1, per_patient.max() + 2), align="left", color="gray"
)
axes[1].set_title("images per patient")
fig.tight_layout()
print(f"{len(per_patient)} patients, {per_patient.mean():.1f} images each on average")

# %% [markdown]
# ## 4. Why the split must follow patients
#
# Images of one patient share their skin and their camera. If some of a patient's images
# land in training and others in validation, a model can score well by recognising the
# *patient* — and patients with one melanoma often have more. Its validation score then
# says nothing about new patients.
#
# Let us measure it. The classifier below is deliberately blind to lesions: it sees only
# the colour statistics of a 12-pixel band of skin around the image border, and predicts
# with its nearest neighbours. Any skill it shows is leakage.

# %%
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier


def skin_features(path, band=12):
    """Median and spread of the colours of the image's border band: skin, not lesion."""
    a = np.asarray(Image.open(path), dtype=np.float32) / 255
    border = np.concatenate(
        [
            a[:band].reshape(-1, 3),
            a[-band:].reshape(-1, 3),
            a[:, :band].reshape(-1, 3),
            a[:, -band:].reshape(-1, 3),
        ]
    )
    return np.concatenate([np.median(border, 0), border.std(0)])


X = np.stack([skin_features(p) for p in frame.path])
y = frame.target.to_numpy()


def skin_only_auc(train_idx, val_idx):
    knn = KNeighborsClassifier(n_neighbors=3).fit(X[train_idx], y[train_idx])
    return roc_auc_score(y[val_idx], knn.predict_proba(X[val_idx])[:, 1])


rows = []
for seed in range(5):
    train_idx, val_idx = train_test_split(
        np.arange(len(frame)), test_size=0.2, stratify=y, random_state=seed
    )
    train_p, val_p, _ = split_by_patient(frame, 0.2, test_fraction=0, seed=seed)
    # no patient on both sides
    assert set(train_p.patient_id).isdisjoint(val_p.patient_id)
    patient_train = np.flatnonzero(frame.image_id.isin(train_p.image_id))
    patient_val = np.flatnonzero(frame.image_id.isin(val_p.image_id))
    rows.append(
        {
            "seed": seed,
            "random split": skin_only_auc(train_idx, val_idx),
            "patient split": skin_only_auc(patient_train, patient_val),
        }
    )
leak = pd.DataFrame(rows).set_index("seed")
summary = leak.agg(["mean", "std"]).round(3)
summary

# %%
print(
    f"skin-only AUC: random split {summary.loc['mean', 'random split']:.2f}, "
    f"patient split {summary.loc['mean', 'patient split']:.2f}"
)
# the smoke profile's few hundred images are too few for a stable estimate
if len(frame) >= 1000:
    assert (
        summary.loc["mean", "random split"]
        > summary.loc["mean", "patient split"] + 0.05
    )

# %% [markdown]
# A model that never looks at a lesion reaches a clearly better-than-chance AUC under the
# random split, and falls to chance (0.5) under the patient split. `split_by_patient` uses
# scikit-learn's `StratifiedGroupKFold`: patients (groups) never straddle the split, and the
# share of melanoma stays the same on both sides. The Paperspace tutorial {cite:p}`paperspace_attention` split with `train_test_split`
# on images, ignoring `patient_id`; on the real data that overstates validation scores in
# exactly this way.

# %% [markdown]
# ### Three sides, not two
#
# A validation set that chooses anything — the best epoch, the learning rate, which module
# to keep — stops being an unbiased judge of the model it chose: among several candidates
# the one that did best on *these* images is partly the one that was luckiest on them.
# On a few hundred validation images an AUC moves by a few hundredths from one draw of
# patients to the next (chapter 02 measures it), so picking the best of ten epochs or ten
# settings buys a flattering figure. The
# course therefore holds out a third side, the **test** set, and follows one rule in every
# chapter:
#
# - **train** (60 % of the patients) fits the weights;
# - **validation** (20 %) watches the training and chooses, when anything is chosen;
# - **test** (20 %) is scored once, for the figure that is reported, and chooses nothing.
#
# `split_by_patient(frame, val_fraction=0.2, test_fraction=0.2, seed=0)` returns the three
# as a named tuple `Split(train, val, test)`, each patient on one side only, each side with
# the data set's share of melanoma. Chapter 02 measures how much a best-epoch validation
# figure flatters compared with the test figure.

# %%
split = split_by_patient(frame, val_fraction=0.2, test_fraction=0.2, seed=0)
train_frame, val_frame, test_frame = split
for name, part in zip(split._fields, split):
    print(
        f"{name:5s}: {len(part):4d} images of {part.patient_id.nunique():4d} patients, "
        f"{part.target.mean():.1%} malignant"
    )
sides = [set(part.patient_id) for part in split]
assert all(a.isdisjoint(b) for i, a in enumerate(sides) for b in sides[i + 1 :])
assert sum(len(part) for part in split) == len(frame)
assert all(abs(part.target.mean() - frame.target.mean()) < 0.1 for part in split)

# %% [markdown]
# ## 5. Handling the imbalance
#
# Two common remedies, both applied to the **training** split only (validation must keep
# the true class ratio, or its metrics lie):
#
# - **under-sampling** (the Paperspace tutorial's approach): keep all melanomas and a random subset of
#   benign images — simple, but it throws data away;
# - **a weighted sampler**: keep every image and draw each class equally often, with
#   replacement (`torch.utils.data.WeightedRandomSampler`).
#
# A third remedy, reweighting the *loss*, appears with the focal loss in chapter 10.

# %%
n_pos = int(train_frame.target.sum())
small = undersample(train_frame, n_negatives=n_pos, seed=0)
sampler = balanced_sampler(train_frame, seed=0)
drawn = train_frame.target.to_numpy()[list(sampler)]
print(
    f"under-sampled: {len(small)} of {len(train_frame)} images, "
    f"{small.target.mean():.0%} malignant"
)
print(
    f"weighted sampler: {len(drawn)} draws from all {len(train_frame)} images, "
    f"{drawn.mean():.0%} malignant"
)
assert (small.target == 1).sum() == n_pos and abs(drawn.mean() - 0.5) < 0.1

# %% [markdown]
# ## 6. Augmentation on image and mask together
#
# Lesions have no natural orientation, so flips and rotations are free extra data. When
# the mask must follow its image — for chapter 11's measurements and chapter 12's
# mask-guided training — both must receive the *same* random crop, flip and rotation, and
# the mask must be spared the colour jitter and normalisation. torchvision's transforms v2
# do this when the mask is wrapped as `tv_tensors.Mask`; `MelanomaDataset(..., with_mask=True)`
# does the wrapping.

# %%
dataset = MelanomaDataset(
    train_frame, train_transforms(profile.image_size), with_mask=True
)
index = int(np.flatnonzero(train_frame.target.to_numpy() == 1)[0])
fig, axes = plt.subplots(2, 5, figsize=(10, 4.3))
for col in range(5):
    image, target, mask = dataset[index]
    assert image.shape == (
        3,
        profile.image_size,
        profile.image_size,
    ) and mask.shape == (1, *image.shape[1:])
    # the mask still covers the lesion: pixels inside it are darker than those outside
    grey = denormalize(image).mean(0)
    assert grey[mask[0] > 0].mean() < grey[mask[0] == 0].mean()
    axes[0, col].imshow(denormalize(image).permute(1, 2, 0))
    axes[0, col].contour(mask[0], levels=[0.5], colors="yellow", linewidths=1)
    axes[1, col].imshow(mask[0], cmap="gray")
for ax in axes.flat:
    ax.set_xticks([]), ax.set_yticks([])
axes[0, 0].set_ylabel("image + mask outline")
axes[1, 0].set_ylabel("mask")
fig.suptitle(
    "Five random augmentations of one lesion: the mask follows every geometric change"
)
fig.tight_layout()

# %% [markdown]
# ## Summary
#
# - The task: melanoma vs benign, about 10 % positives in the real data; report AUC,
#   sensitivity and specificity, not accuracy.
# - Synthetic lesions follow the ABCD rule with overlapping classes, come with masks, and
#   share skin within a patient, like the real data.
# - Split **by patient**: a random split let a skin-only classifier look skilled.
# - Split three ways: train fits, validation chooses, test is scored once and chooses
#   nothing — a figure from the side that chose is flattered.
# - Balance the training split (under-sampling or a weighted sampler), never the validation split.
# - Augment image and mask together with transforms v2 and `tv_tensors.Mask`.
#
# ## Exercises
#
# :::{exercise}
# :label: ex-01-leak
#
# Repeat the leakage measurement with `n_neighbors=15`. Does the gap between the two splits
# grow or shrink? Why?
# :::
#
# :::{solution} ex-01-leak
# :class: dropdown
#
# It shrinks. With 3 neighbours the vote is dominated by the closest images, usually the same
# patient's; with 15 neighbours most votes come from other patients with similar skin, whose
# labels are unrelated, so the random split's advantage fades. Leakage is strongest for
# models that can memorise individual images — which deep networks do very well.
# :::
#
# :::{exercise}
# :label: ex-01-undersample
#
# Why must under-sampling be applied after the split, and only to the training part?
# :::
#
# :::{solution} ex-01-undersample
# :class: dropdown
#
# Under-sampling before the split would give the validation set an artificial 50 % melanoma
# rate: sensitivity and specificity would hold, but precision, accuracy and any threshold
# tuned on it would not transfer to the real prevalence. It would also drop validation
# images for no reason.
# :::
#
# ## References
#
# - ISIC data: {cite:p}`rotemberg2021isic`; the clinical ABCD rule:
#   {cite:p}`friedman1985abcd`; the ABCD rule of dermatoscopy: {cite:p}`nachbar1994abcd`.
# - scikit-learn, *Cross-validation: group k-fold*: <https://scikit-learn.org/stable/modules/cross_validation.html>.
# - torchvision, *Transforms v2 getting started*: <https://pytorch.org/vision/stable/transforms.html>.
