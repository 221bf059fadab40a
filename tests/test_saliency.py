"""course_lib.saliency: maps over a data set, baselines, the localisation table."""

import numpy as np
import pandas as pd
import pytest
import torch

from course_lib.data import load_melanoma, make_loaders
from course_lib.models import AttnVGG
from course_lib.saliency import (
    MAP_NAMES,
    baseline_maps,
    collect_maps,
    localisation_table,
    verdicts,
)


def test_collect_maps_keeps_every_image_and_map(lesion_root):
    frame = load_melanoma(lesion_root).head(20)
    _, loader = make_loaders(frame, frame, 64, 8, with_mask=True)
    torch.manual_seed(0)
    model = AttnVGG(1, width=1 / 16)
    maps = collect_maps(model, loader)
    assert (
        maps["probability"].shape == (20,)
        and ((maps["probability"] >= 0) & (maps["probability"] <= 1)).all()
    )
    np.testing.assert_array_equal(maps["target"], frame.target.to_numpy())
    assert (
        maps["mask"].shape == (20, 64, 64)
        and maps["mask"].dtype == bool
        and maps["mask"].any(axis=(1, 2)).all()
    )
    assert maps["pool-3 attention"].shape == (20, 8, 8) and maps[
        "pool-4 attention"
    ].shape == (20, 4, 4)
    # softmax maps
    np.testing.assert_allclose(maps["pool-3 attention"].sum(axis=(1, 2)), 1, rtol=1e-4)
    assert maps["Grad-CAM"].shape == (20, 64, 64)
    assert "Grad-CAM" not in collect_maps(model, loader, gradcam=False)
    plain, _ = make_loaders(frame, frame, 64, 8)
    with pytest.raises(ValueError, match="with_mask=True"):
        collect_maps(model, plain)


def test_baselines():
    random = baseline_maps(3, (8, 10), "random", seed=1)
    assert random.shape == (3, 8, 10)
    np.testing.assert_array_equal(random, baseline_maps(3, (8, 10), "random", seed=1))
    centre = baseline_maps(2, (9, 9), "centre")
    assert (
        np.unravel_index(centre[0].argmax(), (9, 9)) == (4, 4)
        and (centre[0] == centre[1]).all()
    )
    with pytest.raises(ValueError, match="random"):
        baseline_maps(1, (4, 4), "corner")


def test_localisation_table_scores_each_kind_of_map():
    masks = np.zeros((4, 16, 16), bool)
    masks[:, 4:12, 4:12] = True
    table = localisation_table(
        {
            "the mask itself": masks.astype(np.float32),
            "centre": baseline_maps(4, (16, 16), "centre"),
            "outside": (~masks).astype(np.float32),
        },
        masks,
    )
    assert list(table.columns) == [
        "pointing game",
        "energy in mask",
        "binarised Jaccard",
        "maps without signal",
    ]
    scores = table.drop(columns="maps without signal")
    assert scores.loc["the mask itself"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert scores.loc["outside"].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert (table["maps without signal"] == 0).all()
    assert table.loc["centre", "pointing game"] == 1.0
    assert list(MAP_NAMES) == ["pool-3 attention", "pool-4 attention", "Grad-CAM"]


def test_verdicts_read_energy_against_the_random_map():
    import pandas as pd

    table = pd.DataFrame(
        {"energy in mask": [0.06, 0.5, 0.07, 0.01, float("nan")]},
        index=["random map", "on", "same", "away", "(area)"],
    )
    v = verdicts(table)
    assert list(v.index) == ["random map", "on", "same", "away"]
    assert v.loc["on", "energy / random"] == pytest.approx(0.5 / 0.06)
    assert list(v.verdict) == [
        "no better than random",
        "on the lesion",
        "no better than random",
        "avoids the lesion",
    ]


def test_maps_without_signal_are_left_out_and_counted():
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:6, 2:6] = True
    cams = masks.astype(np.float32)
    cams[1] = 0.0  # Grad-CAM can be zero everywhere
    table = localisation_table({"Grad-CAM": cams}, masks)
    assert table.loc["Grad-CAM", "maps without signal"] == 1
    # the two scored maps
    assert table.loc["Grad-CAM", "energy in mask"] == pytest.approx(1.0)


def test_verdicts_follow_the_paired_interval_when_given_the_maps():
    """A ratio alone is not evidence: the per-image interval decides whether it counts."""
    rng = np.random.default_rng(0)
    n, size = 60, 16
    masks = np.zeros((n, size, size), dtype=np.float32)
    masks[:, 4:12, 4:12] = 1  # a quarter of each image
    noise = rng.random((n, size, size)).astype(np.float32)
    on = noise + 3 * masks  # clearly more on the lesion
    barely = noise * (1 + 0.6 * masks * (rng.random((n, 1, 1)) > 0.5))  # weak, noisy
    maps = {"random map": noise, "on": on, "barely": barely, "zero": np.zeros_like(on)}
    table = localisation_table(maps, masks)
    plain = verdicts(table)
    judged = verdicts(table, maps=maps, masks=masks, groups=np.arange(n) // 3)
    assert judged.loc["on", "verdict"] == "on the lesion"
    assert judged.loc["on", "energy − random, 95 % interval"].startswith("[+")
    assert judged.loc["barely", "verdict"] in (
        "a little above random",
        "no better than random",
    )
    assert plain.loc["barely", "verdict"] == "no better than random"
    # the random map against itself: an interval of width 0 that holds 0
    assert judged.loc["random map", "verdict"] == "no better than random"
    assert "zero" not in judged.index  # no signal anywhere: no energy, no verdict


def test_a_map_with_signal_in_one_image_gets_no_interval_but_a_verdict_that_says_so():
    """After one epoch Grad-CAM of the melanoma logit can be empty in all images but one:
    one image is too few for an interval, and the verdict says why (chapter 11, smoke)."""
    rng = np.random.default_rng(0)
    masks = np.zeros((6, 8, 8), dtype=np.float32)
    masks[:, 2:6, 2:6] = 1
    lone = np.zeros((6, 8, 8), dtype=np.float32)
    lone[0] = masks[0]
    maps = {"random map": rng.random((6, 8, 8)).astype(np.float32), "lone": lone}
    table = localisation_table(maps, masks)
    judged = verdicts(table, maps=maps, masks=masks, groups=np.arange(6))
    assert table.loc["lone", "maps without signal"] == 5
    assert judged.loc["lone", "verdict"] == "too few maps with signal"
    assert pd.isna(judged.loc["lone", "energy − random, 95 % interval"])


def test_a_map_without_any_signal_scores_nan_without_a_warning():
    """A warning would print to stderr on the book's page (tests/test_book.py)."""
    import warnings

    masks = np.zeros((3, 8, 8), dtype=np.float32)
    masks[:, 2:6, 2:6] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = localisation_table({"Grad-CAM": np.zeros((3, 8, 8))}, masks)
    assert table.loc["Grad-CAM", "maps without signal"] == 3
    assert table.loc["Grad-CAM"].drop("maps without signal").isna().all()
