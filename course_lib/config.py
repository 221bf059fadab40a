"""Run profiles, device choice and seeding (introduced in notebook ``00_setup``).

A *profile* bundles every knob that decides how long a notebook runs: image size, network
width, number of images, epochs, batch size, whether to start from ImageNet weights. The
same notebook runs in seconds under ``smoke`` (CI), in minutes under ``cpu`` (a laptop, the
rendered book) and runs the full experiment under ``gpu`` (Colab, Gradient).

The profile is picked by the environment variable ``COURSE_PROFILE``; when it is unset,
``gpu`` is used if CUDA is available, else ``cpu``. Three more variables adjust a machine:

- ``COURSE_PRETRAINED``: ``0`` trains from scratch instead of downloading ImageNet weights (an
  offline GPU machine), ``1`` asks for them in any profile, a file path reads them from that
  file (``vgg16_bn-6c64b313.pth``, downloaded elsewhere);
- ``COURSE_AMP``: ``0`` turns mixed precision off, ``1`` on (bf16 on a CPU even without native
  support, which is slower there); unset, it is on where it is fast (:func:`fast_mixed_precision`);
- ``COURSE_DEVICE``: ``cpu``, ``cuda`` or ``mps`` instead of the automatic choice (e.g. ``cpu`` on
  a Mac when an operation is missing on its GPU).

This module imports torch lazily so that ``python -m course_lib.config`` can validate
``COURSE_PROFILE`` before anything heavy is installed (the Makefile does exactly that).
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ENV_VAR = "COURSE_PROFILE"
PRETRAINED_VAR, AMP_VAR, DEVICE_VAR = "COURSE_PRETRAINED", "COURSE_AMP", "COURSE_DEVICE"
_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ProfileError(ValueError):
    """``COURSE_PROFILE`` names no known profile."""


@dataclass(frozen=True)
class Profile:
    """Everything that scales a notebook's cost. Frozen: pass a modified copy with
    :func:`dataclasses.replace` instead of mutating the active profile."""

    name: str
    image_size: int  # square side in pixels; a multiple of 32 (five 2x poolings in VGG)
    width: float  # VGG channel multiplier: 1.0 is the real VGG16 (64 ... 512 channels)
    # synthetic images to generate (the gpu profile prefers the Kaggle data)
    n_images: int
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
            image_size=64,
            width=1 / 4,
            n_images=3000,
            epochs=8,
            batch_size=32,
            pretrained=False,
            num_workers=0,  # decoding a 64 px JPEG costs ~0.1 ms: worker processes would only add start-up
            seeds=(0, 1),
            description="a laptop and the rendered book: at most 5 minutes per notebook on 2 cores, in float32",
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


def imagenet_weights_file() -> Path | None:
    """The local ImageNet weights file named by ``COURSE_PRETRAINED``, if it names one."""
    raw = os.environ.get(PRETRAINED_VAR, "").strip()
    if not raw or raw.lower() in _YES + _NO:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ProfileError(
            f"{PRETRAINED_VAR}={raw!r} is neither 0 nor 1 nor an existing weights file"
        )
    return path


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, or the active one (``COURSE_PROFILE``) when ``name`` is None.

    ``COURSE_PRETRAINED`` (``0``, ``1`` or a weights file) overrides the profile's ``pretrained``.
    """
    if name is None:
        name = profile_name()
    if name not in PROFILES:
        raise ProfileError(
            f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}"
        )
    profile = PROFILES[name]
    raw = os.environ.get(PRETRAINED_VAR, "").strip().lower()
    if raw in _NO:
        return replace(profile, pretrained=False)
    if raw in _YES or imagenet_weights_file() is not None:
        return replace(profile, pretrained=True)
    return profile


def get_device():
    """The best available ``torch.device``: CUDA, then Apple's MPS, then the CPU.

    ``COURSE_DEVICE`` (``cpu``, ``cuda``, ``mps``) chooses instead; asking for one that is not
    there is a :class:`ProfileError` that says what is.
    """
    import torch

    mps = getattr(torch.backends, "mps", None)
    present = {
        "cuda": torch.cuda.is_available(),
        "mps": mps is not None and mps.is_available(),
        "cpu": True,
    }
    wanted = os.environ.get(DEVICE_VAR, "").strip().lower()
    if wanted:
        if wanted not in present:
            raise ProfileError(
                f"{DEVICE_VAR}={wanted!r} is not a device; use cpu, cuda or mps"
            )
        if not present[wanted]:
            there = ", ".join(name for name, ok in present.items() if ok)
            raise ProfileError(
                f"{DEVICE_VAR}={wanted} but this machine has no {wanted} device (it has: {there})"
            )
        return _this_process(torch.device(wanted))
    chosen = next(name for name in ("cuda", "mps", "cpu") if present[name])
    return _this_process(torch.device(chosen))


def _this_process(device):
    """Under ``torchrun`` (``LOCAL_RANK`` set), each process's own GPU: ``cuda:<local rank>``."""
    import torch

    rank = os.environ.get("LOCAL_RANK", "")
    if device.type == "cuda" and device.index is None and rank.isdigit():
        return torch.device("cuda", int(rank))
    return device


def native_bf16(device=None) -> bool:
    """Whether ``device`` computes in bfloat16 natively: CUDA GPUs with bf16, CPUs with AVX512-BF16
    or AMX (as oneDNN reports them). Elsewhere bf16 is emulated, and slower than float32."""
    import torch

    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private query: absent from some builds
        return False


def fast_mixed_precision(device=None) -> bool:
    """Whether to train with mixed precision (``fit(amp=...)``) on ``device``.

    ``COURSE_AMP=0`` or ``1`` decides; otherwise True on CUDA GPUs (bf16, or fp16 with a gradient
    scaler) and on CPUs with native bf16 (:func:`native_bf16`), False elsewhere.
    """
    import torch

    raw = os.environ.get(AMP_VAR, "").strip().lower()
    if raw in _NO:
        return False
    if raw in _YES:
        return True
    if raw:
        raise ProfileError(
            f"{AMP_VAR}={raw!r}: use 0 (off) or 1 (on), or leave it unset"
        )
    device = torch.device(device) if device is not None else get_device()
    return device.type == "cuda" or native_bf16(device)


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
    # for subprocesses (DataLoader workers inherit seeds)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace for reproducible matrix products; it reads this
        # variable when CUDA starts, so set it before the first CUDA operation
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
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
