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

__all__ = [
    "AugmentParams",
    "BatchAugment",
    "BatchNormalize",
    "GRAY_WEIGHTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

# ImageNet statistics: what pretrained VGG16 weights expect (the gpu profile uses them);
# the course normalises the same way in every profile so that one pipeline serves all.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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


@dataclass(frozen=True)
class BatchAugment:
    """Random crop, flips, rotation and colour jitter of ``uint8`` batches, then normalisation.

    The course's training augmentation, and the one place its constants live (the per-image
    :func:`~course_lib.data.train_transforms` of notebook 01 reads them from here): a crop of
    70–100 % of the area with aspect 0.9–1.1, flips with probability ½ each, rotation within
    ±20°, brightness and contrast ±10 %, saturation ±5 %, ImageNet normalisation.

    A frozen dataclass: two equal settings compare equal, and a run's fingerprint
    (:class:`course_lib.runspec.DataSpec`) records every field, so a changed augmentation
    trains a new run instead of reusing an old one.

    ``augment(images, masks=None, generator=None)`` takes ``(N, 3, H, W)`` ``uint8`` images
    (and ``(N, 1, H, W)`` masks) on any device and returns float images normalised for the
    network (and float masks in {0, 1}), on the same device, at the same size.
    ``cpu_chunk``: on a CPU, groups of that many images stay in cache (2x faster); it changes
    no number.
    """

    scale: tuple[float, float] = (0.7, 1.0)
    ratio: tuple[float, float] = (0.9, 1.1)
    degrees: float = 20.0
    flip_p: float = 0.5
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.05
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    cpu_chunk: int = 8

    def __post_init__(self):
        for name in ("scale", "ratio"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high")
        if not 0 <= self.flip_p <= 1:
            raise ValueError(
                f"flip_p must be a probability in [0, 1], not {self.flip_p}"
            )
        for name in ("degrees", "brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")

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


@dataclass(frozen=True)
class BatchNormalize:
    """The evaluation transform: ``uint8`` batches to normalised floats (masks to floats); no randomness."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ):
        x = _normalise_(images.float().div_(255), self.mean, self.std)
        return x, (None if masks is None else masks.float())
