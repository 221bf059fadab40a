"""Augmentation of whole batches on the training device (introduced in notebook ``01_lesion_data``).

The DataLoader's workers only decode and resize (``uint8``, no randomness); the random part
of the pipeline runs here, on a whole batch at once, on the device that trains:

- **geometry**: a random resized crop, horizontal and vertical flips and a small rotation,
  each with its own random parameters per image, are *composed* into one 2×3 affine matrix
  per image and applied by a single ``affine_grid`` + ``grid_sample`` call — one resampling
  instead of three, so the picture is also interpolated only once;
- **colour**: brightness, contrast and saturation jitter are linear in the pixel values, so
  the three compose into one 3×3 matrix and an offset per image, applied by one batched
  matrix product; then the values are clamped to [0, 1] and normalised. (torchvision clamps
  after each of the three; the composed form clamps once, which differs only where a
  brightened pixel passed 1 on the way — by at most a few thousandths.)

Lesion masks get the same geometry (nearest-neighbour sampling, so they stay binary) and no
colour change. Every random number is drawn from a ``torch.Generator`` the caller passes,
so a batch's augmentation is a function of that generator's seed alone: the training loop
seeds it from (seed, epoch, step), which makes a resumed run draw exactly the augmentations
of an uninterrupted one, whatever the number of DataLoader workers.

Why not a library? ``torchvision.transforms.v2`` applies *one* set of random parameters to a
whole batch, and Kornia, which draws them per image, makes one pass over the batch per
operation: on a CPU core it cost about twice the per-image pipeline it would replace
(``benchmarks/loader_throughput.py`` measures both). The two fused passes here cost less than
the per-image pipeline on the CPU as well; the tests check each piece against torchvision's
functional transforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["AugmentParams", "BatchAugment", "BatchNormalize", "GRAY_WEIGHTS"]

#: The luma weights torchvision uses to turn RGB into gray (contrast and saturation use them).
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


@dataclass
class AugmentParams:
    """The random parameters of one batch, one entry per image (CPU tensors of shape ``(N,)``).

    ``crop_w``, ``crop_h``: the crop's width and height as fractions of the image side;
    ``centre_x``, ``centre_y``: its centre in [-1, 1] (``grid_sample``'s coordinates);
    ``flip_x``, ``flip_y``: -1 to flip, 1 not to; ``angle``: rotation in degrees, counter-clockwise;
    ``brightness``, ``contrast``, ``saturation``: multiplicative factors (1 leaves the image).
    """

    crop_w: torch.Tensor
    crop_h: torch.Tensor
    centre_x: torch.Tensor
    centre_y: torch.Tensor
    flip_x: torch.Tensor
    flip_y: torch.Tensor
    angle: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor

    @classmethod
    def identity(cls, n: int) -> AugmentParams:
        """Parameters that leave ``n`` images unchanged (useful to test one operation at a time)."""
        one, zero = torch.ones(n), torch.zeros(n)
        return cls(one, one, zero, zero, one, one, zero, one, one, one)

    def __len__(self) -> int:
        return len(self.angle)

    def slice(self, start: int, stop: int) -> AugmentParams:
        return AugmentParams(*(getattr(self, f.name)[start:stop] for f in fields(self)))


def affine_matrices(p: AugmentParams) -> torch.Tensor:
    """``(N, 2, 3)`` matrices for ``affine_grid``: where each output pixel samples its input.

    The picture is cropped, flipped, then rotated (the order of the per-image pipeline), so an
    output position ``q`` reads the input at ``centre + D · F · R(-angle) · q`` with ``D`` the
    crop's half-extents and ``F`` the flips. ``grid_sample``'s y axis points down the image,
    hence the sign that makes a positive angle turn the picture counter-clockwise on screen.
    """
    a = p.angle * (math.pi / 180)
    cos, sin = torch.cos(a), torch.sin(a)
    # R(-angle) in a y-down frame: [[cos, -sin], [sin, cos]]
    rotation = torch.stack(
        [torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2
    )
    # D · F, a diagonal
    scale = torch.stack([p.crop_w * p.flip_x, p.crop_h * p.flip_y], -1)
    linear = scale[:, :, None] * rotation
    return torch.cat(
        [linear, torch.stack([p.centre_x, p.centre_y], -1)[:, :, None]], dim=2
    )


def colour_matrices(p: AugmentParams, gray_mean: torch.Tensor):
    """``(N, 3, 3)`` matrices ``M`` and ``(N, 3)`` offsets ``b``: brightness, contrast, saturation.

    Each is linear: brightness ``x → βx``; contrast ``x → κx + (1-κ)·μ`` with ``μ`` the image's
    mean gray value (after brightness: ``βμ₀``); saturation ``x → σx + (1-σ)·gray(x)``, i.e. the
    matrix ``σI + (1-σ)·1wᵀ``. Composed: ``M = κβ·(σI + (1-σ)·1wᵀ)`` and ``b = (1-κ)·β·μ₀·1``
    (the saturation matrix leaves a gray offset as it is, since ``wᵀ1 = 1``).
    """
    w = torch.tensor(GRAY_WEIGHTS, dtype=gray_mean.dtype, device=gray_mean.device)
    s = p.saturation.to(gray_mean)[:, None, None]
    eye = torch.eye(3, dtype=gray_mean.dtype, device=gray_mean.device)
    # rows: every output channel mixes in gray
    saturate = s * eye + (1 - s) * w.expand(3, 3)
    b, k = p.brightness.to(gray_mean), p.contrast.to(gray_mean)
    matrix = (k * b)[:, None, None] * saturate
    offset = ((1 - k) * b * gray_mean)[:, None].expand(-1, 3)
    return matrix, offset


def _normalise_(x: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


class BatchAugment:
    """Random crop, flips, rotation and colour jitter of ``uint8`` batches, then normalisation.

    The defaults match the per-image :func:`~course_lib.data.train_transforms`: a crop of 70–100 %
    of the area with aspect 0.9–1.1, flips with probability ½ each, rotation within ±20°,
    brightness and contrast ±10 %, saturation ±5 %, ImageNet normalisation.

    ``augment(images, masks=None, generator=None)`` takes ``(N, 3, H, W)`` ``uint8`` images
    (and ``(N, 1, H, W)`` masks) on any device and returns float images normalised for the
    network (and float masks in {0, 1}), on the same device, at the same size.
    """

    def __init__(
        self,
        scale=(0.7, 1.0),
        ratio=(0.9, 1.1),
        degrees: float = 20.0,
        flip_p: float = 0.5,
        brightness: float = 0.1,
        contrast: float = 0.1,
        saturation: float = 0.05,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        cpu_chunk: int = 8,
    ):
        self.scale, self.ratio, self.degrees, self.flip_p = (
            scale,
            ratio,
            degrees,
            flip_p,
        )
        self.brightness, self.contrast, self.saturation = (
            brightness,
            contrast,
            saturation,
        )
        self.mean, self.std = mean, std
        # on a CPU, small groups of images stay in cache (2x faster)
        self.cpu_chunk = cpu_chunk

    def sample(self, n: int, generator: torch.Generator | None = None) -> AugmentParams:
        """Draw the parameters of ``n`` images (on the CPU, from ``generator``)."""

        def uniform(low, high):
            return low + (high - low) * torch.rand(n, generator=generator)

        area = uniform(*self.scale)
        aspect = torch.exp(uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
        crop_w, crop_h = (
            (area * aspect).sqrt().clamp(max=1),
            (area / aspect).sqrt().clamp(max=1),
        )
        # the crop lies inside the image: its centre may move by what the crop leaves free
        centre_x, centre_y = (
            uniform(-1, 1) * (1 - crop_w),
            uniform(-1, 1) * (1 - crop_h),
        )

        def flips():
            return torch.where(
                torch.rand(n, generator=generator) < self.flip_p, -1.0, 1.0
            )

        flip_x, flip_y = flips(), flips()
        angle = uniform(-self.degrees, self.degrees)
        return AugmentParams(
            crop_w,
            crop_h,
            centre_x,
            centre_y,
            flip_x,
            flip_y,
            angle,
            uniform(1 - self.brightness, 1 + self.brightness),
            uniform(1 - self.contrast, 1 + self.contrast),
            uniform(1 - self.saturation, 1 + self.saturation),
        )

    def apply(
        self,
        images: torch.Tensor,
        params: AugmentParams,
        masks: torch.Tensor | None = None,
    ):
        """The augmentation with given parameters (deterministic): ``(images, masks)``."""
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected uint8 images shaped (N, 3, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if len(params) != len(images):
            raise ValueError(f"{len(params)} parameter sets for {len(images)} images")
        step = (
            self.cpu_chunk
            if images.device.type == "cpu" and self.cpu_chunk
            else len(images)
        )
        outputs, warped_masks = [], []
        for start in range(0, len(images), max(step, 1)):
            part = slice(start, start + step)
            out, mask = self._apply(
                images[part],
                params.slice(start, start + step),
                None if masks is None else masks[part],
            )
            outputs.append(out)
            warped_masks.append(mask)
        images = torch.cat(outputs)
        return images, (None if masks is None else torch.cat(warped_masks))

    def _apply(self, images, p: AugmentParams, masks):
        x = images.float().div_(255)
        theta = affine_matrices(p).to(x)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(
            x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        gray = torch.tensor(GRAY_WEIGHTS, dtype=x.dtype, device=x.device)
        gray_mean = torch.einsum("nchw,c->n", x, gray) / (x.shape[-1] * x.shape[-2])
        matrix, offset = colour_matrices(p, gray_mean)
        x = (
            torch.baddbmm(offset[:, :, None], matrix, x.flatten(2))
            .view_as(x)
            .clamp_(0, 1)
        )
        x = _normalise_(x, self.mean, self.std)
        if masks is not None:
            masks = F.grid_sample(
                masks.float(),
                grid,
                mode="nearest",
                padding_mode="zeros",
                align_corners=False,
            )
        return x, masks

    def __call__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ):
        return self.apply(images, self.sample(len(images), generator), masks)

    def __repr__(self) -> str:
        return (
            f"BatchAugment(scale={self.scale}, ratio={self.ratio}, degrees={self.degrees}, "
            f"flip_p={self.flip_p}, brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation})"
        )


class BatchNormalize:
    """The evaluation transform: ``uint8`` batches to normalised floats (masks to floats); no randomness."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.mean, self.std = mean, std

    def __call__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ):
        x = _normalise_(images.float().div_(255), self.mean, self.std)
        return x, (None if masks is None else masks.float())

    def __repr__(self) -> str:
        return "BatchNormalize()"
