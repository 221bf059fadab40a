"""course_lib.metrics localisation measures, on hand-made maps whose answers are known."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.metrics import binarized_jaccard, energy_in_mask, pointing_game


def _mask(size=8, rows=slice(2, 4), cols=slice(2, 4)):
    m = np.zeros((size, size), dtype=np.uint8)
    m[rows, cols] = 255  # 0/255, as the PNG masks on disk
    return m


def _peak_at(y, x, size=8):
    s = np.zeros((size, size), dtype=np.float32)
    s[y, x] = 1.0
    return s


def test_pointing_game_peak_inside_and_outside():
    mask = _mask()
    assert pointing_game(_peak_at(2, 3), mask) == 1.0
    assert pointing_game(_peak_at(7, 7), mask) == 0.0


def test_pointing_game_tolerance_is_a_distance_in_pixels():
    mask = _mask()  # nearest mask pixel to (5, 3) is (3, 3): 2 pixels away
    assert pointing_game(_peak_at(5, 3), mask) == 0.0
    assert pointing_game(_peak_at(5, 3), mask, tolerance=1.9) == 0.0
    assert pointing_game(_peak_at(5, 3), mask, tolerance=2) == 1.0
    # (5, 5) is sqrt(8) = 2.83 away from (3, 3): a disk, not a square
    assert pointing_game(_peak_at(5, 5), mask, tolerance=2.5) == 0.0
    assert pointing_game(_peak_at(5, 5), mask, tolerance=2.9) == 1.0
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(_peak_at(0, 0), mask, tolerance=-1)


def test_pointing_game_ties_score_the_share_of_peaks_that_hit():
    s = _peak_at(2, 2) + _peak_at(7, 7)  # two equal maxima, one inside
    assert pointing_game(s, _mask()) == 0.5


def test_energy_in_mask_known_values():
    mask = _mask()
    inside = (mask > 0).astype(np.float32)
    assert energy_in_mask(inside, mask) == pytest.approx(1.0)
    assert energy_in_mask(1 - inside, mask) == pytest.approx(0.0)
    assert energy_in_mask(inside * 3 + (1 - inside), mask) == pytest.approx(
        12 / (12 + 60)
    )
    # negative values are clipped: only the positive mass counts
    assert energy_in_mask(inside - 5 * (1 - inside), mask) == pytest.approx(1.0)


def test_binarized_jaccard_known_values():
    mask = _mask()
    assert binarized_jaccard((mask > 0).astype(np.float32), mask) == pytest.approx(1.0)
    s = np.zeros((8, 8), np.float32)
    s[2:4, 3:5] = 1.0  # overlaps 2 of the 4 mask pixels; union 6
    assert binarized_jaccard(s, mask) == pytest.approx(2 / 6)
    # min-max normalisation: an offset and a scale change nothing
    assert binarized_jaccard(7 * s + 100, mask) == pytest.approx(2 / 6)
    s[6, 6] = 0.4  # below the threshold after normalisation: not kept
    assert binarized_jaccard(s, mask) == pytest.approx(2 / 6)
    assert binarized_jaccard(s, mask, threshold=0.3) == pytest.approx(2 / 7)
    with pytest.raises(ValueError, match="threshold"):
        binarized_jaccard(s, mask, threshold=1.5)


def test_a_constant_map_scores_like_a_random_guess():
    mask = _mask()
    constant = np.full((8, 8), 0.3, np.float32)
    area = 4 / 64
    assert pointing_game(constant, mask) == pytest.approx(area)
    assert energy_in_mask(constant, mask) == pytest.approx(area)
    assert binarized_jaccard(constant, mask) == 0.0  # it highlights nothing


def test_uniform_random_maps_average_the_area_fraction():
    torch.manual_seed(0)
    masks = torch.zeros(2000, 16, 16)
    masks[:, 4:12, 4:8] = 1  # area fraction 32 / 256
    maps = torch.rand(2000, 16, 16)
    assert energy_in_mask(maps, masks).mean() == pytest.approx(0.125, abs=0.005)
    assert pointing_game(maps, masks).mean() == pytest.approx(0.125, abs=0.03)


def test_batched_inputs_any_layout_and_any_map_size():
    mask = _mask()
    maps = np.stack([_peak_at(2, 2), _peak_at(7, 7), (mask > 0).astype(np.float32)])
    masks = np.stack([mask] * 3)
    np.testing.assert_array_equal(pointing_game(maps, masks), [1.0, 0.0, 1.0])
    as_tensors = pointing_game(
        torch.from_numpy(maps)[:, None], torch.from_numpy(masks)[:, None] > 0
    )
    np.testing.assert_array_equal(as_tensors, [1.0, 0.0, 1.0])
    # a coarse map is upsampled bilinearly to the mask's size, as an attention map would be
    coarse = torch.rand(3, 1, 4, 4)
    fine = F.interpolate(coarse, size=(8, 8), mode="bilinear", align_corners=False)
    for metric in (pointing_game, energy_in_mask, binarized_jaccard):
        np.testing.assert_allclose(
            metric(coarse, masks), metric(fine, masks), rtol=1e-6
        )
    assert isinstance(energy_in_mask(maps[2], mask), float)
    assert energy_in_mask(maps, masks).shape == (3,)


def test_empty_masks_and_mismatched_batches_are_clear_errors():
    maps = np.stack([_peak_at(2, 2)] * 3)
    masks = np.stack([_mask(), np.zeros((8, 8), np.uint8), _mask()])
    for metric in (pointing_game, energy_in_mask, binarized_jaccard):
        with pytest.raises(ValueError, match=r"mask\(s\) 1 are empty"):
            metric(maps, masks)
        with pytest.raises(ValueError, match="3 saliency map"):
            metric(maps, masks[:2])
    with pytest.raises(ValueError, match=r"map\(s\) 0 have no positive mass"):
        energy_in_mask(np.zeros((8, 8)), _mask())
    with pytest.raises(ValueError, match="shaped"):
        energy_in_mask(np.zeros((2, 3, 8, 8)), np.stack([_mask()] * 2))


def test_a_peak_exactly_at_the_tolerance_is_a_hit():
    """The course's convention (TorchRay's is strict: a distance below the tolerance)."""
    mask = np.zeros((9, 9), dtype=bool)
    mask[4, 4] = True
    assert pointing_game(_peak_at(4, 7, size=9), mask, tolerance=3) == 1.0
    assert pointing_game(_peak_at(4, 7, size=9), mask, tolerance=2.999) == 0.0
