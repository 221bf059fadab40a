"""The GPU path: run with ``pytest -m gpu`` on a machine with CUDA; elsewhere each test skips, saying why.

What a Colab or Gradient reader runs — ``fit`` on CUDA, mixed precision (bf16 where the GPU
has it, fp16 with a gradient scaler where it has not, as on Colab's T4), ``channels_last``,
``torch.compile``, the batch augmentation on the device, and exact resume — checked against
the CPU, which the rest of the suite covers on every machine.
"""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_lib.data import BatchAugment, load_melanoma, make_loaders, split_by_patient
from course_lib.models import AttnVGG
from course_lib.runspec import TrainConfig
from course_lib.saliency import collect_maps
from course_lib.train import fit

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU: run `pytest -m gpu` on a GPU machine",
    ),
]


def _toy_loader(n=64, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(n, 3, 32, 32)
    y = (x[:, 0].mean((1, 2)) > 0).float()
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _toy_model():
    torch.manual_seed(1)  # no BatchNorm: CUDA and CPU kernels then agree to rounding
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 1),
    )


def _fit_toy(device, **switches):
    """Two epochs of the toy model on the toy data: the history."""
    loader = _toy_loader()
    return fit(
        _toy_model(),
        loader,
        loader,
        TrainConfig(epochs=2, device=device, **switches),
        progress=False,
        verbose=False,
    )


def test_fit_on_cuda_equals_the_cpu_within_rounding():
    cpu, gpu = _fit_toy("cpu"), _fit_toy("cuda")
    pd.testing.assert_frame_equal(
        cpu.drop(columns="seconds"),
        gpu.drop(columns="seconds"),
        check_exact=False,
        rtol=1e-3,
        atol=1e-4,
    )


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_mixed_precision_trains_attnvgg_without_nan(amp, lesion_root):
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    train, val, _ = split_by_patient(
        load_melanoma(lesion_root), 0.25, test_fraction=0, seed=0
    )
    loaders = make_loaders(train, val, 64, 16, device="cuda")
    # fp16 goes through torch.amp.GradScaler
    history = fit(
        AttnVGG(1, width=0.25),
        *loaders,
        TrainConfig(epochs=2, amp=amp, device="cuda"),
        progress=False,
        verbose=False,
    )
    assert history[["train_loss", "val_loss", "val_auc"]].notna().all().all()


@pytest.mark.parametrize("switch", ["channels_last", "compile"])
def test_speed_switches_on_cuda_change_speed_not_results(switch):
    plain, fast = _fit_toy("cuda"), _fit_toy("cuda", **{switch: True})
    pd.testing.assert_frame_equal(
        plain.drop(columns="seconds"),
        fast.drop(columns="seconds"),
        check_exact=False,
        rtol=1e-3,
        atol=1e-4,
    )


def test_batch_augmentation_on_cuda_equals_the_cpu_for_the_same_parameters():
    torch.manual_seed(0)
    images = (torch.rand(8, 3, 64, 64) * 255).to(torch.uint8)
    masks = (torch.rand(8, 1, 64, 64) > 0.5).to(torch.uint8)
    augment = BatchAugment()
    params = augment.sample(8, torch.Generator().manual_seed(3))
    on_cpu, cpu_masks = augment.apply(images, params, masks)
    on_gpu, gpu_masks = augment.apply(images.cuda(), params, masks.cuda())
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=2e-4, rtol=0)
    assert (
        gpu_masks.cpu() != cpu_masks
    ).float().mean() < 0.002  # nearest sampling: ties may round apart


def test_device_loader_delivers_augmented_batches_on_cuda(lesion_root):
    train, val, _ = split_by_patient(
        load_melanoma(lesion_root), 0.25, test_fraction=0, seed=0
    )
    train_loader, val_loader = make_loaders(
        train, val, 64, 16, num_workers=2, with_mask=True, device="cuda"
    )
    assert train_loader.pin_memory
    images, targets, masks = next(iter(train_loader))
    assert (
        images.is_cuda
        and targets.is_cuda
        and masks.is_cuda
        and images.dtype == torch.float32
    )
    assert set(masks.unique().tolist()) <= {0.0, 1.0}


def test_maps_from_a_cuda_loader_equal_those_from_the_cpu(lesion_root):
    """Chapter 11 collects maps from the profile's loaders, which deliver batches on the GPU."""
    train, val, _ = split_by_patient(
        load_melanoma(lesion_root), 0.25, test_fraction=0, seed=0
    )
    torch.manual_seed(0)
    model = AttnVGG(num_classes=1, width=1 / 8).eval()
    maps = {}
    for device in ("cpu", "cuda"):
        _, loader = make_loaders(
            train, val, 64, 16, num_workers=0, with_mask=True, device=device
        )
        maps[device] = collect_maps(copy.deepcopy(model).to(device), loader)
    cpu, gpu = maps["cpu"], maps["cuda"]
    assert cpu.keys() == gpu.keys()
    np.testing.assert_array_equal(gpu["target"], cpu["target"])
    np.testing.assert_array_equal(gpu["mask"], cpu["mask"])
    # cuDNN convolutions run in TF32 by default: close, not equal
    np.testing.assert_allclose(gpu["probability"], cpu["probability"], atol=1e-2)
    for name in ("pool-3 attention", "pool-4 attention"):
        np.testing.assert_allclose(gpu[name], cpu[name], atol=1e-2)
    assert np.abs(gpu["Grad-CAM"] - cpu["Grad-CAM"]).mean() < 0.02
