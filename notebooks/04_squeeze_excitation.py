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
# # 04 · Squeeze-and-Excitation
#
# **What you will learn**
#
# - the three steps of an SE block {cite:p}`hu2018senet`: *squeeze* each channel to one
#   number, *excite* those numbers through a bottleneck into channel gates, *scale* the
#   channels by their gates;
# - what the reduction ratio r trades, and what an SE block costs in parameters and FLOPs;
# - how the course's `SEBlock` matches `torchvision.ops.SqueezeExcitation` exactly;
# - where SE sits in VGG16.
#
# **Expected run time** (2 cores of an Intel(R) Xeon(R) Processor with native bf16, in float32; {doc}`../book/performance`): `smoke` about 5 s · `cpu` about 5 s · `gpu` not measured yet.
#
# **Launch:** [open in Colab](https://colab.research.google.com/github/attention-course/attention-image-classification/blob/main/notebooks/04_squeeze_excitation.ipynb)

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
import pandas as pd
import torch
from torch import nn

import course_lib
from course_lib.bench import count_flops, count_parameters

profile, device = course_lib.setup_notebook()  # seeded with 0, figure style set

# %% [markdown]
# ## 1. Squeeze, excite, scale — by hand
#
# A convolution's output channels are computed independently of each other's *global*
# content: a 3×3 filter sees a 3×3 window. SE lets every channel's weight depend on a
# summary of the whole image and of all other channels.

# %%
N, C, H, W, r = 2, 64, 14, 14, 16
x = torch.randn(N, C, H, W)

# squeeze: global average pooling, one descriptor per channel
z = x.mean(dim=(2, 3))  # (N, C)
assert z.shape == (N, C)

# excite: a bottleneck MLP C -> C/r -> C, ReLU in between, sigmoid at the end
fc1, fc2 = nn.Linear(C, C // r), nn.Linear(C // r, C)
s = torch.sigmoid(fc2(torch.relu(fc1(z))))  # (N, C): one gate per channel
assert s.shape == (N, C) and ((s > 0) & (s < 1)).all()

# scale: reshape the gates to (N, C, 1, 1) and broadcast them over H x W
y = x * s.view(N, C, 1, 1)
assert y.shape == x.shape
print(
    f"x {tuple(x.shape)} -> z {tuple(z.shape)} -> s {tuple(s.shape)} -> y "
    f"{tuple(y.shape)}"
)

# %% [markdown]
# The bottleneck (C/r hidden units) keeps the block small and forces the gates to depend
# on a few combined factors rather than on each channel alone. The sigmoid, not a softmax,
# lets several channels be emphasised at once: channels are not competing alternatives.
#
# ## 2. The library version, and torchvision's
#
# `course_lib.attention.SEBlock` implements the same with 1×1 convolutions (a linear layer
# applied at each position of a 1×1 map), named like torchvision's
# `SqueezeExcitation`, so weights load across directly.

# %%
from torchvision.ops import SqueezeExcitation

from course_lib.attention import SEBlock

se = SEBlock(C, reduction=r)
with torch.no_grad():  # copy the inline weights into the 1x1 convolutions
    se.fc1.weight.copy_(fc1.weight.view(C // r, C, 1, 1))
    se.fc1.bias.copy_(fc1.bias)
    se.fc2.weight.copy_(fc2.weight.view(C, C // r, 1, 1))
    se.fc2.bias.copy_(fc2.bias)
torch.testing.assert_close(se(x), y)

reference = SqueezeExcitation(C, C // r)
reference.load_state_dict(se.state_dict())
torch.testing.assert_close(reference(x), y)
print("inline == course_lib SEBlock == torchvision SqueezeExcitation")

# %% [markdown]
# ## 3. Cost and the reduction ratio
#
# Parameters: `C·C/r + C/r` for the first layer and `C/r·C + C` for the second:
# `2·C²/r + C/r + C`. At C = 512 and r = 16 that is 33,312 (32,768 without biases), next to
# the 2.36 million of the 3×3 convolution it follows. Compute is negligible: the MLP runs
# once per image, not once per position.

# %%
rows = []
for ratio in (2, 4, 8, 16, 32):
    block = SEBlock(512, reduction=ratio)
    rows.append(
        {
            "r": ratio,
            "parameters": count_parameters(block),
            "formula": 2 * 512 * 512 // ratio + 512 // ratio + 512,
            "FLOPs at 14x14": count_flops(block, (1, 512, 14, 14)),
        }
    )
table = pd.DataFrame(rows).set_index("r")
assert (table.parameters == table.formula).all()
assert table.loc[16, "parameters"] == 33_312
conv = nn.Conv2d(512, 512, 3, padding=1)
print(
    f"a 512->512 3x3 convolution: {count_parameters(conv):,} parameters, "
    f"{count_flops(conv, (1, 512, 14, 14)):,} FLOPs at 14x14"
)
table

# %% [markdown]
# `FlopCounterMode` counts only matrix products and convolutions, so the pooling and the
# final multiplication (one multiply per element, 100k here) are not in the table; they
# are also tiny. Smaller r means more capacity and more parameters; the paper found r = 16
# a good balance on ImageNet.
#
# ## 4. SE inside VGG16
#
# `vgg16(attention="se")` puts one SE block at the end of each of the five stages, after the
# last ReLU and before the max-pool, so the gates re-weight the richest features of each
# resolution. At full width that adds:

# %%
from course_lib.models import vgg16

plain, with_se = vgg16(1, head="gap"), vgg16(1, head="gap", attention="se")
added = count_parameters(with_se) - count_parameters(plain)
blocks = [m for m in with_se.modules() if isinstance(m, SEBlock)]
assert len(blocks) == 5 and added == sum(count_parameters(b) for b in blocks)
print(
    f"{len(blocks)} SE blocks add {added:,} parameters to {count_parameters(plain):,} "
    f"({added / count_parameters(plain):.1%})"
)
small = vgg16(1, width=profile.width, head="gap", attention="se").eval()
out = small(torch.randn(2, 3, profile.image_size, profile.image_size))
assert out.shape == (2, 1)

# %% [markdown]
# What do the gates do on real inputs? Below, the five blocks of a VGG16-SE at the
# profile's width, untrained, read one batch of lesions. Untrained gates sit near 0.5 and
# vary little; chapter 09 trains the model and compares it with the baseline.

# %%
from course_lib.data import (
    ensure_synthetic_lesions,
    load_melanoma,
    make_loaders,
    split_by_patient,
)

frame = load_melanoma(
    ensure_synthetic_lesions(profile.n_images, profile.image_size, seed=0)
)
train_frame, val_frame, _ = split_by_patient(frame, 0.2, 0.2, seed=0)
# the small model lives on the CPU, so the batches must too (the loaders deliver them
# on the training device, a GPU where there is one)
_, val_loader = make_loaders(
    train_frame, val_frame, profile.image_size, batch_size=16, device="cpu"
)
images, _ = next(iter(val_loader))
gates = []
hooks = [
    b.register_forward_hook(lambda m, inp, out: gates.append(m.gate(inp[0]).flatten(1)))
    for b in (m for m in small.modules() if isinstance(m, SEBlock))
]
with torch.no_grad():
    small(images)
for h in hooks:
    h.remove()
fig, ax = plt.subplots(figsize=(8, 2.8))
ax.boxplot([g.flatten().numpy() for g in gates])
ax.set_xticks(range(1, 6), [f"stage {i}" for i in range(1, 6)])
ax.set_ylabel("gate value")
ax.set_title("SE gates of an untrained VGG16-SE on one batch of lesions")
fig.tight_layout()
assert all(((g > 0) & (g < 1)).all() for g in gates)

# %% [markdown]
# ## Summary
#
# - SE = squeeze (global average pool) → excite (C → C/r → C MLP, sigmoid) → scale.
# - It costs `2·C²/r + C/r + C` parameters and almost no compute.
# - The course's `SEBlock` equals `torchvision.ops.SqueezeExcitation` given the same weights.
# - In VGG16 it sits at the end of every stage.
#
# ## Exercises
#
# :::{exercise}
# :label: ex-04-softmax
#
# Replace the sigmoid by a softmax over channels. What changes in what the block can express?
# :::
#
# :::{solution} ex-04-softmax
# :class: dropdown
#
# The gates would sum to 1, so emphasising one channel forces others down, and with C = 512
# the average gate would be 1/512: the block would shrink the features by about 500× unless
# rescaled. SE wants independent, non-exclusive emphasis, which is what the sigmoid gives.
# :::
#
# :::{exercise}
# :label: ex-04-max
#
# Squeeze with global *max* pooling instead of the mean, and compare the gates on the batch
# above. Which chapter combines both summaries?
# :::
#
# :::{solution} ex-04-max
# :class: dropdown
#
# Replace `x.mean(dim=(2, 3))` by `x.amax(dim=(2, 3))`. Max pooling reacts to the strongest
# local response of each channel, the mean to its overall presence. CBAM's channel
# attention (chapter 05) feeds both through one shared MLP and adds the results.
# :::
#
# ## References
#
# - {cite:p}`hu2018senet`; torchvision's `SqueezeExcitation`: <https://pytorch.org/vision/stable/generated/torchvision.ops.SqueezeExcitation.html>.
