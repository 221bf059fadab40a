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
# # 03 · Attention, the idea: learned weights on features
#
# **What you will learn**
#
# - attention in a CNN as *learned, input-dependent weighting* of features;
# - the two ways to turn scores into weights: **gates** (sigmoid, each weight on its own in
#   (0, 1)) and **distributions** (softmax, weights that compete and sum to 1);
# - what gets weighted: **channels** (which features), **positions** (where), or
#   **position-to-position** (which other places each place looks at), and what each costs;
# - the tensor shapes involved, and how broadcasting (`expand_as`) applies a weight map.
#
# **Expected run time** (2 cores of an Intel(R) Xeon(R) Processor with native bf16, in float32; {doc}`../book/performance`): `smoke` about 5 s · `cpu` about 5 s · `gpu` about 15 s (one H100 80GB HBM3, bf16, from scratch).
#
# **Launch:** [open in Colab](https://colab.research.google.com/github/attention-course/attention-image-classification/blob/main/notebooks/03_attention_primer.ipynb)

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
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import course_lib
from course_lib.data import ensure_synthetic_lesions, load_melanoma

profile, device = course_lib.setup_notebook()  # seeded with 0, figure style set

# %% [markdown]
# ## 1. A feature map and a weighting
#
# A convolutional layer produces a feature map `x` of shape `(N, C, H, W)`: for each of N
# images, C channels (detectors), each an H×W map of where its pattern occurs. Attention
# computes, *from `x` itself*, a tensor of weights `a` and returns `x * a`. What differs
# between mechanisms is the shape of `a` and how its scores become weights.
#
# Attention is not new information: it only re-weights what the network already computed.
# Its value is that the weighting depends on the input — a lesion on the left and one on the
# right get different spatial weights from the same parameters. (An overview of attention in image recognition {cite:p}`zen_attention_overview` mixes unrelated
# ideas such as hashing and word embeddings into its definitions; none of that is needed here.)

# %%
N, C, H, W = 2, 8, 6, 5
x = torch.randn(N, C, H, W)
print("feature map x:", tuple(x.shape))

# %% [markdown]
# ## 2. Gates: sigmoid, one weight per item
#
# A **channel gate** scores each channel from the summaries of all channels (here each
# channel's mean over positions, mixed by a small weight matrix, as SE does) and squashes the score with a sigmoid into (0, 1). The gate has shape
# `(N, C, 1, 1)`; broadcasting stretches it over H and W when it multiplies `x`. This is
# what `expand_as` makes explicit.

# %%
w_score = torch.randn(C, C) * 0.5  # a "learned" scoring matrix, random here
summary = x.mean(dim=(2, 3))  # (N, C): one number per channel
gate = torch.sigmoid(summary @ w_score.T).view(N, C, 1, 1)  # (N, C, 1, 1)
print(
    "channel gate:",
    tuple(gate.shape),
    "values in",
    (round(gate.min().item(), 3), round(gate.max().item(), 3)),
)
assert gate.shape == (N, C, 1, 1) and (gate > 0).all() and (gate < 1).all()

y_broadcast = x * gate
y_explicit = x * gate.expand_as(x)  # the same, with the stretching written out
assert gate.expand_as(x).shape == x.shape
assert torch.equal(y_broadcast, y_explicit)

# %% [markdown]
# Gates are independent: raising one channel's weight does not lower another's. Several
# channels can be fully on at once, or all nearly off. SE and CBAM use gates.
#
# ## 3. Distributions: softmax, weights that compete
#
# A **softmax over positions** turns one score per position into weights that are
# positive and sum to 1 over the H×W positions. Multiplying and summing gives a weighted
# average of the feature vectors: *attention pooling*, `(N, C, H, W) → (N, C)`. Because the
# weights compete, the map must choose where to look. The attention gates of AttnVGG
# (chapter 10) use this; with a sigmoid instead they gate positions independently.

# %%
scores = torch.randn(N, 1, H, W)  # one score per position
weights = F.softmax(scores.flatten(2), dim=-1).view(N, 1, H, W)
assert torch.allclose(weights.sum(dim=(2, 3)), torch.ones(N, 1))
pooled = (x * weights).sum(dim=(2, 3))  # (N, C): a weighted average over positions
print("attention-pooled features:", tuple(pooled.shape))
uniform = x.mean(dim=(2, 3))  # global average pooling = softmax of constant scores
assert torch.allclose(
    (x * F.softmax(torch.zeros(N, 1, H * W), -1).view(N, 1, H, W)).sum((2, 3)),
    uniform,
    atol=1e-6,
)

# %% [markdown]
# Global average pooling is the special case of equal scores: attention pooling
# generalises it by letting the network decide which positions count.
#
# ## 4. Seeing the difference on a lesion
#
# Take a synthetic lesion and a hand-made score: "darkness" (minus brightness). A sigmoid
# gate marks every dark pixel on its own; a softmax spreads a fixed budget of 1 over the
# image, and the sharper the scores (the lower the temperature), the more it concentrates.

# %%
frame = load_melanoma(
    ensure_synthetic_lesions(profile.n_images, profile.image_size, seed=0)
)
path = frame[frame.target == 1].path.iloc[0]
image = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255).permute(
    2, 0, 1
)
darkness = -(image.mean(0) - image.mean())  # (H, W): high where the skin is dark
gate_map = torch.sigmoid(darkness / 0.05)
fig, axes = plt.subplots(1, 4, figsize=(10, 2.9))
axes[0].imshow(image.permute(1, 2, 0))
axes[0].set_title("image")
axes[1].imshow(gate_map, vmin=0, vmax=1, cmap="magma")
axes[1].set_title("sigmoid gate\n(each pixel on its own)")
for ax, temperature in zip(axes[2:], (0.1, 0.02)):
    dist = F.softmax(darkness.flatten() / temperature, dim=0).view_as(darkness)
    assert torch.isclose(dist.sum(), torch.tensor(1.0))
    ax.imshow(dist, cmap="magma")
    ax.set_title(f"softmax, temperature {temperature}\n(sums to 1)")
for ax in axes:
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## 5. What is weighted, and what it costs
#
# | weighting | weight shape | used by | extra cost |
# |---|---|---|---|
# | channels | `(N, C, 1, 1)` | SE, CBAM's first half | O(C²/r) parameters, negligible compute |
# | positions | `(N, 1, H, W)` | CBAM's second half, triplet attention | O(k²) parameters (a k×k conv), O(HW) compute |
# | positions, guided | `(N, 1, H, W)` | AttnVGG's gates (chapter 10) | O(C·A) parameters (1×1 projections: 196,865 and 262,401 at full width), O(HW·C·A) compute |
# | position-to-position | `(N, HW, HW)` | self-attention (SAGAN, non-local, ViT) | O((HW)²) memory and compute |
#
# The last row is different in kind: every position gets its *own* distribution over all
# positions. The number of weights grows with the square of the map's area:

# %%
for side in (7, 14, 28, 56, 112, 224):
    entries = (side * side) ** 2
    print(
        f"{side:4d} x {side:<4d} map: {entries:>15,} attention weights per image = "
        f"{entries * 4 / 2**20:>9,.1f} MiB (fp32)"
    )

# %% [markdown]
# At 224×224 that is 2.5 billion weights, about 10 GB for one image: why chapter 07 places
# self-attention on small feature maps only.
#
# ## 6. A first library module
#
# A *spatial gate* scores each position from two channel summaries — the mean and the max
# over channels — with one small convolution. Written inline, then compared with
# `course_lib.attention.SpatialAttention` (chapter 05 builds the whole of CBAM around it):

# %%
from course_lib.attention import SpatialAttention

kernel = torch.randn(1, 2, 7, 7) * 0.1
# (N, 2, H, W)
summaries = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
spatial_gate = torch.sigmoid(F.conv2d(summaries, kernel, padding=3))  # (N, 1, H, W)
assert spatial_gate.shape == (N, 1, H, W)
inline_out = x * spatial_gate

library = SpatialAttention(kernel_size=7)
with torch.no_grad():
    library.conv.weight.copy_(kernel)
torch.testing.assert_close(library(x), inline_out)
torch.testing.assert_close(library.gate(x), spatial_gate)
print("inline spatial gate == course_lib.attention.SpatialAttention")

# %% [markdown]
# ## Summary
#
# - Attention re-weights features with weights computed from the features themselves.
# - Sigmoid **gates** weigh items independently; a softmax **distribution** makes them
#   compete for a budget of 1 (attention pooling generalises average pooling).
# - Channel weights `(N, C, 1, 1)` and spatial weights `(N, 1, H, W)` are cheap and apply by
#   broadcasting; position-to-position weights `(N, HW, HW)` grow with the square of the area.
#
# ## Exercises
#
# :::{exercise}
# :label: ex-03-temperature
#
# What does the softmax map of section 4 become when the temperature grows very large, and
# when it tends to zero?
# :::
#
# :::{solution} ex-03-temperature
# :class: dropdown
#
# Large temperature: all scores look alike and the weights tend to the uniform 1/(HW) —
# global average pooling. Temperature → 0: all the weight goes to the single darkest pixel —
# a hard arg-max over the *scores*, so the pooled vector becomes the feature vector found at
# that one position. That is not max pooling: max pooling takes each channel's own maximum,
# and different channels may peak at different positions. (Only when one position holds every
# channel's maximum do the two agree.)
# :::
#
# :::{exercise}
# :label: ex-03-shapes
#
# A gate of shape `(N, 1, 1, W)` multiplies `x` of shape `(N, C, H, W)`. What does it weigh,
# and which module of this course uses gates over such a pair of dimensions?
# :::
#
# :::{solution} ex-03-shapes
# :class: dropdown
#
# It weighs columns: the same weight for all channels and rows of a column. Triplet
# attention (chapter 08) gates planes made of two of the three dimensions (C, H, W) —
# for instance (C, W) — by rotating the tensor and applying a spatial-style gate.
# :::
#
# ## References
#
# - Attention as learned weighting in vision: {cite:p}`jetley2018learn`, {cite:p}`hu2018senet`,
#   {cite:p}`woo2018cbam`; self-attention: {cite:p}`vaswani2017attention`, {cite:p}`wang2018nonlocal`.
