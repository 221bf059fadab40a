"""Image + mask augmentation with torchvision transforms v2 (notebook ``01_lesion_data``).

The per-image pipeline that notebook 01 teaches; training runs the batched
:class:`~course_lib.data.augment.BatchAugment`, and both read the same constants from it.

A lesion mask must follow its image through every *geometric* change (crop, flip,
rotation) and ignore every *photometric* one (colour jitter, normalisation). Wrapping the
mask as ``tv_tensors.Mask`` tells torchvision exactly that: one call transforms both.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from .augment import IMAGENET_MEAN, IMAGENET_STD, BatchAugment

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "train_transforms",
    "eval_transforms",
    "denormalize",
]


def train_transforms(
    image_size: int, augment: BatchAugment | None = None
) -> v2.Compose:
    """Random crop-and-resize, flips, small rotations and colour jitter; then normalise.

    Lesions have no canonical orientation, so vertical flips and rotations are as valid as
    horizontal ones. Photometric jitter is mild: colour is a diagnostic cue (the C of ABCD).
    The ranges are ``augment``'s (by default the course's training augmentation).
    """
    a = augment or BatchAugment()
    return v2.Compose(
        [
            v2.RandomResizedCrop(
                image_size, scale=a.scale, ratio=a.ratio, antialias=True
            ),
            v2.RandomHorizontalFlip(a.flip_p),
            v2.RandomVerticalFlip(a.flip_p),
            v2.RandomRotation(a.degrees),
            v2.ColorJitter(
                brightness=a.brightness, contrast=a.contrast, saturation=a.saturation
            ),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(a.mean, a.std),
        ]
    )


def eval_transforms(image_size: int) -> v2.Compose:
    """Deterministic: resize to ``image_size`` and normalise."""
    return v2.Compose(
        [
            v2.Resize((image_size, image_size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo :data:`IMAGENET_MEAN`/:data:`IMAGENET_STD` normalisation; values clipped to [0, 1].

    Accepts ``(3, H, W)`` or ``(N, 3, H, W)``; returns the same shape, ready to plot.
    """
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1)
    return (images * std + mean).clamp(0, 1)
