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
# # 00 · Setup: profiles, devices and data
#
# **What you will learn**
#
# - how to run the course's notebooks locally, on Colab and on Gradient;
# - what a *run profile* is, and how `COURSE_PROFILE` scales every notebook from a
#   seconds-long smoke test to the full GPU experiment;
# - how the course picks a device (CUDA, Apple MPS, CPU) and makes runs repeatable;
# - where the data of later chapters comes from: synthetic skin lesions, or the real
#   Kaggle melanoma images.
#
# **Expected run time** (2 cores of an Intel(R) Xeon(R) Processor with native bf16, in float32; {doc}`../book/performance`): `smoke` about 5 s · `cpu` about 5 s · `gpu` about 15 s (one H100 80GB HBM3, bf16, from scratch).
# On Colab or Gradient the first run also installs the course library (one `pip install`).
#
# **Launch:** [open in Colab](https://colab.research.google.com/github/attention-course/attention-image-classification/blob/main/notebooks/00_setup.ipynb)
# · or use the rocket icon at the top of the page.

# %% [markdown]
# ## 1. Make the course library importable
#
# The notebooks share their code through `course_lib`, a small package that lives in the
# course repository. The next cell is the same in every notebook:
#
# - **locally** — after `make book`, `make test` or `pip install -e .` — the library is
#   already installed and the cell does nothing;
# - **on Colab** the notebook arrives alone, so the cell installs the library from the
#   repository with `pip` (Colab already has PyTorch, which is left as it is);
# - **on Gradient** the notebook usually runs inside a clone of the repository: the cell
#   installs that clone (outside one, it installs from the repository, as on Colab);
# - **anywhere else** without the library it stops, and says how to install it.
#
# Set `COURSE_REPO_URL` before running it to install from a fork.

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

# %% [markdown]
# ## 2. The run profile
#
# Training even a small network on 3,000 images takes minutes on a laptop and seconds on a
# GPU; the full experiment needs a GPU. Rather than keeping three copies of every notebook,
# the course reads one **profile** that sets image size, network width, number of images,
# epochs, batch size and whether to start from ImageNet weights.
#
# | profile | meant for | image size | VGG width | images | epochs |
# |---|---|---|---|---|---|
# | `smoke` | CI and tests: does the code run? | 64 | 1/8 | 320 | 1 |
# | `cpu` | a laptop, the rendered book | 64 | 1/4 | 3,000 | 8 |
# | `gpu` | Colab, Gradient | 224 | 1 (real VGG16) | 10,000 (chapter 10 adds the Kaggle data) | 20 |
#
# The `cpu` profile is budgeted for a laptop without a GPU: at most 5 minutes per chapter on
# 2 cores in float32 (each chapter's header gives its measured time). The cell below prints
# the profiles from `course_lib.config` itself, and checks this table against them.
#
# The profile comes from the environment variable `COURSE_PROFILE`. When it is unset the
# course chooses `gpu` if a CUDA device is present and `cpu` otherwise.

# %%
import dataclasses

from course_lib.config import (
    PROFILES,
    describe,
    get_device,
    get_profile,
    seed_everything,
)
from course_lib.viz import use_course_style

profile = get_profile()
use_course_style()  # legible figures (course_lib.viz): every notebook starts with it
print(describe(profile))

# the table above, as the library holds it, and checked against it
table = {n: (p.image_size, p.width, p.n_images, p.epochs) for n, p in PROFILES.items()}
for name, (size, width, images, epochs) in table.items():
    shape = f"{name:6s} {size:4d} px  width {width:<6g}"
    print(f"{shape} {images:6,d} images  {epochs:2d} epochs")
assert table["smoke"] == (64, 1 / 8, 320, 1) and table["cpu"] == (64, 1 / 4, 3000, 8)
assert table["gpu"][:2] == (224, 1.0)

# %% [markdown]
# The profile is a frozen dataclass, so no notebook can change it by accident. To try a
# different value, make a modified copy:

# %%
bigger = dataclasses.replace(profile, image_size=128)
assert bigger.image_size == 128 and bigger.name == profile.name
assert all(p.image_size % 32 == 0 for p in PROFILES.values()), (
    "VGG halves the size 5 times"
)
print(f"{bigger.name}: image_size {profile.image_size} -> {bigger.image_size}")

# %% [markdown]
# **Choosing a profile.** Set the variable *before* Jupyter starts
# (`COURSE_PROFILE=cpu jupyter lab`), or in the first cell of a notebook, before anything
# from `course_lib` runs:
#
# ```python
# import os
# os.environ["COURSE_PROFILE"] = "smoke"
# ```
#
# A typo is caught at once with a message that lists the valid names:

# %%
from course_lib.config import ProfileError

saved = os.environ.get("COURSE_PROFILE")
os.environ["COURSE_PROFILE"] = "lapotp"
try:
    get_profile()
except ProfileError as err:
    print("ProfileError:", err)
else:
    raise AssertionError("an unknown profile must be rejected")
finally:
    if saved is None:
        del os.environ["COURSE_PROFILE"]
    else:
        os.environ["COURSE_PROFILE"] = saved
assert get_profile() == profile

# %% [markdown]
# ## 3. The device
#
# `get_device()` returns the fastest device present: CUDA (NVIDIA GPUs on Colab and
# Gradient), then MPS (Apple silicon), then the CPU. Every notebook moves its model and
# each batch to this device; data loading always stays on the CPU.

# %%
import platform

import numpy as np
import torch
import torchvision

import course_lib

device = get_device()
print(f"device       : {device}")
if device.type == "cuda":
    print(f"GPU          : {torch.cuda.get_device_name(0)}")
print(f"CPU threads  : {torch.get_num_threads()}")
print(f"python       : {platform.python_version()}")
print(f"torch        : {torch.__version__}")
print(f"torchvision  : {torchvision.__version__}")
print(f"numpy        : {np.__version__}")
print(f"course_lib   : {course_lib.__version__}")

x = torch.ones(2, 3, device=device)
assert (x @ x.T).sum().item() == 12.0  # the device really computes

# %% [markdown]
# ## 4. Repeatable runs
#
# Training starts from random weights and shuffles the data randomly, so two runs differ.
# `seed_everything(seed)` seeds Python's `random`, NumPy and PyTorch at once. On the CPU
# the course's runs are then exactly repeatable; on a GPU some kernels are
# non-deterministic, so expect differences in the last digits.

# %%
seed_everything(0)
a = torch.randn(3)
seed_everything(0)
b = torch.randn(3)
assert torch.equal(a, b), "same seed, same numbers"
print(a)

# %% [markdown]
# ### Every later chapter starts with one call
#
# `course_lib.setup_notebook()` does the steps of sections 2–4 at once: it reads the profile,
# picks the device, seeds every generator with 0 and sets the figure style, and returns
# `(profile, device)`. On Colab it also says where trained models go: `runs/` on the
# machine's disk vanishes when the runtime resets, and
# `course_lib.setup_notebook(keep_runs_on_drive=True)` (or `COURSE_RUNS_ON_DRIVE=1`) keeps it
# on your Google Drive instead.

# %%
profile_again, device_again = course_lib.setup_notebook()
assert (profile_again, device_again) == (profile, device)
assert torch.equal(torch.randn(3), a), "seeded with 0, as above"

# %% [markdown]
# ## 5. Where the data comes from
#
# The course's task is to tell melanoma from benign skin lesions. Two data sources feed it:
#
# - **Synthetic lesions** (every profile, no download): the course generates images that
#   follow the clinical ABCD rule {cite:p}`friedman1985abcd` — Asymmetry, Border
#   irregularity, Colour variety, Diameter — together with a mask of each lesion, so that
#   later chapters can *measure* whether attention falls on the lesion. They are made in seconds on any machine.
# - **The Kaggle melanoma data** (chapter 10's last section, `gpu` profile): about 37,000 dermoscopy images at
#   512×512 px from the ISIC archive {cite:p}`rotemberg2021isic`, published on Kaggle as
#   `shonenkov/melanoma-merged-external-data-512x512-jpeg`. Downloading it needs a Kaggle
#   account and an API token:
#   1. sign in at kaggle.com, open *Settings → API → Create New Token*; this saves `kaggle.json`;
#   2. put it in `~/.kaggle/kaggle.json` (`chmod 600` it), or set the environment variables
#      `KAGGLE_USERNAME` and `KAGGLE_KEY` (on Colab: *Secrets*, then copy them into `os.environ`);
#   3. chapter 10's last section downloads and unpacks the data for you when it is missing.
#
# Never paste your key into a notebook you share.

# %% [markdown]
# ## Summary
#
# - Every notebook starts with the same setup cell; locally it does nothing.
# - `COURSE_PROFILE` (`smoke`, `cpu`, `gpu`) scales every notebook; `get_profile()` reads it
#   and rejects unknown names with a readable error.
# - `get_device()` picks CUDA, then MPS, then the CPU; `seed_everything()` makes runs repeatable.
# - `course_lib.setup_notebook()` does all of it in one call, and on Colab keeps trained models
#   on Google Drive when asked: every later chapter starts with it.
# - Synthetic lesions with masks stand in for the Kaggle data wherever there is no GPU or no
#   download.
#
# ## Exercises
#
# :::{exercise}
# :label: ex-00-profile
#
# Without restarting the kernel, how would you run the rest of a notebook in the `smoke`
# profile? Why is it not enough to set `os.environ["COURSE_PROFILE"]` after a profile
# object has already been created?
# :::
#
# :::{solution} ex-00-profile
# :class: dropdown
#
# Set `os.environ["COURSE_PROFILE"] = "smoke"` and call `get_profile()` again: the function
# reads the variable at every call. A `Profile` object made earlier is a frozen snapshot,
# so any variable already holding it (here `profile`) keeps the old values — re-run the
# cells that created it.
# :::
#
# :::{exercise}
# :label: ex-00-seed
#
# Seed with `seed_everything(1)`, draw `torch.randn(3)`, and compare with the tensor `a`
# above. Then draw two tensors in a row after `seed_everything(0)`: which one equals `a`?
# :::
#
# :::{solution} ex-00-seed
# :class: dropdown
#
# ```python
# seed_everything(1); print(torch.randn(3))   # different from a
# seed_everything(0); first, second = torch.randn(3), torch.randn(3)
# assert torch.equal(first, a) and not torch.equal(second, a)
# ```
# A seed fixes the whole *sequence* of random numbers: only the first draw after seeding
# repeats `a`.
# :::
#
# ## References
#
# - The ISIC archive data set: {cite:p}`rotemberg2021isic`.
# - The clinical ABCD rule: {cite:p}`friedman1985abcd`; the ABCD rule of dermatoscopy, where
#   D stands for differential structures: {cite:p}`nachbar1994abcd`.
# - PyTorch's notes on reproducibility: <https://pytorch.org/docs/stable/notes/randomness.html>.
