"""Run profiles, device choice and seeding (introduced in notebook ``00_setup``).

A *profile* bundles every knob that decides how long a notebook runs: image size, network
width, number of images, epochs, batch size, whether to start from ImageNet weights. The
same notebook runs in seconds under ``smoke`` (CI), in minutes under ``cpu`` (a laptop, the
rendered book) and runs the full experiment under ``gpu`` (Colab, Gradient).

The profile is picked by the environment variable ``COURSE_PROFILE``; when it is unset,
``gpu`` is used if CUDA is available, else ``cpu``.

This module imports torch lazily so that ``python -m course_lib.config`` can validate
``COURSE_PROFILE`` before anything heavy is installed (the Makefile does exactly that).
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import asdict, dataclass

ENV_VAR = "COURSE_PROFILE"


class ProfileError(ValueError):
    """``COURSE_PROFILE`` names no known profile."""


@dataclass(frozen=True)
class Profile:
    """Everything that scales a notebook's cost. Frozen: pass a modified copy with
    :func:`dataclasses.replace` instead of mutating the active profile."""

    name: str
    image_size: int  # square side in pixels; a multiple of 32 (five 2x poolings in VGG)
    width: float  # VGG channel multiplier: 1.0 is the real VGG16 (64 ... 512 channels)
    n_images: int  # synthetic images to generate (the gpu profile prefers the Kaggle data)
    epochs: int
    batch_size: int
    pretrained: bool  # start from ImageNet weights (needs a download: gpu only)
    num_workers: int  # DataLoader worker processes
    seeds: tuple[int, ...]  # seeds for experiments that report a spread over runs
    description: str


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="smoke",
            image_size=64,
            width=1 / 8,
            n_images=320,
            epochs=1,
            batch_size=32,
            pretrained=False,
            num_workers=0,
            seeds=(0,),
            description="CI and tests: tiny images and network, one epoch; checks that code runs",
        ),
        Profile(
            name="cpu",
            image_size=96,
            width=1 / 4,
            n_images=2000,
            epochs=8,
            batch_size=32,
            pretrained=False,
            num_workers=2,
            seeds=(0, 1),
            description="a laptop and the rendered book: a few minutes per notebook on 2 cores",
        ),
        Profile(
            name="gpu",
            image_size=224,
            width=1.0,
            n_images=10000,
            epochs=20,
            batch_size=64,
            pretrained=True,
            num_workers=8,
            seeds=(0, 1, 2),
            description="Colab / Gradient: the full experiment, Kaggle data when present",
        ),
    )
}


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # validating the profile must not need torch
        return False
    return torch.cuda.is_available()


def profile_name() -> str:
    """The name of the active profile, validated (raises :class:`ProfileError`)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return "gpu" if _cuda_available() else "cpu"
    name = raw.lower()
    if name not in PROFILES:
        valid = ", ".join(PROFILES)
        raise ProfileError(
            f"{ENV_VAR}={raw!r} is not a run profile. Valid values: {valid} "
            f"(or leave {ENV_VAR} unset: gpu when CUDA is available, else cpu)."
        )
    return name


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, or the active one (``COURSE_PROFILE``) when ``name`` is None."""
    if name is None:
        name = profile_name()
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def get_device():
    """The best available ``torch.device``: CUDA, then Apple's MPS, then the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def fast_mixed_precision(device=None) -> bool:
    """Whether mixed precision (``fit(amp=True)``) speeds training up on ``device``.

    True on CUDA GPUs, and on CPUs with native bfloat16 instructions (AVX512-BF16 or AMX,
    as oneDNN reports them); elsewhere bf16 is emulated and slower than float32.
    """
    import torch

    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private query: absent from some builds
        return False


def seed_everything(seed: int, deterministic: bool = False) -> int:
    """Seed Python, NumPy and torch (all devices). Returns ``seed``.

    With ``deterministic=True`` torch is also asked to use deterministic kernels
    (slower on the GPU; on the CPU the course's code is deterministic anyway).
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA and MPS generators too
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses (DataLoader workers inherit seeds)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = False
    return seed


def describe(profile: Profile | None = None) -> str:
    """A one-paragraph, human-readable summary of a profile."""
    p = profile or get_profile()
    fields = asdict(p)
    desc = fields.pop("description")
    body = ", ".join(f"{k}={v}" for k, v in fields.items() if k != "name")
    return f"profile {p.name!r} ({desc}): {body}"


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.config``: print the active profile, or a readable error."""
    try:
        print(describe())
    except ProfileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
