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
# # 06 · Dual pooling: average and max, side by side
#
# **What you will learn**
#
# - what global average pooling and global max pooling each keep of a feature map, and
#   what each throws away;
# - the *dual pooling* head: concatenate both, `(N, C, H, W) → (N, 2C)`, then classify;
# - why it is a cheap, parameter-free change, and why its benefit is an empirical question.
#
# **Expected run time** (2 cores of an Intel(R) Xeon(R) Processor with native bf16, in float32; {doc}`../book/performance`): `smoke` about 5 s · `cpu` about 5 s · `gpu` not measured yet.
#
# **Launch:** [open in Colab](https://colab.research.google.com/github/attention-course/attention-image-classification/blob/main/notebooks/06_dual_pooling.ipynb)

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
import torch
import torch.nn.functional as F
from torch import nn

import course_lib
from course_lib.bench import count_parameters

profile, device = course_lib.setup_notebook()  # seeded with 0, figure style set

# %% [markdown]
# ## 1. Two summaries of one map
#
# The GAP head of chapter 02 summarises each channel's map by its mean. A mean cannot tell
# a weak response spread everywhere from a strong response in one small spot. The maximum
# can — but it ignores everything except that one spot. Two hand-made 7×7 maps show it:

# %%
diffuse = torch.full((7, 7), 0.2)
spot = torch.zeros(7, 7)
spot[3, 4] = 9.8  # the same total: 49 * 0.2
maps = torch.stack([diffuse, spot])[:, None]  # (2 "images", 1 channel, 7, 7)
means, maxima = maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
for ax, m, title, a, b in zip(
    axes, maps, ("diffuse", "one strong spot"), means, maxima
):
    ax.imshow(m[0], cmap="viridis", vmin=0, vmax=10)
    ax.set_title(f"{title}\nmean {a.item():.2f}, max {b.item():.2f}")
    ax.axis("off")
fig.tight_layout()
assert torch.allclose(means[0], means[1])  # average pooling cannot tell them apart
assert maxima[1] > maxima[0]  # max pooling can

# %% [markdown]
# For lesions both matter: the overall amount of a colour (mean) and the presence of one
# small irregular patch (max) — a blue-grey dot is a warning sign even if it is tiny.
#
# ## 2. The dual pooling head, inline
#
# Concatenate the two pooled vectors along the channel axis and feed `2C` numbers to the
# linear classifier. Pooling has no parameters; the linear layer doubles its inputs.

# %%
N, C, H, W = 4, 64, 3, 3
x = torch.randn(N, C, H, W)
pooled = torch.cat(
    [F.adaptive_avg_pool2d(x, 1).flatten(1), F.adaptive_max_pool2d(x, 1).flatten(1)],
    dim=1,
)
assert pooled.shape == (N, 2 * C)
classifier = nn.Linear(2 * C, 1)
logits = classifier(pooled)
assert logits.shape == (N, 1)
print(
    f"x {tuple(x.shape)} -> pooled {tuple(pooled.shape)} -> logits "
    f"{tuple(logits.shape)}"
)

# %% [markdown]
# ## 3. The library version

# %%
from course_lib.attention import DualPooling
from course_lib.models import vgg16

torch.testing.assert_close(DualPooling()(x), pooled)
assert count_parameters(DualPooling()) == 0

gap = vgg16(1, width=profile.width, head="gap")
dual = vgg16(1, width=profile.width, head="dualpool")
extra = count_parameters(dual) - count_parameters(gap)
assert extra == dual.out_channels  # one more weight per channel in the linear layer
print(
    f"GAP head: {count_parameters(gap):,} parameters; dual pooling: "
    f"{count_parameters(dual):,} (+{extra})"
)
assert dual.eval()(torch.randn(2, 3, profile.image_size, profile.image_size)).shape == (
    2,
    1,
)

# %% [markdown]
# Is it attention? Not in the sense of chapters 04–05: nothing is *computed* from the input
# to re-weight it. But max pooling is a hard, input-dependent selection of one position
# per channel — the limit of a softmax over positions at zero temperature (chapter 03) —
# so the head sits between plain averaging and learned attention pooling.
#
# ## 4. Does it help?
#
# Practitioners report mixed results: it often helps little, sometimes a lot. Since it is
# free, the honest way to decide is to measure on your data, with several seeds, against the
# GAP baseline — which chapter 09 does, with `vgg16(head="dualpool")` in its table.
#
# ## Summary
#
# - Average pooling keeps how much of a pattern is present; max pooling keeps its strongest
#   occurrence; neither alone separates "diffuse" from "one strong spot" *and* measures extent.
# - Dual pooling concatenates both: `(N, C, H, W) → (N, 2C)`, no parameters of its own, C more
#   weights in the linear layer.
#
# ## Exercises
#
# :::{exercise}
# :label: ex-06-gem
#
# Generalised-mean pooling computes `(mean(x^p))^(1/p)` over positions (for non-negative x).
# What are its limits for p = 1 and p → ∞?
# :::
#
# :::{solution} ex-06-gem
# :class: dropdown
#
# p = 1 gives average pooling; as p → ∞ the largest value dominates and it tends to max
# pooling. A learned p interpolates between the two summaries that dual pooling concatenates.
# :::
#
# :::{exercise}
# :label: ex-06-relu
#
# The maps fed to the head come after a ReLU. Why does that make the max summary more
# informative than it would be on raw convolution outputs?
# :::
#
# :::{solution} ex-06-relu
# :class: dropdown
#
# After a ReLU a channel is zero wherever its pattern is absent and positive where present,
# so its max is "how strongly is the pattern present anywhere" — a detector's score. On raw
# outputs a large max could come from any arbitrary offset.
# :::
#
# ## References
#
# - Global average pooling as a classifier head: Lin, Chen & Yan, *Network in Network*, ICLR 2014.
# - Average and max summaries together: {cite:p}`woo2018cbam`.
