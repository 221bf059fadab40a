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
# # 07 · Self-attention: every position looks at every other
#
# **What you will learn**
#
# - SAGAN-style self-attention {cite:p}`zhang2019sagan` (the non-local block of
#   {cite:t}`wang2018nonlocal`): queries and keys with C/8 channels, values with C, a softmax
#   over positions, and a learned `gamma` that starts at 0;
# - why its memory grows with the *square* of the feature map's area, measured;
# - how `torch.nn.functional.scaled_dot_product_attention` (SDPA) avoids storing the
#   attention matrix, and the one detail that decides whether it can;
# - where self-attention fits in VGG16, and why not where a widely copied blog post on VGG16 with
#   attention {cite:p}`blog_vgg16_attention` put it.
#
# **Expected run time** (2 cores of an Intel(R) Xeon(R) Processor with native bf16, in float32; {doc}`../book/performance`): `smoke` about 10 s · `cpu` about 10 s · `gpu` not measured yet.
#
# **Launch:** [open in Colab](https://colab.research.google.com/github/attention-course/attention-image-classification/blob/main/notebooks/07_self_attention.ipynb)

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
import torch.nn.functional as F
from torch import nn

import course_lib
from course_lib.bench import count_parameters, latency_ms, peak_memory_bytes

profile, device = course_lib.setup_notebook()  # seeded with 0, figure style set

# %% [markdown]
# ## 1. Self-attention by hand
#
# Three 1×1 convolutions turn each position's feature vector into a **query** ("what am I
# looking for?"), a **key** ("what do I offer?") and a **value** ("what do I pass on?").
# Position i's output is the average of all values, weighted by `softmax_j(q_i · k_j)`.
# SAGAN uses C/8 channels for queries and keys (cheap similarity) and C for values, and no
# 1/√d scaling.

# %%
N, C, H, W = 2, 64, 8, 6
x = torch.randn(N, C, H, W)
query, key, value = nn.Conv2d(C, C // 8, 1), nn.Conv2d(C, C // 8, 1), nn.Conv2d(C, C, 1)

q = query(x).view(N, C // 8, H * W).permute(0, 2, 1)  # (N, HW, C/8)
k = key(x).view(N, C // 8, H * W)  # (N, C/8, HW)
v = value(x).view(N, C, H * W)  # (N, C, HW)
energy = torch.bmm(q, k)  # (N, HW, HW): similarity of every pair of positions
attention = torch.softmax(energy, dim=-1)  # row i: a distribution over the positions j
# out_i = sum_j a_ij v_j
out = torch.bmm(v, attention.permute(0, 2, 1)).view(N, C, H, W)
assert energy.shape == (N, H * W, H * W) and out.shape == x.shape
assert torch.allclose(attention.sum(-1), torch.ones(N, H * W))

gamma = nn.Parameter(torch.zeros(1))
y = gamma * out + x
assert torch.equal(y, x)  # gamma = 0: the block starts as the identity
print(
    f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} -> attention "
    f"{tuple(attention.shape)}"
)

# %% [markdown]
# Starting at `gamma = 0` matters: inserted into a network (pretrained or not), the block
# changes nothing at first, and training raises `gamma` only as far as non-local context
# helps.
#
# ## 2. The library version
#
# `course_lib.attention.SelfAttention2d` computes the same with SDPA. Given the same weights
# and any `gamma`, it matches the bmm version:

# %%
from course_lib.attention import SelfAttention2d

library = SelfAttention2d(C)
with torch.no_grad():
    library.query.load_state_dict(query.state_dict())
    library.key.load_state_dict(key.state_dict())
    library.value.load_state_dict(value.state_dict())
    library.gamma.fill_(0.8)
torch.testing.assert_close(library(x), 0.8 * out + x, atol=1e-5, rtol=1e-5)
assert (
    count_parameters(SelfAttention2d(512)) == 328_321
    and count_parameters(SelfAttention2d(64)) == 5_201
)
print(
    "inline == course_lib SelfAttention2d; parameters: 328,321 at C=512, 5,201 at C=64"
)

# %% [markdown]
# The parameter count `2·(C·C/8 + C/8) + C·C + C + 1` is modest. The cost is elsewhere.
#
# ## 3. The cost: an (HW)×(HW) matrix
#
# `energy` and `attention` each hold (HW)² numbers per image. SDPA can compute the same
# output in blocks, keeping only running sums (the "flash attention" algorithm), so the
# matrix never exists whole — *if* a fused kernel accepts the inputs. PyTorch's CPU flash
# kernel needs queries, keys and values of the same width; SAGAN's are C/8 and C. Called as
# is, SDPA falls back to its reference ("math") implementation, which builds the matrix.
# The fix is exact: pad queries and keys with zeros up to C channels. Zeros add nothing to
# a dot product, and the scale is passed explicitly. `SelfAttention2d` does this by default
# (`fused=True`).
#
# We measure three versions of the attention core on one image, as the map grows: the bmm
# code above, SDPA called with SAGAN's shapes, and SDPA with padded queries and keys. Peak
# memory is the high-water mark of tensor bytes allocated during the call
# (`course_lib.bench.peak_memory_bytes`); time is the median of repeated runs
# (`torch.utils.benchmark`).


# %%
def naive(q, k, v):
    return torch.bmm(torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1), v)


def sdpa_as_is(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, scale=1.0)


def sdpa_padded(q, k, v):
    pad = v.shape[-1] - q.shape[-1]
    return F.scaled_dot_product_attention(
        F.pad(q, (0, pad)), F.pad(k, (0, pad)), v, scale=1.0
    )


rows = []
with torch.no_grad():
    for side in (8, 14, 28, 42, 56):
        hw = side * side
        q, k, v = (torch.randn(1, hw, d, device=device) for d in (C // 8, C // 8, C))
        reference = naive(q, k, v)
        for name, fn in (
            ("bmm + softmax", naive),
            ("SDPA, SAGAN shapes", sdpa_as_is),
            ("SDPA, padded q/k", sdpa_padded),
        ):
            torch.testing.assert_close(fn(q, k, v), reference, atol=1e-4, rtol=1e-4)
            rows.append(
                {
                    "side": side,
                    "positions": hw,
                    "version": name,
                    "peak MiB": peak_memory_bytes(fn, q, k, v, device=device) / 2**20,
                    "ms": latency_ms(fn, q, k, v, min_run_time=0.1),
                    "matrix MiB": hw * hw * 4 / 2**20,
                }
            )
results = pd.DataFrame(rows)
results.pivot(index="side", columns="version", values="peak MiB").round(2)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for name, group in results.groupby("version", sort=False):
    axes[0].plot(group.positions, group["peak MiB"], "o-", label=name)
    axes[1].plot(group.positions, group["ms"], "o-", label=name)
axes[0].plot(group.positions, group["matrix MiB"], "k:", label="one (HW)² fp32 matrix")
axes[0].set(
    xscale="log",
    yscale="log",
    xlabel="positions HW",
    ylabel="peak memory (MiB)",
    title="memory",
)
axes[1].set(
    xscale="log",
    yscale="log",
    xlabel="positions HW",
    ylabel="time (ms)",
    title=f"time ({device.type})",
)
axes[0].legend()
fig.tight_layout()

at56 = results[results.side == 56].set_index("version")
ratio = at56.loc["bmm + softmax", "peak MiB"] / at56.loc["SDPA, padded q/k", "peak MiB"]
print(
    f"at 56x56 ({56 * 56} positions): bmm {at56.loc['bmm + softmax', 'peak MiB']:.1f} "
    "MiB, "
    f"SDPA as is {at56.loc['SDPA, SAGAN shapes', 'peak MiB']:.1f} MiB, "
    f"SDPA padded {at56.loc['SDPA, padded q/k', 'peak MiB']:.1f} MiB: ratio bmm / "
    f"padded SDPA = {ratio:.0f}x"
)
assert ratio > 10
results[results.side == 56].round(2)

# %% [markdown]
# The bmm version holds the energy and the softmax, two (HW)² matrices: its memory grows
# with the square of the number of positions, as the dotted line does. SDPA with SAGAN's
# unequal widths falls back to the same matrices (and a little more). With padded queries
# and keys, the fused kernel runs and memory grows only linearly, with the output itself.
# On a GPU the picture is the same with other kernels (flash, memory-efficient).
#
# ## 4. What the VGG16-with-attention blog post asked for
#
# The blog post inserts self-attention right after VGG16's first convolution, on a 224×224 map
# with 64 channels. Let us compute — not run — what that costs per image:

# %%
hw = 224 * 224
entries = hw**2
print(
    f"positions: {hw:,}; attention matrix: {entries:,} entries = "
    f"{entries * 4 / 1e9:.1f} GB in fp32 per image"
)
print(
    f"batch of 32: {32 * entries * 4 / 1e9:,.0f} GB, for the matrix alone (the naive "
    "code stores it twice)"
)
# q·k (C/8 wide), then weights·v (C wide)
attention_flops = 2 * entries * (64 // 8) + 2 * entries * 64
vgg16_flops = 30.94e9  # one 224 px image through VGG16, measured in chapter 02
print(
    f"attention products: {attention_flops / 1e9:,.0f} GFLOPs per image, "
    f"{attention_flops / vgg16_flops:.0f}x the whole of VGG16 ({vgg16_flops / 1e9:.1f} "
    "GFLOPs)"
)
assert entries > 2.5e9 and attention_flops > 10 * vgg16_flops

# %% [markdown]
# Ten gigabytes per image for one matrix: the blog post's model cannot train on any GPU with a
# useful batch size, and the quadratic compute alone is larger than the whole network.
# Even a fused kernel, which avoids the memory, still does the quadratic compute.
#
# ## 5. Where it fits in VGG16
#
# VGG16's stages work at 224, 112, 56, 28 and 14 pixels (at a 224 px input). The (HW)²
# matrix per stage:

# %%
stages = pd.DataFrame(
    {
        "stage": range(1, 6),
        "side at 224 px": [224, 112, 56, 28, 14],
        "channels": [64, 128, 256, 512, 512],
    }
)
stages["positions"] = stages["side at 224 px"] ** 2
stages["matrix per image (MiB, fp32)"] = (stages.positions**2 * 4 / 2**20).round(1)
stages["side at the profile's size"] = (
    stages["side at 224 px"] * profile.image_size // 224
)
stages.set_index("stage")

# %% [markdown]
# Stage 4 (28×28 at 224 px, 2.3 MiB per image) is where SAGAN-style blocks usually go:
# enough positions for long-range context, a matrix that fits comfortably. Stage 5 (14×14)
# is cheaper still but coarser. `vgg16(attention="self")` puts one block at the end of
# stage 4:

# %%
from course_lib.models import vgg16

model = vgg16(1, width=profile.width, head="gap", attention="self").eval()
blocks = [
    (name, m) for name, m in model.named_modules() if isinstance(m, SelfAttention2d)
]
assert len(blocks) == 1 and blocks[0][0].startswith("features.3.")
assert blocks[0][1].gamma.item() == 0.0
print(f"self-attention at {blocks[0][0]} ({blocks[0][1].value.in_channels} channels)")
assert model(torch.randn(2, 3, profile.image_size, profile.image_size)).shape == (2, 1)

# %% [markdown]
# ## Summary
#
# - Self-attention: queries, keys (C/8) and values (C) from 1×1 convs; each position's output
#   is a softmax-weighted average of all values; `y = gamma · out + x`, `gamma` starting at 0.
# - Its weights form an (HW)² matrix: 10 GB per image at 224×224, which rules out the blog post's
#   placement; place it on small maps (VGG16's stage 4).
# - SDPA's fused kernels avoid storing the matrix when queries and values have equal widths;
#   zero-padding SAGAN's queries and keys makes it so, exactly.
#
# ## Exercises
#
# :::{exercise}
# :label: ex-07-scale
#
# Transformers divide `q · k` by √d. Create `SelfAttention2d(64, scale=None)` and compare
# its attention weights with SAGAN's on the same input. Which is sharper, and why might
# SAGAN not need the scaling?
# :::
#
# :::{solution} ex-07-scale
# :class: dropdown
#
# Without scaling, logits are √d times larger, so the softmax is sharper (closer to one-hot).
# With d = C/8 = 8 the factor is under 3, and `gamma = 0` means the block has no effect
# until training has shaped queries and keys; large multi-head transformers (d = 64 and
# more, many layers) need the scaling to keep softmax gradients from vanishing.
# :::
#
# :::{exercise}
# :label: ex-07-cost
#
# How many times more memory does the bmm version need at stage 3 (56×56) than at stage 4
# (28×28) of a 224 px input? Check against the table of section 3.
# :::
#
# :::{solution} ex-07-cost
# :class: dropdown
#
# The positions grow 4×, the matrix 16×: (3136 / 784)² = 16. The measured bmm memory at
# side 56 is about 16 times the one at side 28 in the table (the output, which grows only 4×,
# is small next to the matrix).
# :::
#
# ## References
#
# - {cite:p}`zhang2019sagan`, {cite:p}`wang2018nonlocal`, {cite:p}`vaswani2017attention`.
# - PyTorch, `torch.nn.functional.scaled_dot_product_attention`: <https://pytorch.org/docs/stable/generated/torch.nn.functional.scaled_dot_product_attention.html>.
