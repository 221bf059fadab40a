"""course_lib.data.augment: batch augmentation on the device, checked against torchvision's functionals."""

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from course_lib.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentParams,
    BatchAugment,
    BatchNormalize,
)

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    smooth = torch.nn.functional.interpolate(
        torch.rand(3, 3, 8, 8), size=(48, 48), mode="bicubic", align_corners=False
    )
    return (smooth.clamp(0.05, 0.95) * 255).round().to(torch.uint8)


def _pixels(normalised):
    return normalised * STD + MEAN


def _with(n, **changes):
    params = AugmentParams.identity(n)
    for name, value in changes.items():
        setattr(params, name, torch.full((n,), float(value)))
    return params


def test_identity_parameters_only_normalise(images):
    out, _ = BatchAugment().apply(images, _with(3))
    torch.testing.assert_close(_pixels(out), images.float() / 255, atol=1e-6, rtol=0)
    evaluated, _ = BatchNormalize()(images)
    torch.testing.assert_close(out, evaluated)


@pytest.mark.parametrize("flip, dim", [("flip_x", -1), ("flip_y", -2)])
def test_flips_are_exact(images, flip, dim):
    out, _ = BatchAugment().apply(images, _with(3, **{flip: -1}))
    torch.testing.assert_close(
        _pixels(out), images.float().flip(dim) / 255, atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("angle", [-17.0, 9.0])
def test_rotation_matches_torchvision_rotate(images, angle):
    out, _ = BatchAugment().apply(images, _with(3, angle=angle))
    expected = TF.rotate(
        images.float() / 255, angle, interpolation=InterpolationMode.BILINEAR
    )
    torch.testing.assert_close(
        _pixels(out)[..., 3:-3, 3:-3], expected[..., 3:-3, 3:-3], atol=1e-4, rtol=0
    )


def test_crop_matches_torchvision_resized_crop(images):
    # the top-right quarter, enlarged to the whole picture
    out, _ = BatchAugment().apply(
        images, _with(3, crop_w=0.5, crop_h=0.5, centre_x=0.5, centre_y=-0.5)
    )
    expected = TF.resized_crop(
        images.float() / 255,
        0,
        24,
        24,
        24,
        [48, 48],
        interpolation=InterpolationMode.BILINEAR,
        antialias=False,
    )
    # inside the crop both sample the same points; at its border grid_sample may read the neighbour pixel
    torch.testing.assert_close(
        _pixels(out)[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    "name, factor, reference",
    [
        ("brightness", 1.08, TF.adjust_brightness),
        ("contrast", 0.91, TF.adjust_contrast),
        ("saturation", 1.05, TF.adjust_saturation),
    ],
)
def test_each_colour_change_matches_torchvision(images, name, factor, reference):
    out, _ = BatchAugment().apply(images, _with(3, **{name: factor}))
    torch.testing.assert_close(
        _pixels(out), reference(images.float() / 255, factor), atol=1e-5, rtol=0
    )


def test_composed_colour_matrix_equals_the_three_changes_in_turn(images):
    """Equal where no intermediate value leaves [0, 1] (torchvision clamps after each change, the matrix once)."""
    # 0.14 .. 0.85: never clamped on the way
    images = (images.float() * 0.8 + 25).round().to(torch.uint8)
    out, _ = BatchAugment().apply(
        images, _with(3, brightness=1.06, contrast=0.93, saturation=1.04)
    )
    x = images.float() / 255
    expected = TF.adjust_saturation(
        TF.adjust_contrast(TF.adjust_brightness(x, 1.06), 0.93), 1.04
    )
    torch.testing.assert_close(_pixels(out), expected, atol=1e-5, rtol=0)


def test_masks_follow_the_geometry_and_ignore_the_colour(images):
    """A mask of the bright half of each image still marks the bright half after any augmentation."""
    n = len(images)
    column = torch.arange(48).view(1, 1, 1, 48).expand(n, 1, 48, 48)
    half = (column >= 24).to(torch.uint8)
    marked = torch.where(
        half.bool(),
        torch.tensor(230, dtype=torch.uint8),
        torch.tensor(20, dtype=torch.uint8),
    )
    marked = marked.expand(n, 3, 48, 48).contiguous()
    generator = torch.Generator().manual_seed(3)
    out, masks = BatchAugment(brightness=0, contrast=0, saturation=0)(
        marked, half, generator=generator
    )
    assert masks.shape == (n, 1, 48, 48) and set(masks.unique().tolist()) <= {0.0, 1.0}
    bright = _pixels(out).mean(1, keepdim=True) > 0.5
    inside = torch.ones_like(bright)
    inside[..., :3, :] = inside[..., -3:, :] = inside[..., :, :3] = inside[
        ..., :, -3:
    ] = False  # edges: blends
    agree = (bright == masks.bool()) | ~inside.bool()
    assert agree.float().mean() > 0.97


def test_same_generator_seed_same_batch_and_per_image_parameters(images):
    augment = BatchAugment()
    a, _ = augment(images, generator=torch.Generator().manual_seed(11))
    b, _ = augment(images, generator=torch.Generator().manual_seed(11))
    c, _ = augment(images, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b) and not torch.equal(a, c)
    params = augment.sample(64, torch.Generator().manual_seed(0))
    assert params.angle.unique().numel() == 64, "each image draws its own parameters"
    assert (
        params.angle.abs().max() <= 20
        and ((params.crop_w * params.crop_h) >= 0.7 * 0.9).all()
    )
    assert set(params.flip_x.tolist()) == {-1.0, 1.0}


def test_cpu_chunks_change_speed_not_results(images):
    generator = torch.Generator().manual_seed(5)
    params = BatchAugment().sample(len(images), generator)
    whole, _ = BatchAugment(cpu_chunk=0).apply(images, params)
    chunked, _ = BatchAugment(cpu_chunk=2).apply(images, params)
    torch.testing.assert_close(whole, chunked)


def test_bad_input_is_named(images):
    with pytest.raises(ValueError, match="uint8 images"):
        BatchAugment()(images.float())
    with pytest.raises(ValueError, match="2 parameter sets for 3 images"):
        BatchAugment().apply(images, AugmentParams.identity(2))
