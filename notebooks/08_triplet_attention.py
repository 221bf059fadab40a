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
# # 08 · Triplet attention, and what it is not
#
# **What you will learn**
#
# - triplet attention {cite:p}`misra2021triplet`: three branches that each gate one plane of
#   the (C, H, W) tensor — (C, W), (H, C) and (H, W) — by rotating the tensor, *Z-pooling*,
#   a 7×7 convolution, BatchNorm and a sigmoid;
# - why it costs 300 parameters whatever the number of channels;
# - why the module a widely copied blog post {cite:p}`blog_vgg16_attention` calls "Triplet Attention" is a different mechanism (query/key/value
#   self-attention), and why its usage example cannot run.
#
# **Expected run time** (2 cores of an Intel(R) Xeon(R) Processor with native bf16, in float32; {doc}`../book/performance`): `smoke` about 5 s · `cpu` about 5 s · `gpu` not measured yet.
#
# **Launch:** [open in Colab](https://colab.research.google.com/github/attention-course/attention-image-classification/blob/main/notebooks/08_triplet_attention.ipynb)

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
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import course_lib
from course_lib.bench import count_parameters

profile, device = course_lib.setup_notebook()  # seeded with 0, figure style set

# %% [markdown]
# ## 1. Z-pool and one gate
#
# CBAM's spatial attention (chapter 05) gates the (H, W) plane from the max and mean over
# channels. Triplet attention calls that summary **Z-pool** — `(N, D, A, B) → (N, 2, A, B)`,
# max and mean over the leading axis — and applies the same recipe to *other* planes by
# rotating the tensor first, so that H or W plays the role of the channels.


# %%
def z_pool(t):
    return torch.cat([t.amax(dim=1, keepdim=True), t.mean(dim=1, keepdim=True)], dim=1)


N, C, H, W = 2, 16, 10, 7
x = torch.randn(N, C, H, W)
assert z_pool(x).shape == (N, 2, H, W)

# %% [markdown]
# ## 2. The three branches, by hand
#
# Each branch: rotate → Z-pool → 7×7 conv (2 → 1, no bias) → BatchNorm → sigmoid → multiply
# the rotated tensor → rotate back. The permutations used here are their own inverses.

# %%
convs = [nn.Conv2d(2, 1, 7, padding=3, bias=False) for _ in range(3)]
# momentum 0.01 as in the authors' code (PyTorch's default is 0.1); eval: use running
# statistics
norms = [nn.BatchNorm2d(1, momentum=0.01).eval() for _ in range(3)]


def branch(t, conv, norm):
    gate = torch.sigmoid(norm(conv(z_pool(t))))
    return t * gate, gate


# branch 1: H to the front -> (N, H, C, W); the gate covers the (C, W) plane
rotated = x.permute(0, 2, 1, 3)
out1, gate1 = branch(rotated, convs[0], norms[0])
assert rotated.shape == (N, H, C, W) and gate1.shape == (N, 1, C, W)
out1 = out1.permute(0, 2, 1, 3)

# branch 2: W to the front -> (N, W, H, C); the gate covers the (H, C) plane
rotated = x.permute(0, 3, 2, 1)
out2, gate2 = branch(rotated, convs[1], norms[1])
assert rotated.shape == (N, W, H, C) and gate2.shape == (N, 1, H, C)
out2 = out2.permute(0, 3, 2, 1)

# branch 3: no rotation; the gate covers the (H, W) plane, as in CBAM
out3, gate3 = branch(x, convs[2], norms[2])
assert gate3.shape == (N, 1, H, W)

y = (out1 + out2 + out3) / 3
assert out1.shape == out2.shape == out3.shape == y.shape == x.shape
print(
    "gates:",
    tuple(gate1.shape),
    tuple(gate2.shape),
    tuple(gate3.shape),
    "-> output",
    tuple(y.shape),
)

# %% [markdown]
# Every element of `x` is thus scaled by the average of three gates: one that depends on
# its (channel, column), one on its (row, channel), one on its (row, column). That is the
# "cross-dimension interaction" of the paper's abstract — obtained without any channel-reducing
# bottleneck, which is why no weight depends on C.
#
# ## 3. The library version

# %%
from course_lib.attention import TripletAttention

triplet = TripletAttention(kernel_size=7).eval()
for lib_branch, conv, norm in zip((triplet.ch, triplet.cw, triplet.hw), convs, norms):
    lib_branch.conv.load_state_dict(conv.state_dict())
    lib_branch.bn.load_state_dict(norm.state_dict())
torch.testing.assert_close(triplet(x), y)
for got, want in zip(triplet.branches(x), (out1, out2, out3)):
    torch.testing.assert_close(got, want)
print("inline == course_lib TripletAttention, branch by branch")

sizes = pd.Series(
    {c: count_parameters(TripletAttention(c)) for c in (16, 64, 256, 512)},
    name="parameters",
)
assert (sizes == 300).all() and 3 * (2 * 7 * 7 + 2) == 300
sizes.to_frame().T

# %% [markdown]
# 300 parameters: three 7×7 kernels over two maps (3 · 98) and three BatchNorms (3 · 2). The
# module takes no `channels` argument — there is nothing to size.
#
# The BatchNorms use momentum 0.01, the value in the authors' code
# (`landskape-ai/triplet-attention`, `MODELS/triplet_attention.py`), not PyTorch's default 0.1.
# In training mode the outputs are the same either way (BatchNorm then normalises with the
# batch's own statistics); what differs is the running statistics used in evaluation: with
# 0.01 each batch moves them by 1 %, so they average over about the last hundred batches
# instead of the last ten. The two drift apart within a few steps, so a model trained with
# one and evaluated as if trained with the other would be scored with other statistics.
#
# ## 4. The blog post's "Triplet Attention"
#
# A widely copied blog post on VGG16 with attention {cite:p}`blog_vgg16_attention` describes
# triplet attention correctly in words (three branches, rotation,
# cross-dimension interaction) and then gives this code, re-created faithfully:


# %%
class BlogTripletAttention(nn.Module):
    """The blog post's "TripletAttention": in fact query/key/value self-attention."""

    def __init__(self, in_channels):
        super().__init__()
        self.conv_query = nn.Conv2d(in_channels, in_channels // 8, kernel_size=1)
        self.conv_key = nn.Conv2d(in_channels, in_channels // 8, kernel_size=1)
        self.conv_value = nn.Conv2d(in_channels, in_channels, kernel_size=1)

    def forward(self, x):
        q = self.conv_query(x).flatten(2)
        k = self.conv_key(x).flatten(2)
        v = self.conv_value(x).flatten(2)
        attention = F.softmax(torch.bmm(q.permute(0, 2, 1), k), dim=-1)  # (N, HW, HW)
        # no residual, no gamma
        return torch.bmm(v, attention.permute(0, 2, 1)).view(x.size())


blog_module = BlogTripletAttention(256)
x256 = torch.randn(1, 256, 28, 28)
with torch.no_grad():
    replaced = blog_module(x256)
    kept = TripletAttention().eval()(x256)
change = lambda out: ((out - x256).norm() / x256.norm()).item()  # noqa: E731
comparison = pd.DataFrame(
    {
        "the blog post's module": [
            count_parameters(blog_module),
            "queries, keys, values; softmax over positions",
            "(N, HW, HW) per call",
            "none: output replaces input",
            f"{change(replaced):.2f}",
        ],
        "triplet attention": [
            count_parameters(TripletAttention()),
            "Z-pool, 7x7 conv, BN, sigmoid gates",
            "three maps of 2 planes",
            "gates multiply the input",
            f"{change(kept):.2f}",
        ],
    },
    index=[
        "parameters at C = 256",
        "mechanism",
        "weights computed",
        "relation to input",
        "relative change of x at initialisation",
    ],
)
comparison

# %% [markdown]
# It is self-attention (chapter 07) without SAGAN's `gamma` and residual: the output
# *replaces* the features with averages of value vectors, so a pretrained VGG's features are
# destroyed at initialisation (relative change near 1), and it costs 82,240 parameters and an
# (HW)² matrix, against triplet attention's 300 parameters and gates.
#
# The blog post's usage example also cannot run: it builds every module for 256 channels and
# attaches them after layers 10, 17 and 24 of torchvision's VGG16, whose outputs have 256,
# 512 and 512 channels:

# %%
import torchvision

features = torchvision.models.vgg16().features
print({index: features[index].out_channels for index in (10, 17, 24)})
try:
    blog_module(torch.randn(1, features[17].out_channels, 28, 28))
except RuntimeError as err:
    print("RuntimeError:", str(err).splitlines()[0])
else:
    raise AssertionError("a 256-channel module cannot read 512 channels")

# %% [markdown]
# ## 5. Triplet attention in VGG16
#
# Like SE and CBAM, `vgg16(attention="triplet")` puts one module at the end of each stage:
# five modules, 1,500 parameters in all, whatever the width.

# %%
from course_lib.models import vgg16

for width in (profile.width, 1.0):
    with_triplet, plain = (
        vgg16(1, width=width, head="gap", attention="triplet"),
        vgg16(1, width=width, head="gap"),
    )
    assert count_parameters(with_triplet) - count_parameters(plain) == 1500
model = vgg16(1, width=profile.width, head="gap", attention="triplet").eval()
assert model(torch.randn(2, 3, profile.image_size, profile.image_size)).shape == (2, 1)
print("VGG16 + triplet attention: +1,500 parameters at any width")

# %% [markdown]
# ## Summary
#
# - Triplet attention gates three planes — (C, W), (H, C), (H, W) — by rotating the tensor,
#   Z-pooling (max and mean), a 7×7 conv with BatchNorm and a sigmoid, and averages the three.
# - It has 300 parameters at k = 7, independent of C: no queries, keys, values or softmax.
# - The blog post's module is self-attention without a residual; its example cannot run.
#
# ## Exercises
#
# :::{exercise}
# :label: ex-08-branches
#
# Drop the two rotated branches (keep only the (H, W) one). Which module of chapter 05 is
# this close to, and what is the difference?
# :::
#
# :::{solution} ex-08-branches
# :class: dropdown
#
# CBAM's spatial attention: both gate the (H, W) plane from a max/mean summary over channels
# with a 7×7 conv. Against the course's CBAM, which follows the CBAM paper's equations,
# triplet's branch adds BatchNorm and orders the summary (max, mean). Against the CBAM
# authors' code the branch is the *same* module: their `SpatialGate` already has the
# BatchNorm (momentum 0.01) and the (max, mean) order, and the triplet authors reuse it. The
# real difference is elsewhere: the full module divides by three, so a single branch would
# scale the output by 1/3.
# :::
#
# :::{exercise}
# :label: ex-08-rotation
#
# Why do the permutations `(0, 2, 1, 3)` and `(0, 3, 2, 1)` undo themselves? Would
# `(0, 2, 3, 1)` do?
# :::
#
# :::{solution} ex-08-rotation
# :class: dropdown
#
# Each swaps two axes and leaves the others: applying a swap twice restores the order.
# `(0, 2, 3, 1)` is a cyclic rotation, not a swap: undoing it needs `(0, 3, 1, 2)`.
# :::
#
# ## References
#
# - {cite:p}`misra2021triplet`; {cite:p}`woo2018cbam` for the spatial gate it generalises.
