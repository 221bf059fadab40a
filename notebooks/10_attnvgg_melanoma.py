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
# # 10 · AttnVGG: attention gates for melanoma
#
# **What you will learn**
#
# - how an {term}`attention gate <Attention gate>` lets the coarse, global view of an image (pool-5) decide which
#   positions of the finer maps (pool-3, pool-4) the classifier should read
#   {cite:p}`jetley2018learn` — the model of *Melanoma Recognition via Visual Attention*
#   {cite:p}`yan2019attnmel`;
# - to build the gate by hand, check it against `course_lib`, and trace every shape through
#   AttnVGG (15,183,683 parameters at full width);
# - what {term}`focal loss <Focal loss>` does {cite:p}`lin2017focal`, and three mistakes of the tutorial this
#   chapter grew from — the Paperspace tutorial *Image classification with attention*
#   {cite:p}`paperspace_attention` — that quietly cost accuracy or speed;
# - to train AttnVGG on synthetic lesions, read its attention maps, and compare softmax with
#   sigmoid normalisation;
# - what makes a training loop fast (measured) and what makes it lose nothing when it is
#   interrupted; how the same code runs on several GPUs.
#
# **Expected run time** (2 cores of an Intel(R) Xeon(R) Processor with native bf16, in float32; {doc}`../book/performance`): `smoke` about 10 s · `cpu` about 2.5 min · `gpu` about 4.5 min (one H100 80GB HBM3, bf16, from scratch).
# Two AttnVGGs (softmax and sigmoid gates). Trained models are checkpointed under `runs/`;
# running the notebook again reuses them.
#
# **Launch:** [open in Colab](https://colab.research.google.com/github/attention-course/attention-image-classification/blob/main/notebooks/10_attnvgg_melanoma.ipynb)

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
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import display
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.ops import sigmoid_focal_loss

import course_lib
from course_lib.attention import AttentionGate
from course_lib.bench import count_flops, count_parameters
from course_lib.config import (
    fast_mixed_precision,
)
from course_lib.data import (
    BatchNormalize,
    DataError,
    MelanomaDataset,
    balanced_sampler,
    default_data_dir,
    download_melanoma,
    load_melanoma,
    split_by_patient,
)
from course_lib.evaluation import auc_ci, calibration, compare_auc, operating_point
from course_lib.losses import focal_loss
from course_lib.metrics import energy_in_mask
from course_lib.models import AttnVGG
from course_lib.notebook import glue
from course_lib.recipes import (
    eval_loader,
    lesion_splits,
    profile_loaders,
    train_attnvgg,
)
from course_lib.runspec import TrainConfig
from course_lib.train import evaluate, fit
from course_lib.viz import attention_grid, plot_history

profile, device = course_lib.setup_notebook()  # seeded with 0, figure style set
print(
    f"profile {profile.name}: {profile.image_size} px, width {profile.width}, "
    f"{profile.epochs} epochs, "
    f"device {device}, mixed precision "
    f"{'on' if fast_mixed_precision(device) else 'off'}"
)

# %% [markdown]
# ## 1. The idea: the whole image tells the parts what matters
#
# A VGG classifier (chapter 02) decides from its last feature map alone. After five 2×2
# poolings that map is tiny — 7×7 at 224 px, 2×2 at 64 px — and each of its positions has
# seen most of the image. Fine evidence, such as a ragged stretch of border or a blue-grey
# patch inside a lesion, is still sharp two stages earlier: at pool-3 (28×28 at 224 px) and
# pool-4 (14×14), but there each position has seen only a small neighbourhood and cannot
# know whether it matters.
#
# The idea of joining the two comes from *Learn to Pay Attention* {cite:p}`jetley2018learn`: a
# global view **g** of the image *scores* every position of a local map **l**; the scores
# become an attention map **a**; the local features are pooled with **a** as weights. In
# Jetley et al. **g** is a learned descriptor (a fully connected layer at the top of the
# network), the score is a linear *compatibility* $\langle u, l_{ij} + g\rangle$ (after projecting
# **l** to **g**'s width), and the classifier reads *only* the attention-pooled vectors.
#
# AttnVGG, the model of *Melanoma Recognition via Visual Attention* (AttnMel, Yan, Kawahara
# and Hamarneh {cite:p}`yan2019attnmel`) that this chapter builds, changes three pieces:
#
# - the score comes from the **grid attention gate** of Attention-Gated Networks
#   {cite:p}`schlemper2019gated`: $W_l\,l$ and $W_g\,g$ (1×1 projections), added, ReLU, then a
#   1×1 convolution $\phi$ to one score per position;
# - **g** is the pool-5 *feature map* itself, projected and upsampled to the local map's size,
#   so each region of the image guides the positions it covers;
# - the classifier reads the global average of pool-5 *as well as* the two attention-pooled
#   vectors (chapter 11 shows what this last choice does to the maps).
#
# The attention maps are part of the forward pass: the model is built to weigh positions by
# them. That makes them different from Grad-CAM (chapter 11), which is computed afterwards.
#
# The gate, one step at a time:
#
# $$c_{ij} = \phi^\top \,\mathrm{ReLU}\big(W_l\, l_{ij} + \mathrm{up}(W_g\, g)_{ij}\big) + b, \qquad
#   a = \mathrm{softmax}(c) \;\text{or}\; \sigma(c), \qquad
#   \hat g = \textstyle\sum_{ij} a_{ij}\, l_{ij} \;\text{or}\; \tfrac{1}{HW}\sum_{ij} a_{ij}\, l_{ij}$$


# %% tags=["hide-input"]
def draw_gate():
    """A diagram of the attention gate (drawn here, so it always matches the code)."""
    fig, ax = plt.subplots(figsize=(10, 3.6))
    half_w, half_h = 1.15, 0.5
    boxes = {
        "l": (0.0, 2.0, "local map $l$\npool-3: $C_l$×H×W", "#dbe9f6"),
        "g": (
            0.0,
            0.0,
            "global map $g$\npool-5: $C_g$×$\\frac{H}{4}$×$\\frac{W}{4}$",
            "#fde2c8",
        ),
        "Wl": (2.7, 2.0, "$W_l$: 1×1 conv\n$C_l$ → A", "#eeeeee"),
        "Wg": (2.7, 0.0, "$W_g$: 1×1 conv\n→ A, upsampled", "#eeeeee"),
        "add": (5.4, 1.0, "add, ReLU\nA×H×W", "#eeeeee"),
        "phi": (8.1, 1.0, "$\\phi$: 1×1 conv\nscores $c$: H×W", "#eeeeee"),
        "norm": (10.8, 1.0, "softmax\n(or sigmoid)\nmap $a$", "#f6d5d5"),
        "pool": (13.5, 2.0, "$\\sum a\\, l$ (or mean)\npooled: $C_l$", "#d9f0d3"),
    }
    for x, y, text, colour in boxes.values():
        ax.add_patch(
            FancyBboxPatch(
                (x - half_w, y - half_h),
                2 * half_w,
                2 * half_h,
                boxstyle="round,pad=0.05",
                facecolor=colour,
                edgecolor="0.4",
            )
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=10)

    def arrow(a, b, **kw):
        (x0, y0), (x1, y1) = boxes[a][:2], boxes[b][:2]
        ax.add_patch(
            FancyArrowPatch(
                (x0 + half_w + 0.05, y0),
                (x1 - half_w - 0.05, y1),
                arrowstyle="-|>",
                mutation_scale=14,
                color="0.25",
                **kw,
            )
        )

    for a, b in [
        ("l", "Wl"),
        ("g", "Wg"),
        ("Wl", "add"),
        ("Wg", "add"),
        ("add", "phi"),
        ("phi", "norm"),
        ("norm", "pool"),
    ]:
        arrow(a, b)
    ax.add_patch(
        FancyArrowPatch(
            (0.0, 2.0 + half_h + 0.08),
            (13.5, 2.0 + half_h + 0.08),
            connectionstyle="arc3,rad=-0.1",
            arrowstyle="-|>",
            mutation_scale=14,
            color="tab:blue",
            ls="--",
        )
    )
    ax.text(
        6.75,
        3.55,
        "the same local features, weighted by $a$",
        color="tab:blue",
        ha="center",
    )
    ax.set_xlim(-1.3, 14.8)
    ax.set_ylim(-0.7, 3.8)
    ax.axis("off")
    ax.set_title("An attention gate: the global map scores every local position")
    return fig


draw_gate()
# %% [markdown]
# ## 2. The gate, by hand
#
# We build the gate from its three 1×1 convolutions, at the sizes it meets in the profile
# you run: pool-3 is 1/8 of the image side and pool-5 1/32, a factor of 4 apart (at 64 px,
# 8×8 and 2×2).

# %%
torch.manual_seed(0)
C_l, C_g, A = 32, 64, 32  # local channels, global channels, attention channels
side = profile.image_size // 8  # pool-3's side; pool-5's is a quarter of it
local = torch.randn(2, C_l, side, side)  # pool-3 of two images
global_ = torch.randn(2, C_g, side // 4, side // 4)  # pool-5 of the same images
W_l = nn.Conv2d(C_l, A, kernel_size=1, bias=False)
W_g = nn.Conv2d(C_g, A, kernel_size=1, bias=False)
phi = nn.Conv2d(A, 1, kernel_size=1, bias=True)


def attention_gate(local, global_, normalize=True):
    n, c, h, w = local.shape
    # project the global map and bring it to the local map's size
    g = F.interpolate(W_g(global_), size=(h, w), mode="bilinear", align_corners=False)
    assert g.shape == (n, A, h, w)
    scores = phi(F.relu(W_l(local) + g))  # one score per local position
    assert scores.shape == (n, 1, h, w)
    if normalize:  # a distribution over positions: where to look
        a = F.softmax(scores.flatten(2), dim=2).view(n, 1, h, w)
        # (n, 1, h, w) * (n, c, h, w) broadcasts over channels
        pooled = (a * local).sum(dim=(2, 3))
    else:  # an independent gate per position: what to keep
        a = torch.sigmoid(scores)
        pooled = (a * local).mean(dim=(2, 3))
    return a, pooled


a, pooled = attention_gate(local, global_)
print("attention map", tuple(a.shape), "pooled features", tuple(pooled.shape))
assert a.shape == (2, 1, side, side) and pooled.shape == (2, C_l)
# softmax: sums to 1 per image
torch.testing.assert_close(a.sum(dim=(1, 2, 3)), torch.ones(2))

# %% [markdown]
# The Paperspace tutorial multiplies with `a.expand_as(l)`; broadcasting does the same without building
# the expanded tensor. Now the library's gate with the same weights must agree, for both
# normalisations, and its parameter count must follow the formula
# $C_l A + C_g A + A + 1$ (two bias-free projections, and $\phi$ with its bias).

# %%
gate = AttentionGate(C_l, C_g, A, up_factor=4, normalize_attn=True)
gate.load_state_dict(
    {
        "W_l.weight": W_l.weight,
        "W_g.weight": W_g.weight,
        "phi.weight": phi.weight,
        "phi.bias": phi.bias,
    }
)
for normalize in (True, False):
    gate.normalize_attn = normalize
    ours, theirs = attention_gate(local, global_, normalize), gate(local, global_)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])
assert count_parameters(gate) == C_l * A + C_g * A + A + 1
print(
    "hand-written gate == course_lib.attention.AttentionGate; "
    f"{count_parameters(gate):,} parameters"
)

# %% [markdown]
# ## 3. AttnVGG, traced shape by shape
#
# AttnVGG keeps the thirteen convolutions of VGG16-BN (no fully connected layers), puts a
# gate on pool-3 and one on pool-4, both guided by pool-5, and classifies
# `cat(GAP(pool-5), ĝ₁, ĝ₂)`: 512 + 256 + 512 = 1,280 numbers at full width. With one output
# it has exactly the parameter count of the Paperspace tutorial's model:

# %%
full = AttnVGG(num_classes=1)  # full width, as in the paper
parts = {
    "convolutions (VGG16-BN)": full.features,
    "gate on pool-3": full.attn1,
    "gate on pool-4": full.attn2,
    "classifier 1280 → 1": full.classifier,
}
counts = pd.Series({name: count_parameters(m) for name, m in parts.items()})
counts["total"] = count_parameters(full)
assert counts["total"] == 15_183_683 == counts.drop("total").sum()
assert counts["gate on pool-3"] == 256 * 256 + 512 * 256 + 256 + 1
counts.to_frame("parameters").style.format("{:,}")

# %% [markdown]
# Where do the shapes go? Forward hooks record the output of every stage and gate for one
# 224 px image.

# %%
trace = []
hooks = [
    module.register_forward_hook(
        lambda m, i, o, name=name: trace.append(
            (
                name,
                tuple(o.shape)
                if torch.is_tensor(o)
                else " and ".join(str(tuple(t.shape)) for t in o),
            )
        )
    )
    for name, module in [
        *[(f"stage {k + 1} (pool-{k + 1})", full.features[k]) for k in range(5)],
        ("gate 1 → (a1, ĝ1)", full.attn1),
        ("gate 2 → (a2, ĝ2)", full.attn2),
        ("classifier", full.classifier),
    ]
]
with torch.no_grad():
    logits, a1, a2 = full.eval()(torch.randn(1, 3, 224, 224))
for h in hooks:
    h.remove()
assert (
    a1.shape == (1, 1, 28, 28) and a2.shape == (1, 1, 14, 14) and logits.shape == (1, 1)
)
pd.DataFrame(trace, columns=["module", "output shape"])

# %% [markdown]
# The gates cost little compute: most of AttnVGG's FLOPs are VGG's convolutions.

# %%
flops = count_flops(full, (1, 3, 224, 224), by_module=True)
gate_share = (flops["AttnVGG.attn1"] + flops["AttnVGG.attn2"]) / flops["Global"]
print(
    f"AttnVGG at 224 px: {flops['Global'] / 2e9:.2f} GMACs; the two gates: "
    f"{100 * gate_share:.2f} %"
)
assert gate_share < 0.01

# %% [markdown]
# **Any input divisible by 32.** The tutorial pools pool-5 with `AvgPool2d(7, stride=1)`, which
# only reduces pool-5 to one position at 224 px. At 64 px pool-5 is 2×2 and the layer fails;
# at 320 px it silently returns a 4×4 map and the later `view(N, 512)` fails. `course_lib`
# uses adaptive pooling, so every size works:

# %%
try:
    # the tutorial's pooling at 64 px
    nn.AvgPool2d(7, stride=1)(torch.randn(1, 512, 2, 2))
except RuntimeError as err:
    print("the tutorial's AvgPool2d(7) at 64 px:", str(err).splitlines()[0])
small = AttnVGG(num_classes=1, width=profile.width).eval()
with torch.no_grad():
    for size in (96, 160, 320):
        _, s1, s2 = small(torch.randn(1, 3, size, size))
        print(f"{size} px: a1 {tuple(s1.shape[-2:])}, a2 {tuple(s2.shape[-2:])}")
        assert s1.shape[-1] == size // 8 and s2.shape[-1] == size // 16

# %% [markdown]
# ## 4. Focal loss
#
# Most lesions are benign, and most benign lesions are easy. With plain cross-entropy the
# many easy examples, each contributing a little loss, add up and dominate the gradient.
# Focal loss {cite:p}`lin2017focal` multiplies each example's cross-entropy by
# $(1 - p_t)^\gamma$, where $p_t$ is the probability the model gives the *true* class:
#
# $$\mathrm{FL}(p_t) = -\,\alpha_t\,(1 - p_t)^{\gamma}\,\log p_t .$$
#
# An example already classified with $p_t = 0.9$ keeps $(0.1)^2 = 1\%$ of its loss at
# $\gamma = 2$; a hard one with $p_t = 0.1$ keeps 81 %. $\alpha_t$ is a class weight: $\alpha$ for
# positives and $1 - \alpha$ for negatives.

# %%
p_t = torch.linspace(0.01, 1, 200)
fig, ax = plt.subplots(figsize=(6, 3.4))
for gamma in (0, 0.5, 1, 2, 5):
    ax.plot(
        p_t,
        -((1 - p_t) ** gamma) * torch.log(p_t),
        label=f"γ = {gamma}" + (" (cross-entropy)" if gamma == 0 else ""),
    )
ax.set(
    xlabel="$p_t$, probability of the true class",
    ylabel="loss",
    ylim=(0, 4),
    title="Focal loss: well-classified examples fade out",
)
ax.legend()
ax.grid(alpha=0.3)

# %% [markdown]
# By hand, straight from the formula, then against `course_lib.losses.focal_loss` and
# torchvision's `sigmoid_focal_loss` (an independent implementation):


# %%
def focal_by_hand(logits, targets, alpha=0.25, gamma=2.0):
    p = torch.sigmoid(logits)
    p_t = torch.where(targets == 1, p, 1 - p)
    alpha_t = torch.where(targets == 1, alpha, 1 - alpha)
    return (-alpha_t * (1 - p_t) ** gamma * torch.log(p_t)).mean()


torch.manual_seed(1)
logits, targets = torch.randn(64) * 3, (torch.rand(64) < 0.3).float()
ours = focal_loss(logits, targets, alpha=0.25, gamma=2.0)
torch.testing.assert_close(ours, focal_by_hand(logits, targets))
torch.testing.assert_close(
    ours, sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0, reduction="mean")
)
# γ = 0, no α: cross-entropy
torch.testing.assert_close(
    focal_loss(logits, targets, alpha=None, gamma=0.0),
    F.binary_cross_entropy_with_logits(logits, targets),
)
print(
    f"focal loss {ours:.5f}: formula, course_lib and torchvision agree; γ=0 is "
    "cross-entropy"
)

# %% [markdown]
# **Why from logits.** The formula takes $\log p_t$; when $p_t$ underflows to 0 in float32 the
# hand-written version returns infinity. `focal_loss` gets $-\log p_t$ from
# `binary_cross_entropy_with_logits`, which never forms $p_t$:

# %%
extreme_logits, extreme_targets = torch.tensor([-120.0, 30.0]), torch.tensor([1.0, 1.0])
print(
    "by hand:",
    focal_by_hand(extreme_logits, extreme_targets).item(),
    "   course_lib:",
    focal_loss(extreme_logits, extreme_targets).item(),
)
assert math.isinf(focal_by_hand(extreme_logits, extreme_targets).item())
assert math.isfinite(focal_loss(extreme_logits, extreme_targets).item())

# %% [markdown]
# **What the Paperspace tutorial does instead**, and why the course does not:
#
# 1. `criterion(torch.sigmoid(y_pred.type(torch.FloatTensor)), ...)`: `.type(torch.FloatTensor)`
#    copies the logits to the *CPU* at every step (a device-to-host transfer and a
#    synchronisation), then the loss is computed from probabilities — the unstable form above.
# 2. Its `FocalLoss` multiplies *every* example by the same `alpha`. That is not a class
#    weight: a constant factor only rescales the loss. With plain SGD that acts like a smaller
#    learning rate; with Adam or AdamW, which the course uses, it changes almost nothing, since
#    Adam divides each gradient by a running estimate of its own size and the factor cancels
#    (up to the small $\epsilon$ in that division). Either way it weighs no class against the
#    other. The paper and torchvision use $\alpha_t$. The cell below shows the tutorial's version
#    is exactly 0.25 × the unweighted loss.
# 3. The loss has no `squeeze`: logits of shape `(N, 1)` against targets `(N,)` broadcast to an
#    `(N, N)` matrix in PyTorch's older releases, and raise an error in current ones.


# %%
# the tutorial's FocalLoss(logits=False)
def tutorial_focal(probabilities, targets, alpha=0.25, gamma=2.0):
    bce = F.binary_cross_entropy(probabilities, targets, reduction="none")
    return (alpha * (1 - torch.exp(-bce)) ** gamma * bce).mean()


ratio = tutorial_focal(torch.sigmoid(logits), targets) / focal_loss(
    logits, targets, alpha=None
)
print(f"the tutorial's loss / unweighted focal loss = {ratio:.4f}")
torch.testing.assert_close(ratio, torch.tensor(0.25))

# %% [markdown]
# The course's recipe uses $\gamma = 2$ and *no* class weight (`alpha=None`): with about 30 %
# melanoma in the synthetic set the classes are not rare enough to need one, and $\alpha = 0.25$
# — the detection default — would weigh the *rarer* class down.
#
# ## 5. Training AttnVGG on synthetic lesions
#
# The recipe, shared with chapters 11 and 12 through `course_lib.recipes`:
#
# | choice | value | why |
# |---|---|---|
# | data | the profile's synthetic lesions, split by patient (60/20/20: train, validation, test) | no patient on two sides; the test side chooses nothing (chapter 01) |
# | model | `AttnVGG(1, normalize_attn=True, width=profile.width)` | ImageNet weights in the `gpu` profile |
# | optimiser | AdamW, learning rate 10⁻³, weight decay 10⁻⁴, cosine schedule | as in chapters 02 and 09 |
# | epochs | the profile's: 8 in the `cpu` profile | tuned on validation AUC with one run per setting; within the noise between two draws of the data, no gain showed beyond about 6 epochs at 64 px |
# | loss | `FocalLoss(alpha=None, gamma=2)` on logits | section 4 |
# | speed | augmentation on the device, `channels_last`, mixed precision where the hardware has it | section 8 |
# | model kept | the last epoch, scored once on the test side | no epoch chosen on the validation set |

# %%
train_frame, val_frame, test_frame = lesion_splits(profile)
train_loader, val_loader = profile_loaders(profile, train_frame, val_frame)
print(
    f"{len(train_frame)} training / {len(val_frame)} validation / "
    f"{len(test_frame)} test "
    f"images ({train_frame.target.mean():.0%} / {val_frame.target.mean():.0%} / "
    f"{test_frame.target.mean():.0%} melanoma), split by patient"
)
started = time.perf_counter()
softmax_model, softmax_history = train_attnvgg(
    profile, train_loader, val_loader, tag="softmax"
)
print(f"trained (or reloaded) in {time.perf_counter() - started:.0f} s")

# %% [markdown]
# The curves are validation figures; the reported one is the last epoch's model on the test
# patients, with chapter 02's patient-bootstrap interval, and its operating point at 95 %
# sensitivity.

# %%
plot_history(softmax_history, label="AttnVGG (softmax)")
test_loader = eval_loader(profile, test_frame, device=device)
patients = test_frame.patient_id.to_numpy()


def test_scores(model):
    """``(targets, melanoma probabilities)`` of ``model`` on the test images."""
    run = evaluate(model, test_loader, device, return_predictions=True)
    return run["targets"], run["scores"]


targets, softmax_scores = test_scores(softmax_model)
test_auc = auc_ci(targets, softmax_scores, groups=patients)
point = operating_point(targets, softmax_scores, sensitivity=0.95, groups=patients)
glue("ch10_test_auc", test_auc.estimate, ".3f")
glue("ch10_test_low", test_auc.low, ".3f")
glue("ch10_test_high", test_auc.high, ".3f")
glue("ch10_spec", point.specificity.estimate, ".0%")
glue("ch10_spec_low", point.specificity.low, ".0%")
glue("ch10_spec_high", point.specificity.high, ".0%")
print(
    f"test AUC after the last epoch: {test_auc} (95 % interval, patients resampled); "
    f"training time {softmax_history.seconds.sum():.0f} s over "
    f"{len(softmax_history)} epochs"
)
print(f"at 95 % sensitivity: {point}")
assert test_auc.low <= test_auc.estimate <= test_auc.high and point.sensitivity >= 0.95
# What the profile can promise (smoke: one epoch promises nothing). cpu: below the
# lowest value over three seeds, in float32 and bf16 (benchmarks/lesson_spread.py);
# gpu: 0.917 on an H100 (validation, from scratch; test split: not measured yet).
EXPECT = {"cpu": {"AttnVGG test AUC": 0.90}, "gpu": {"AttnVGG test AUC": 0.85}}.get(
    profile.name
)
if EXPECT:
    assert test_auc.estimate >= EXPECT["AttnVGG test AUC"], (
        f"the {profile.name} profile reaches test AUC {EXPECT['AttnVGG test AUC']} on "
        "the synthetic lesions"
    )

# %% [markdown]
# AttnVGG's last epoch reaches a test AUC of {glue:text}`ch10_test_auc` (95 % interval
# {glue:text}`ch10_test_low` to {glue:text}`ch10_test_high`); at 95 % sensitivity it sends
# home {glue:text}`ch10_spec` of the benign lesions ({glue:text}`ch10_spec_low` to
# {glue:text}`ch10_spec_high`).

# %% [markdown]
# ## 6. Where it looks
#
# The attention maps of a few validation images, three with melanoma and three benign, over
# the image (jet colours: red is high), with the lesion outline in white. The maps are
# upsampled from 1/8 (pool-3) and 1/16 (pool-4) of the image side.

# %%
# uint8 images and masks, as the loaders' workers read them
val_masks = MelanomaDataset(val_frame, with_mask=True, image_size=profile.image_size)
chosen = list(
    val_frame.reset_index(drop=True)
    .groupby("target")
    .head(3)
    .sort_values("target", ascending=False)
    .index
)
images, masks = BatchNormalize()(  # the loaders' evaluation transform
    torch.stack([val_masks[i][0] for i in chosen]),
    torch.stack([val_masks[i][2] for i in chosen]),
)
with torch.no_grad():
    logits, a1, a2 = softmax_model(images.to(device))
probabilities = torch.sigmoid(logits.float()).squeeze(1).cpu()
titles = [
    f"{'melanoma' if val_frame.target.iloc[i] else 'benign'}\np(melanoma) = {p:.2f}"
    for i, p in zip(chosen, probabilities)
]
attention_grid(
    images,
    {
        "pool-3 attention (a1)": a1.float().cpu(),
        "pool-4 attention (a2)": a2.float().cpu(),
    },
    masks=masks,
    row_titles=titles,
)
# %% [markdown]
# How much of each map lies on the lesion? The share of attention inside the mask
# (`course_lib.metrics.energy_in_mask`) against the share of the image the lesion covers —
# what a map spread evenly would score. Chapter 11 measures this properly, over the whole
# validation set and against Grad-CAM.

# %%
share = pd.DataFrame(
    {
        "lesion area": masks.flatten(1).mean(1).numpy(),
        "energy in mask, a1": energy_in_mask(a1.float().cpu(), masks),
        "energy in mask, a2": energy_in_mask(a2.float().cpu(), masks),
    },
    index=titles,
)
share.index = [t.replace("\n", ", ") for t in share.index]
share.round(3)

# %% [markdown]
# ## 7. Softmax or sigmoid?
#
# `normalize_attn` chooses between the two kinds of attention of chapter 03:
#
# - **softmax** over positions: the map is a distribution (it sums to 1) and the pooled
#   vector is a weighted *sum* — attention *pooling*: the positions compete;
# - **sigmoid** per position: each position is gated in (0, 1) on its own and the gated map is
#   *averaged* — many positions can be fully on at once.
#
# (The averaging follows the Paperspace tutorial and Yan's reimplementation of Jetley et al.;
# AttnMel's own code, `SaoYan/IPMI2019-AttnMel`, file `blocks.py`, *sums* the gated features
# under both normalisations. With a fixed map size the two differ by the constant factor
# $HW$, which the classifier's weights absorb. AttnMel's code also returns the raw scores
# $c$ as "the attention map"; the course returns the normalised $a$, the weights actually
# applied.)
#
# Same recipe, same data, the other normalisation:

# %%
sigmoid_model, sigmoid_history = train_attnvgg(
    profile, train_loader, val_loader, tag="sigmoid", normalize_attn=False
)
axes = plot_history(softmax_history, label="softmax")
axes = plot_history(sigmoid_history, axes=axes, label="sigmoid")


# %%
def map_statistics(model, images):
    with torch.no_grad():
        _, m1, m2 = model(images.to(device))
    rows = {}
    for name, m in (("a1", m1), ("a2", m2)):
        flat = m.float().flatten(1).cpu()
        top = flat.sort(dim=1, descending=True).values[:, : max(1, flat.shape[1] // 10)]
        rows[name] = {
            "sum per image": flat.sum(1).mean().item(),
            "max": flat.max(1).values.mean().item(),
            "mass in top 10 % of positions": (top.sum(1) / flat.sum(1)).mean().item(),
        }
    return rows


stats = {
    "softmax": map_statistics(softmax_model, images),
    "sigmoid": map_statistics(sigmoid_model, images),
}
comparison = pd.DataFrame(
    {(norm, m): v for norm, maps in stats.items() for m, v in maps.items()}
).T
comparison["final validation AUC"] = [
    h.val_auc.iloc[-1] for h in (softmax_history,) * 2 + (sigmoid_history,) * 2
]
assert abs(stats["softmax"]["a1"]["sum per image"] - 1) < 1e-3  # a distribution
assert 0 < stats["sigmoid"]["a1"]["max"] <= 1  # a gate
comparison.round(3)

# %%
with torch.no_grad():
    _, s1, s2 = sigmoid_model(images.to(device))
attention_grid(
    images,
    {
        "softmax a1": a1.float().cpu(),
        "sigmoid a1": s1.float().cpu(),
        "softmax a2": a2.float().cpu(),
        "sigmoid a2": s2.float().cpu(),
    },
    masks=masks,
    row_titles=titles,
)
# %% [markdown]
# Read the table before the pictures: the overlays are min-max scaled per image, so they hide
# the difference in scale. A softmax map puts a large share of its mass on a few positions;
# a sigmoid gate can stay open over wide areas, which makes its picture flatter and its
# pooled vector closer to a plain average.
#
# Which one classifies better is a question for the test images, asked as chapter 09 asks
# it: both models scored on the *same* test images, and the interval of their paired
# difference.

# %%
_, sigmoid_scores = test_scores(sigmoid_model)
gates = compare_auc(targets, softmax_scores, sigmoid_scores, groups=patients)
glue("ch10_gate_difference", gates.difference, "+.3f")
glue("ch10_gate_low", gates.low, "+.3f")
glue("ch10_gate_high", gates.high, "+.3f")
glue("ch10_gate_verdict", gates.verdict)
print(f"softmax − sigmoid, test AUC: {gates}")
assert gates.low <= gates.difference <= gates.high

# %% [markdown]
# Softmax minus sigmoid gates: {glue:text}`ch10_gate_difference` AUC (95 % interval
# {glue:text}`ch10_gate_low` to {glue:text}`ch10_gate_high`): **{glue:text}`ch10_gate_verdict`**
# for softmax on this run. With one seed per model, even a conclusive interval speaks for
# these two trainings only; chapter 09 adds the seeds.
#
# ### Is the output a probability?
#
# A screening tool that says "30 % melanoma" should be right about 30 % of the time when it
# says so. A **reliability diagram** checks it: the test images are put into ten bins by
# predicted probability, and each bin's mean prediction is plotted against the share of
# melanomas actually in it; a calibrated model sits on the diagonal. The **expected
# calibration error** (ECE) is the bins' average distance from the diagonal, weighted by
# their size. Focal loss is a reason to look: by down-weighting the examples the model
# already gets right it stops pushing their probabilities towards 0 or 1. Mukhoti et al.
# show that this counters the over-confidence that cross-entropy training produces
# {cite:p}`mukhoti2020focal`; whether it undershoots into under-confidence here, the
# diagram tells.

# %%
reliability = calibration(targets, softmax_scores, n_bins=10)
fig, ax = plt.subplots(figsize=(4.2, 4))
ax.plot([0, 1], [0, 1], ":", color="gray", label="calibrated")
ax.plot(
    reliability.mean_predicted,
    reliability.fraction_positive,
    "o-",
    label="AttnVGG, focal loss",
)
ax.set(
    xlabel="mean predicted probability",
    ylabel="share of melanomas",
    title="reliability on the test images",
    aspect="equal",
    xlim=(0, 1),
    ylim=(0, 1),
)
ax.legend(loc="upper left")
fig.tight_layout()
spread = np.percentile(softmax_scores, [10, 90])
# above the diagonal where the model says "likely", below where it says "unlikely":
# under-confident; the other way round: over-confident (weighted by the bins' sizes)
lean = np.average(
    (reliability.fraction_positive - reliability.mean_predicted)
    * np.sign(reliability.mean_predicted - 0.5),
    weights=reliability.counts,
)
confidence = (
    "under-confident"
    if lean > 0.02
    else "over-confident"
    if lean < -0.02
    else "neither over- nor under-confident"
)
glue("ch10_confidence", confidence)
glue("ch10_ece", reliability.ece, ".3f")
glue("ch10_p10", spread[0], ".2f")
glue("ch10_p90", spread[1], ".2f")
print(
    f"expected calibration error {reliability.ece:.3f}; 80 % of the predicted "
    f"probabilities lie in [{spread[0]:.2f}, {spread[1]:.2f}]"
)
assert 0 <= reliability.ece <= 1 and reliability.counts.sum() == len(targets)

# %% [markdown]
# The expected calibration error is {glue:text}`ch10_ece`, and 80 % of the predictions lie
# between {glue:text}`ch10_p10` and {glue:text}`ch10_p90`. Where the curve lies above the
# diagonal on the right and below it on the left, the model is under-confident; the other
# way round, over-confident. Weighted over the bins, this model is
# **{glue:text}`ch10_confidence`** (a lean of less than two hundredths counts as neither).
# Whatever the diagram shows, ranking — what the AUC and the operating point use — does not need
# calibrated outputs; a probability quoted to a patient does. It can be repaired afterwards
# on the *validation* images, for example with temperature scaling (one parameter that
# divides the logits), without touching the ranking.
#
# ## 8. Training that is fast and loses nothing
#
# ### 8.1 Where the time goes
#
# `course_lib.train.fit` and the tutorial's loop train the same model on the same images. What
# differs:
#
# | | the Paperspace tutorial | `fit` |
# |---|---|---|
# | decoding | full 512 px JPEG decode per image | JPEG *draft* mode: the decoder skips detail the training size cannot show |
# | where decoding runs | in the training process (`.cuda()` in `__getitem__` breaks forked worker processes) | in `num_workers` processes, kept alive between epochs |
# | augmentation | per image, in PIL, at full size, in the training process | on whole batches, on the training device: one affine warp and one colour matrix per image (chapter 01) |
# | copy to the GPU | per sample, float32, synchronous | per batch, `uint8` (4× less), from pinned memory, `non_blocking=True` |
# | loss | on the CPU, from probabilities | on the device, from logits |
# | per step | `loss.item()` waits for the GPU | the loss is summed on the device; the host reads it only to log |
# | arithmetic | float32 | {term}`mixed precision <Mixed precision>`: bf16 autocast (fp16 with a gradient scaler on GPUs without bf16), `channels_last` |
# | optional | — | `compile=True` (`torch.compile`) |
#
# `benchmarks/train_throughput.py` times both loops side by side on the same machine
# (`make bench` re-runs it and regenerates the book's {doc}`../book/performance` page). The
# committed measurements:

# %%
# the results sit in the clone the library was installed from (not on Colab's pip
# install)
results_dir = Path(course_lib.__file__).resolve().parents[1] / "benchmarks" / "results"
records = (
    sorted(results_dir.glob("train_throughput-*.json")) if results_dir.is_dir() else []
)
if records:
    rows = []
    for path in records:
        r = json.loads(path.read_text())
        where = (
            r["machine"]["gpu"]
            or f"{r['machine']['cpu']}, {r['machine']['cores']} cores"
        )
        rows.append(
            {
                "device": r["device"],
                "machine": where,
                "measured": r["machine"]["when"],
                "tutorial loop images/s": r["tutorial_images_per_s"],
                "fit images/s": r["fit_images_per_s"],
                "model alone images/s": r.get("step_images_per_s"),
                "speed-up": f"{r['ratio']:.2f}x",
                "goal": f"{r['goal']}x",
            }
        )
    display(pd.DataFrame(rows))
else:
    print(
        "No benchmark results next to this notebook (e.g. on Colab): run "
        "`python benchmarks/train_throughput.py` in a clone of the course."
    )

# %% [markdown]
# ### 8.2 Checkpoints: nothing is lost
#
# After every epoch `fit` writes `last.pt` (model, optimiser, schedule, history) and, when the
# validation AUC improves, `best.pt`. Each file is written to a temporary name, flushed, and
# *renamed* over the old one: a crash leaves the old checkpoint or the new one, never half a
# file. Files are read back with `torch.load(..., weights_only=True)`, which refuses to run
# code hidden in a pickle. With `resume=True` a run continues after its last completed epoch.
# Every random choice of an epoch — the order of the images, each image's crop, flips,
# rotation and colour change, the dropout masks — is a function of (seed, epoch): the worker
# processes only decode, and the augmentation draws from a generator seeded per batch. So on
# the CPU a resumed run produces *exactly* the numbers of an uninterrupted one, whatever the
# number of workers. The test suite proves it by killing a training process with `SIGKILL`
# in the middle of an epoch and restarting it (`tests/test_kill_resume.py`, with 0 and 2
# workers). A folder that already holds a run is never trained into again unless you say so:
# `resume=True` continues it, `overwrite=True` replaces it, anything else is an error. And a
# folder has one writer: while `fit` trains into it, it holds an exclusive lock on the
# folder's `.run.lock` (the operating system releases it when the process ends, even when it
# is killed), so a second training into the same folder is refused at once, naming the
# process that holds it.
#
# Asking for the same run again finds it finished on disk and trains nothing:

# %%
# named by tag, seed and a fingerprint of data and options
run_dir = Path(softmax_history.attrs["run_dir"])
print("files in", run_dir, ":", sorted(p.name for p in run_dir.iterdir()))
assert {"last.pt", "best.pt", "metrics.csv", "run.json"} <= {
    p.name for p in run_dir.iterdir()
}
started = time.perf_counter()
_, again = train_attnvgg(
    profile, train_loader, val_loader, tag="softmax", verbose=False
)
elapsed = time.perf_counter() - started
pd.testing.assert_frame_equal(again, softmax_history)
print(f"second call: {elapsed:.2f} s, the same history")

# %% [markdown]
# A loss that turns into NaN or infinity (a learning rate too high, a corrupt input) would
# otherwise poison every later step silently. `fit` checks on the device — without waiting
# for it at every step — and stops with an error naming the epoch and the step. Here one
# image of a toy data set holds NaN pixels:

# %%
x_toy, y_toy = torch.randn(64, 3, 32, 32), (torch.rand(64) < 0.5).float()
x_toy[37, 0, 5, 5] = float("nan")  # in the fifth batch of 8 (step 4)
toy_loader = DataLoader(TensorDataset(x_toy, y_toy), batch_size=8)
try:
    fit(
        nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 1)),
        toy_loader,
        toy_loader,
        TrainConfig(epochs=1, device="cpu"),
        progress=False,
        verbose=False,
    )
except FloatingPointError as err:
    print("FloatingPointError:", err)
    assert "epoch 1, step 4" in str(err)

# %% [markdown]
# ### 8.3 More than one GPU
#
# The same `fit` runs under `torchrun`, which starts one process per GPU:
#
# ```bash
# torchrun --nproc_per_node 4 -m course_lib.train --data-root DATA --model attnvgg --out runs/ddp --amp --channels-last
# ```
#
# Each process trains a `DistributedDataParallel` copy of the model (gradients are averaged
# after every backward pass), reads its own shard of each epoch's batches, contributes its
# validation predictions to one list that every process scores (an AUC is not an average of
# per-shard AUCs), and process 0 alone writes checkpoints. The batch size is per process.
# `tests/test_distributed.py` runs two CPU processes (gloo backend) and checks that they
# produce the losses, AUC and weights of one process with twice the batch.
#
# ## 9. The `gpu` profile: real dermoscopy images
#
# ```{note}
# This section trains on the Kaggle data set of chapter 01
# (`shonenkov/melanoma-merged-external-data-512x512-jpeg`, about 37,000 images of ISIC 2020
# and earlier ISIC challenges {cite:p}`rotemberg2021isic`). It runs only in the `gpu` profile
# and only when the data is on disk; otherwise it says how to get it.
# ```
#
# To get the data: create a Kaggle API token (kaggle.com → Settings → API), make it
# available as described in {doc}`00_setup`, and run the next cell in the `gpu` profile; it
# downloads about 3 GB into `$COURSE_DATA_DIR/kaggle-melanoma` once.

# %%
kaggle_root = default_data_dir() / "kaggle-melanoma"
if profile.name != "gpu":
    print(
        f"Profile {profile.name!r}: the real-data section runs in the gpu profile "
        "(COURSE_PROFILE=gpu, "
        "on a CUDA GPU such as Colab's or Gradient's)."
    )
else:
    try:
        download_melanoma(kaggle_root)  # returns at once when the data is already there
    except DataError as err:  # no token, no network, or the kaggle package missing
        print(f"No Kaggle data, so this section is skipped: {err}")

# %%
if profile.name == "gpu" and (kaggle_root / "marking.csv").is_file():
    real = load_melanoma(kaggle_root)  # (the download already decoded every image once)
    real_train, real_val, real_test = split_by_patient(real, 0.2, 0.2, seed=0)
    # about 10 % melanoma: draw both classes equally often instead of discarding
    # benign images
    real_train_loader, real_val_loader = profile_loaders(
        profile,
        real_train,
        real_val,
        sampler=balanced_sampler(real_train, num_samples=len(real_train)),
    )
    print(
        f"{len(real_train):,} training / {len(real_val):,} validation images, "
        f"{real_train.patient_id.nunique():,} / {real_val.patient_id.nunique():,} "
        "patients"
    )
    real_model, real_history = train_attnvgg(
        profile, real_train_loader, real_val_loader, tag="kaggle"
    )
    plot_history(real_history, label="AttnVGG on ISIC images")
    real_run = evaluate(
        real_model,
        eval_loader(profile, real_test, device=device),
        device,
        return_predictions=True,
    )
    real_auc = auc_ci(
        real_run["targets"], real_run["scores"], groups=real_test.patient_id.to_numpy()
    )
    print(f"test AUC on {len(real_test):,} held-out real images: {real_auc}")
else:
    print("Skipped: no Kaggle data in this profile.")

# %% [markdown]
# ## Summary
#
# - An attention gate scores each position of a fine map (pool-3, pool-4) against the coarse
#   global map (pool-5), turns the scores into a map with softmax or sigmoid, and pools the
#   fine features with it; AttnVGG classifies from the global vector and the two pooled ones.
# - The gates are cheap: about 0.46 M of AttnVGG's 15.18 M parameters and well under 1 % of
#   its FLOPs. Adaptive pooling makes any input divisible by 32 work.
# - Focal loss down-weights easy examples by $(1-p_t)^\gamma$; compute it from logits, with
#   $\alpha_t$ rather than a constant $\alpha$, on the device.
# - Softmax maps are distributions that concentrate; sigmoid maps are independent gates;
#   which classifies better is a paired comparison on the same test images.
# - A good ranking (AUC) is not a calibrated probability: the reliability diagram and the
#   ECE check the latter, and focal loss tends to make outputs under-confident.
# - A fast loop decodes in workers, keeps the step loop free of host-device
#   synchronisation, and uses mixed precision and `channels_last`; a safe one writes
#   checkpoints atomically and resumes exactly.
#
# ## Exercises
#
# :::{exercise}
# :label: ex-10-upsample
#
# The gate upsamples the projected *global* map to the local map's size. Why not downsample
# the local map to the global one's instead?
# :::
#
# :::{solution} ex-10-upsample
# :class: dropdown
#
# The point of the gate is to keep the local map's resolution: the attention map and the
# pooled features are computed at pool-3's 28×28 (at 224 px). Downsampling pool-3 to 7×7
# would throw away exactly the fine detail the gate exists to read; the global map only
# contributes one guiding vector per region, which upsampling spreads without loss.
# :::
#
# :::{exercise}
# :label: ex-10-sizes
#
# What shapes do `a1` and `a2` have for a 320 px input? What happens in the tutorial's model at
# that size?
# :::
#
# :::{solution} ex-10-sizes
# :class: dropdown
#
# `a1` is 40×40 (320/8) and `a2` 20×20 (320/16). In the tutorial's model, pool-5 is 10×10 and
# `AvgPool2d(7, stride=1)` returns a 4×4 map, so `view(N, 512)` fails (it holds 512·16
# numbers per image). Section 3 runs AttnVGG at 96, 160 and 320 px.
# :::
#
# :::{exercise}
# :label: ex-10-focal
#
# Train the softmax model with plain cross-entropy (`loss_fn=None` in `fit`) and compare the
# validation AUC with focal loss over two seeds. Is the difference larger than the spread
# between seeds?
# :::
#
# :::{solution} ex-10-focal
# :class: dropdown
#
# Call `course_lib.train.fit` directly with the loaders of section 5, `loss_fn=None` (binary
# cross-entropy on logits) and `seed=0` and `seed=1`, and compare the last-epoch AUCs with
# those of `train_attnvgg` for the same seeds. On the synthetic set both losses land within
# about 0.01 of each other; as in chapter 09, judge the difference against the seed spread.
# :::
#
# ## References
#
# - {cite:p}`jetley2018learn` (attention gates), {cite:p}`yan2019attnmel` (AttnVGG for melanoma),
#   {cite:p}`lin2017focal` (focal loss), {cite:p}`simonyan2015vgg` and {cite:p}`ioffe2015batchnorm`
#   (VGG16-BN), {cite:p}`rotemberg2021isic` (the ISIC 2020 data).
# - PyTorch, *Automatic mixed precision* and *Channels last memory format* tutorials:
#   <https://pytorch.org/tutorials/recipes/recipes/amp_recipe.html>,
#   <https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html>.
# - PyTorch, *Getting started with distributed data parallel*:
#   <https://pytorch.org/tutorials/intermediate/ddp_tutorial.html>.
