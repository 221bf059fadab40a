"""Image + mask augmentation with torchvision transforms v2 (notebook ``01_lesion_data``).

A lesion mask must follow its image through every *geometric* change (crop, flip,
rotation) and ignore every *photometric* one (colour jitter, normalisation). Wrapping the
mask as ``tv_tensors.Mask`` tells torchvision exactly that: one call transforms both.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "train_transforms",
    "eval_transforms",
    "denormalize",
]

# ImageNet statistics: what pretrained VGG16 weights expect (the gpu profile uses them);
# the course normalises the same way in every profile so that one pipeline serves all.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transforms(image_size: int) -> v2.Compose:
    """Random crop-and-resize, flips, small rotations and colour jitter; then normalise.

    Lesions have no canonical orientation, so vertical flips and rotations are as valid as
    horizontal ones. Photometric jitter is mild: colour is a diagnostic cue (the C of ABCD).
    """
    return v2.Compose(
        [
            v2.RandomResizedCrop(
                image_size, scale=(0.7, 1.0), ratio=(0.9, 1.1), antialias=True
            ),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomRotation(20),
            v2.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.05),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
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
