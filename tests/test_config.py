"""course_lib.config: profiles, device, seeding; and the Makefile's early profile check."""

import os
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import torch

from course_lib import config
from course_lib.config import (
    PROFILES,
    ProfileError,
    get_device,
    get_profile,
    seed_everything,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu"])
def test_profile_from_environment(monkeypatch, name):
    monkeypatch.setenv("COURSE_PROFILE", name)
    p = get_profile()
    assert p.name == name
    for field in (
        "image_size",
        "width",
        "n_images",
        "epochs",
        "batch_size",
        "pretrained",
    ):
        assert hasattr(p, field)
    assert p.image_size % 32 == 0


def test_profile_is_case_and_space_tolerant(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", " Smoke ")
    assert get_profile().name == "smoke"


def test_profiles_scale_up():
    smoke, cpu, gpu = PROFILES["smoke"], PROFILES["cpu"], PROFILES["gpu"]
    # the cpu profile keeps smoke's 64 px and buys its accuracy with width, data and epochs
    assert smoke.image_size <= cpu.image_size < gpu.image_size == 224
    assert smoke.width < cpu.width < gpu.width == 1.0
    assert smoke.epochs == 1 < cpu.epochs
    assert smoke.n_images < cpu.n_images
    assert gpu.pretrained and not cpu.pretrained and not smoke.pretrained


def test_default_profile_follows_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(config, "_cuda_available", lambda: True)
    assert get_profile().name == "gpu"
    monkeypatch.setattr(config, "_cuda_available", lambda: False)
    assert get_profile().name == "cpu"


def test_unknown_profile_lists_valid_ones(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "nonsense")
    with pytest.raises(ProfileError) as info:
        get_profile()
    message = str(info.value)
    assert "'nonsense'" in message
    for name in PROFILES:
        assert name in message
    with pytest.raises(ProfileError):
        get_profile("fast")


def test_profile_is_frozen():
    with pytest.raises(FrozenInstanceError):
        PROFILES["smoke"].epochs = 3


def test_get_device_returns_a_usable_device():
    device = get_device()
    assert isinstance(device, torch.device)
    assert device.type in {"cuda", "mps", "cpu"}
    assert torch.ones(2, device=device).sum().item() == 2.0


def test_seed_everything_repeats_every_generator():
    import random

    import numpy as np

    def draw():
        return random.random(), np.random.rand(), torch.randn(4)

    assert seed_everything(7) == 7
    first = draw()
    seed_everything(7)
    second = draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])
    seed_everything(8)
    assert not torch.equal(draw()[2], first[2])


def _run_config_cli(value):
    env = {**os.environ, "COURSE_PROFILE": value}
    return subprocess.run(
        [sys.executable, "-m", "course_lib.config"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_cli_prints_profile_or_readable_error():
    ok = _run_config_cli("cpu")
    assert ok.returncode == 0 and "profile 'cpu'" in ok.stdout
    bad = _run_config_cli("nonsense")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "Valid values: smoke, cpu, gpu" in bad.stderr


def test_make_rejects_unknown_profile_before_setup():
    """`COURSE_PROFILE=nonsense make test` stops at the first step, with the readable error."""
    env = {**os.environ, "COURSE_PROFILE": "nonsense"}
    run = subprocess.run(
        ["make", "--no-print-directory", "--dry-run", "test"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    # a dry run lists the recipe: the profile check comes before any install step
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert "course_lib.config" in lines[0]
    real = subprocess.run(
        ["make", "check-profile"], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert real.returncode != 0
    assert "is not a run profile" in real.stderr and "Traceback" not in real.stderr


def test_fast_mixed_precision_follows_the_device(monkeypatch):
    import torch

    from course_lib.config import fast_mixed_precision

    monkeypatch.delenv("COURSE_AMP", raising=False)
    # every CUDA GPU: bf16 or fp16 with a scaler
    assert fast_mixed_precision("cuda") is True
    assert fast_mixed_precision("mps") is False
    assert fast_mixed_precision("cpu") == bool(
        torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_device_order_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    """The device choice on a Mac (mps) is logic only here: no MPS device can run on this machine."""
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert get_device().type == expected


def test_course_device_overrides_the_choice_and_names_what_is_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    # a Mac reader whose GPU lacks an operation
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device().type == "cpu"
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(config.ProfileError, match="no cuda device .it has: mps, cpu."):
        get_device()
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(config.ProfileError, match="not a device"):
        get_device()


def test_course_amp_switches_mixed_precision(monkeypatch):
    from course_lib.config import fast_mixed_precision

    monkeypatch.setenv("COURSE_AMP", "0")
    assert fast_mixed_precision("cuda") is False
    monkeypatch.setenv("COURSE_AMP", "1")
    assert fast_mixed_precision("cpu") is True
    monkeypatch.setenv("COURSE_AMP", "maybe")
    with pytest.raises(config.ProfileError, match="COURSE_AMP"):
        fast_mixed_precision("cpu")


def test_course_pretrained_turns_imagenet_weights_off_or_on(monkeypatch):
    monkeypatch.setenv("COURSE_PRETRAINED", "0")
    # an offline GPU machine trains from scratch
    assert get_profile("gpu").pretrained is False
    monkeypatch.setenv("COURSE_PRETRAINED", "1")
    assert get_profile("cpu").pretrained is True
    monkeypatch.delenv("COURSE_PRETRAINED")
    assert (
        get_profile("gpu").pretrained is True and get_profile("cpu").pretrained is False
    )


def test_deterministic_seeding_asks_torch_and_cublas_for_reproducible_kernels(
    monkeypatch,
):
    import torch

    from course_lib.config import seed_everything

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = torch.are_deterministic_algorithms_enabled()
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        # cuBLAS reads it when CUDA starts; without it, matrix products may differ run to run
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(before)
