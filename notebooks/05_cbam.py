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
# # 05 · CBAM: channel attention, then spatial attention
#
# **What you will learn**
#
# - CBAM's channel attention {cite:p}`woo2018cbam`: average- *and* max-pooled channel
#   summaries through one shared MLP;
# - its spatial attention: a 7×7 convolution over the per-position mean and max across
#   channels;
# - how the two are chained (channel → spatial), and the alternatives: spatial → channel, and
#   both in parallel;
# - the cost of each half, checked against the formulas.
#
# **Expected run time** (2 cores of an Intel(R) Xeon(R) Processor with native bf16, in float32; {doc}`../book/performance`): `smoke` about 5 s · `cpu` about 5 s · `gpu` not measured yet.
#
# **Launch:** [open in Colab](https://colab.research.google.com/github/attention-course/attention-image-classification/blob/main/notebooks/05_cbam.ipynb)

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
from torch import nn

import course_lib
from course_lib.bench import count_parameters

profile, device = course_lib.setup_notebook()  # seeded with 0, figure style set

# %% [markdown]
# ## 1. Channel attention: two summaries, one MLP
#
# SE summarises a channel by its mean. CBAM adds its maximum: the mean says how much of a
# pattern the image holds, the max how strongly it occurs anywhere. Both summaries go
# through the **same** bottleneck MLP (shared weights: no extra parameters), are added, and
# a sigmoid makes the gates.
#
# The course follows the paper's equations {cite:p}`woo2018cbam` (its Eq. 2 and 3):
# $M_c = \sigma(W_1(W_0(F^c_{avg})) + W_1(W_0(F^c_{max})))$ with no biases, and
# $M_s = \sigma(f^{7\times7}([F^s_{avg}; F^s_{max}]))$ with no BatchNorm. The authors' code
# (`Jongchan/attention-module`, file `MODELS/cbam.py`) differs in three details:
#
# | | the paper's equations (the course) | the authors' code |
# |---|---|---|
# | channel MLP | two weight matrices, no biases | two `nn.Linear` layers, with biases |
# | spatial gate | 7×7 conv, then sigmoid | 7×7 conv (no bias), BatchNorm (momentum 0.01), then sigmoid |
# | channel summary order | (mean, max) | (max, mean) |
#
# None changes what the module does; the biases add `C/r + C` parameters, and the order of
# the two summaries only permutes the conv's input channels.

# %%
N, C, H, W, r = 2, 32, 10, 8, 4
x = torch.randn(N, C, H, W)
mlp = nn.Sequential(
    nn.Conv2d(C, C // r, 1, bias=False), nn.ReLU(), nn.Conv2d(C // r, C, 1, bias=False)
)

avg = x.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
mx = x.amax(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
channel_gate = torch.sigmoid(mlp(avg) + mlp(mx))  # (N, C, 1, 1)
assert channel_gate.shape == (N, C, 1, 1)
x_c = x * channel_gate
print("channel gate:", tuple(channel_gate.shape))

# %% [markdown]
# ## 2. Spatial attention: where, from two channel summaries
#
# At each position, the mean and the max over channels form a 2-channel map; one k×k
# convolution (k = 7, padding 3, no bias) turns it into a score map, and a sigmoid into a
# spatial gate `(N, 1, H, W)`. The large kernel gives each position a view of its
# neighbourhood at almost no cost: 2·7·7 = 98 parameters.

# %%
spatial_kernel = torch.randn(1, 2, 7, 7) * 0.1
# (N, 2, H, W)
stacked = torch.cat(
    [x_c.mean(dim=1, keepdim=True), x_c.amax(dim=1, keepdim=True)], dim=1
)
# (N, 1, H, W)
spatial_gate = torch.sigmoid(F.conv2d(stacked, spatial_kernel, padding=3))
assert stacked.shape == (N, 2, H, W) and spatial_gate.shape == (N, 1, H, W)
y = x_c * spatial_gate  # CBAM = channel attention, then spatial attention
assert y.shape == x.shape

# %% [markdown]
# ## 3. The library version
#
# `course_lib.attention` has `ChannelAttention`, `SpatialAttention` and `CBAM`, each mapping
# `(N, C, H, W)` to the same shape and exposing its `gate(x)`. Given the same weights they
# reproduce the inline computation:

# %%
from course_lib.attention import CBAM, ChannelAttention, SpatialAttention

cbam = CBAM(C, reduction=r, kernel_size=7)
with torch.no_grad():
    cbam.channel.mlp.load_state_dict(mlp.state_dict())
    cbam.spatial.conv.weight.copy_(spatial_kernel)
torch.testing.assert_close(cbam.channel(x), x_c)
torch.testing.assert_close(cbam.spatial.gate(x_c), spatial_gate)
torch.testing.assert_close(cbam(x), y)
print("inline == course_lib CBAM (channel part, spatial part, and composed)")

# %% [markdown]
# ## 4. What it costs

# %%
for c, ratio in ((64, 16), (512, 16)):
    ca, sa, full = ChannelAttention(c, ratio), SpatialAttention(7), CBAM(c, ratio, 7)
    assert count_parameters(ca) == 2 * c * c // ratio and count_parameters(sa) == 98
    assert count_parameters(full) == count_parameters(ca) + count_parameters(sa)
    print(
        f"C={c:3d}, r={ratio}: channel {count_parameters(ca):,} + spatial "
        f"{count_parameters(sa)} "
        f"= {count_parameters(full):,} parameters"
    )

# %% [markdown]
# At C = 512 the channel half has the same 32,768 weights as SE without biases; the spatial
# half adds 98.
#
# ## 5. Seeing a spatial gate
#
# An untrained gate shows nothing, so let us set the 7×7 kernel by hand to find what a
# trained one typically finds: dark blobs. The "feature map" is the inverted image (three
# channels, high where the skin is dark), and the kernel averages the channel-mean map over
# 7×7 windows, with an offset so that average skin scores below zero.

# %%
from course_lib.data import ensure_synthetic_lesions, load_melanoma

frame = load_melanoma(
    ensure_synthetic_lesions(profile.n_images, profile.image_size, seed=0)
)
rgb = (
    np.asarray(Image.open(frame[frame.target == 1].path.iloc[1]), dtype=np.float32)
    / 255
)
# (1, 3, H, W): high on dark skin
features = torch.from_numpy(1 - rgb).permute(2, 0, 1)[None]
features = features - features.mean()  # skin around 0, lesion positive
hand_made = SpatialAttention(7)
with torch.no_grad():
    hand_made.conv.weight.zero_()
    hand_made.conv.weight[0, 0] = 20.0 / 49  # mean channel, averaged over 7x7
with torch.no_grad():
    gate = hand_made.gate(features)[0, 0]
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
axes[0].imshow(rgb)
axes[0].set_title("lesion")
axes[1].imshow(gate, cmap="magma", vmin=0, vmax=1)
axes[1].set_title("spatial gate (hand-set kernel)")
axes[2].imshow((torch.from_numpy(rgb) * gate[..., None]).numpy())
axes[2].set_title("image x gate")
for ax in axes:
    ax.axis("off")
fig.tight_layout()
mask = np.asarray(Image.open(frame[frame.target == 1].mask_path.iloc[1])) > 127
assert gate[torch.from_numpy(mask)].mean() > gate[torch.from_numpy(~mask)].mean()

# %% [markdown]
# ## 6. Channel first, spatial first, or in parallel?
#
# The two halves can be chained either way or applied side by side (averaging the two
# re-weighted maps). All three have the same parameters; they compute different things:
# spatial-first decides *where* before the channel summaries are taken, so the channel
# gates are computed from an already masked map. The CBAM paper compared the three on
# ImageNet and found channel → spatial slightly best, which is `CBAM`'s default.

# %%
outputs = {}
for order in CBAM.ORDERS:
    cbam.order = order
    outputs[order] = cbam(x)
    assert outputs[order].shape == x.shape
for a in CBAM.ORDERS:
    print(
        a.ljust(16),
        " ".join(f"{(outputs[a] - outputs[b]).abs().mean():.4f}" for b in CBAM.ORDERS),
    )
assert not torch.allclose(outputs["channel-spatial"], outputs["spatial-channel"])
cbam.order = "channel-spatial"

# %% [markdown]
# (The table lists the mean absolute difference between the outputs of each pair.) In VGG16,
# `vgg16(attention="cbam")` places a CBAM at the end of each of the five stages, like SE;
# chapter 09 measures whether it helps on lesions.
#
# ## Summary
#
# - Channel attention: mean- and max-pooled summaries through one shared bias-free MLP,
#   added, sigmoid — `2·C²/r` parameters.
# - Spatial attention: channel mean and max per position, a 7×7 conv, sigmoid — `2·k²`
#   parameters.
# - CBAM chains channel → spatial; the other orders are possible and differ in output.
#
# ## Exercises
#
# :::{exercise}
# :label: ex-05-kernel
#
# Why does the spatial half use a 7×7 kernel rather than 3×3? What would a 1×1 kernel do?
# :::
#
# :::{solution} ex-05-kernel
# :class: dropdown
#
# A larger kernel lets the gate at a position depend on its neighbourhood (is this pixel
# part of a blob?), at a cost of only 2·k² weights; the paper found 7×7 better than 3×3.
# A 1×1 kernel would score each position from its own two summaries only — a pointwise
# function of mean and max, with no spatial context.
# :::
#
# :::{exercise}
# :label: ex-05-shared
#
# What would change if the average and max summaries had separate MLPs?
# :::
#
# :::{solution} ex-05-shared
# :class: dropdown
#
# Twice the parameters (`4·C²/r`), and the two paths could learn unrelated gates. Sharing
# forces one mapping from "channel statistics" to "importance", which both summaries feed.
# :::
#
# ## References
#
# - {cite:p}`woo2018cbam`; {cite:p}`hu2018senet` for the channel half's ancestor.
