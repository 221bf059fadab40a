"""course_lib.data: generator, loader validation, patient splits, Dataset, samplers."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from course_lib.data import (
    DataError,
    MelanomaDataset,
    Split,
    balanced_sampler,
    eval_transforms,
    load_melanoma,
    make_synthetic_lesions,
    split_by_patient,
    train_transforms,
    undersample,
)

# ------------------------------------------------------------------ synthetic generator


def test_generator_writes_the_simple_layout(lesion_root):
    frame = load_melanoma(lesion_root)
    assert len(frame) == 96
    for column in (
        "image_id",
        "patient_id",
        "sex",
        "age_approx",
        "anatom_site_general_challenge",
        "source",
        "target",
        "path",
        "mask_path",
    ):
        assert column in frame.columns
    assert (frame["source"] == "SYNTH").all()
    assert frame["patient_id"].value_counts().max() > 1, "patients have several images"
    assert 0.1 < frame["target"].mean() < 0.6
    image = Image.open(frame["path"][0])
    mask = np.asarray(Image.open(frame["mask_path"][0]))
    assert image.size == (64, 64) and image.mode == "RGB"
    assert set(np.unique(mask)) <= {0, 255} and (mask == 255).any()


def test_generator_is_deterministic(tmp_path):
    a = make_synthetic_lesions(tmp_path / "a", 12, 64, seed=5)
    b = make_synthetic_lesions(tmp_path / "b", 12, 64, seed=5)
    c = make_synthetic_lesions(tmp_path / "c", 12, 64, seed=6)
    pd.testing.assert_frame_equal(a, b)
    for image_id in a["image_id"]:
        assert (tmp_path / "a/images" / f"{image_id}.jpg").read_bytes() == (
            tmp_path / "b/images" / f"{image_id}.jpg"
        ).read_bytes()
    assert not a["image_id"].equals(c["image_id"]) or not a["target"].equals(
        c["target"]
    )


def test_malignant_lesions_follow_the_abcd_rule(tmp_path):
    frame = make_synthetic_lesions(tmp_path, 300, 64, seed=1)
    means = frame.groupby("target")[
        ["diameter", "asymmetry", "border", "colours"]
    ].mean()
    assert (means.loc[1] > means.loc[0]).all(), means
    # overlapping classes: some benign lesions are larger than some malignant ones
    assert (
        frame.loc[frame.target == 0, "diameter"].max()
        > frame.loc[frame.target == 1, "diameter"].min()
    )


def test_spurious_cue_goes_with_the_label(tmp_path):
    frame = make_synthetic_lesions(
        tmp_path, 200, 64, seed=2, spurious_cue="ruler", cue_rates=(0.1, 0.9)
    )
    rate = frame.groupby("target")["cue"].mean()
    assert rate[1] > 0.7 and rate[0] < 0.3
    cued = frame[frame.cue == 1].image_id.iloc[0]
    assert (np.asarray(Image.open(tmp_path / "cues" / f"{cued}.png")) > 0).any()
    with pytest.raises(ValueError, match="spurious_cue"):
        make_synthetic_lesions(
            tmp_path / "x", 10, 64, spurious_cue="sticker", cue_rates=(1.0, 1.0)
        )


# ------------------------------------------------------------------ loader validation


def _copy_simple(src, dst, frame_edit=None):
    import shutil

    shutil.copytree(src, dst)
    if frame_edit is not None:
        frame = pd.read_csv(dst / "marking.csv")
        frame_edit(frame).to_csv(dst / "marking.csv", index=False)
    return dst


def test_missing_csv_is_named(tmp_path):
    with pytest.raises(DataError, match="no marking.csv"):
        load_melanoma(tmp_path)


def test_missing_columns_are_named(lesion_root, tmp_path):
    root = _copy_simple(
        lesion_root, tmp_path / "d", lambda f: f.drop(columns=["patient_id", "target"])
    )
    with pytest.raises(DataError, match="lacks the column\\(s\\) patient_id, target"):
        load_melanoma(root)


def test_bad_targets_are_named(lesion_root, tmp_path):
    def edit(f):
        f.loc[0, "target"] = 2
        return f

    with pytest.raises(DataError, match="target must be 0 or 1.*: 2"):
        load_melanoma(_copy_simple(lesion_root, tmp_path / "d", edit))


def test_duplicate_ids_are_named(lesion_root, tmp_path):
    def edit(f):
        f.loc[1, "image_id"] = f.loc[0, "image_id"]
        return f

    with pytest.raises(DataError, match="duplicate image_id"):
        load_melanoma(_copy_simple(lesion_root, tmp_path / "d", edit))


def test_missing_images_are_counted_and_named(lesion_root, tmp_path):
    root = _copy_simple(lesion_root, tmp_path / "d")
    frame = pd.read_csv(root / "marking.csv")
    for image_id in frame.image_id[:7]:
        (root / "images" / f"{image_id}.jpg").unlink()
    with pytest.raises(DataError) as info:
        load_melanoma(root)
    message = str(info.value)
    assert "7 of 96 image file(s)" in message
    assert f"{frame.image_id[0]}.jpg" in message and "2 more" in message


def test_kaggle_layout_is_detected(lesion_root, tmp_path):
    import shutil

    root = tmp_path / "kaggle"
    images = root / "512x512-dataset-melanoma" / "512x512-dataset-melanoma"
    shutil.copytree(lesion_root / "images", images)
    frame = pd.read_csv(lesion_root / "marking.csv")
    frame.loc[0, "patient_id"] = np.nan  # external ISIC images may have no patient
    frame.to_csv(root / "marking.csv", index=False)
    loaded = load_melanoma(root)
    assert "mask_path" not in loaded.columns
    assert loaded["path"][0].startswith(str(images))
    assert loaded["patient_id"][0] == f"NOPATIENT_{loaded['image_id'][0]}"


# ------------------------------------------------------------------ splits and sampling


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_by_patient_never_leaks(lesion_root, seed):
    frame = load_melanoma(lesion_root)
    train, val, _ = split_by_patient(
        frame, val_fraction=0.25, test_fraction=0, seed=seed
    )
    assert set(train.patient_id).isdisjoint(val.patient_id)
    assert len(train) + len(val) == len(frame)
    assert set(train.image_id) | set(val.image_id) == set(frame.image_id)
    assert 0.1 < len(val) / len(frame) < 0.4
    assert abs(val.target.mean() - frame.target.mean()) < 0.15  # stratified


@pytest.mark.parametrize("seed", [0, 1])
def test_split_by_patient_three_ways(lesion_root, seed):
    frame = load_melanoma(lesion_root)
    split = split_by_patient(frame, val_fraction=0.2, test_fraction=0.2, seed=seed)
    assert isinstance(split, Split) and split._fields == ("train", "val", "test")
    sides = [set(part.patient_id) for part in split]
    assert all(a.isdisjoint(b) for i, a in enumerate(sides) for b in sides[i + 1 :])
    assert sorted(pd.concat(split).image_id) == sorted(frame.image_id)
    for part in (split.val, split.test):
        assert 0.1 < len(part) / len(frame) < 0.3
        assert part.target.nunique() == 2
    # the validation side is that of the two-way split; the test side comes out of training
    two_way = split_by_patient(frame, 0.2, test_fraction=0, seed=seed)
    assert two_way.test.empty and list(two_way.val.image_id) == list(split.val.image_id)
    assert set(split.test.image_id) <= set(two_way.train.image_id)


def _patients(n_patients: int, melanoma_patients: int) -> pd.DataFrame:
    """Two images per patient; the first ``melanoma_patients`` patients have melanoma."""
    ids = [f"P{i:03d}" for i in range(n_patients) for _ in range(2)]
    return pd.DataFrame(
        {
            "image_id": [f"I{i:04d}" for i in range(2 * n_patients)],
            "patient_id": ids,
            "target": [int(int(p[1:]) < melanoma_patients) for p in ids],
        }
    )


def test_split_by_patient_refuses_what_it_cannot_do():
    with pytest.raises(
        DataError, match=r"the (validation|test) split holds \d+ benign, 0"
    ):
        split_by_patient(_patients(40, 1), 0.2, 0.2, seed=0)  # one melanoma patient
    with pytest.raises(DataError, match="4 patients cannot be split 5 ways"):
        split_by_patient(_patients(4, 2), 0.2, 0.2, seed=0)
    with pytest.raises(ValueError, match=r"test_fraction must be at least 0.*not -0.1"):
        split_by_patient(_patients(40, 10), 0.2, -0.1, seed=0)
    with pytest.raises(ValueError, match=r"must stay below 1.*0.6 \+ 0.4"):
        split_by_patient(_patients(40, 10), 0.6, 0.4, seed=0)
    with pytest.raises(TypeError):  # the seed is never taken for a fraction
        split_by_patient(_patients(40, 10), 0.2, 0.2, 0)


def test_undersample_keeps_every_positive(lesion_root):
    frame = load_melanoma(lesion_root)
    small = undersample(frame, n_negatives=10, seed=0)
    assert (small.target == 1).sum() == (frame.target == 1).sum()
    assert (small.target == 0).sum() == 10


def test_balanced_sampler_draws_classes_equally(lesion_root):
    frame = load_melanoma(lesion_root)
    sampler = balanced_sampler(frame, num_samples=4000, seed=0)
    drawn = frame.target.to_numpy()[list(sampler)]
    assert abs(drawn.mean() - 0.5) < 0.05


# ------------------------------------------------------------------ Dataset


def test_dataset_items_and_joint_augmentation(lesion_root):
    frame = load_melanoma(lesion_root)
    ds = MelanomaDataset(frame, train_transforms(64), with_mask=True)
    torch.manual_seed(0)
    image, target, mask = ds[0]
    assert (
        image.shape == (3, 64, 64)
        and image.dtype == torch.float32
        and image.device.type == "cpu"
    )
    assert mask.shape == (1, 64, 64) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert target.dtype == torch.float32
    # the mask moves with the image: a horizontal flip only, on both, then compare
    from torchvision.transforms import v2

    flip = v2.Compose(
        [v2.RandomHorizontalFlip(p=1.0), v2.ToDtype(torch.float32, scale=True)]
    )
    plain = MelanomaDataset(
        frame, v2.ToDtype(torch.float32, scale=True), with_mask=True
    )[0]
    flipped = MelanomaDataset(frame, flip, with_mask=True)[0]
    assert torch.equal(flipped[2], plain[2].flip(-1))
    assert torch.allclose(flipped[0], plain[0].flip(-1))


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P"])
def test_dataset_converts_any_mode_to_rgb(tmp_path, mode):
    path = tmp_path / f"x.{'jpg' if mode in ('L', 'CMYK') else 'png'}"
    Image.new("RGB", (64, 64), (200, 100, 50)).convert(mode).save(path)
    ds = MelanomaDataset(
        pd.DataFrame({"path": [str(path)], "target": [1]}), eval_transforms(64)
    )
    image, _ = ds[0]
    assert image.shape == (3, 64, 64)


def test_corrupt_and_truncated_images_are_named(lesion_root, tmp_path):
    good = load_melanoma(lesion_root)["path"][0]
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(Path(good).read_bytes()[:300])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    for path in (truncated, garbage):
        ds = MelanomaDataset(
            pd.DataFrame({"path": [str(path)], "target": [0]}), eval_transforms(64)
        )
        with pytest.raises(DataError, match=str(path)):
            ds[0]
    ds = MelanomaDataset(
        pd.DataFrame({"path": [str(tmp_path / "gone.jpg")], "target": [0]})
    )
    with pytest.raises(DataError, match="gone.jpg"):
        ds[0]


def test_dataset_with_mask_requires_masks(lesion_root):
    frame = load_melanoma(lesion_root).drop(columns=["mask_path"])
    with pytest.raises(DataError, match="mask_path"):
        MelanomaDataset(frame, with_mask=True)


def test_ensure_synthetic_lesions_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    from course_lib.data import ensure_synthetic_lesions

    root = ensure_synthetic_lesions(20, 64, seed=1)
    assert root.parent == tmp_path and len(load_melanoma(root)) == 20
    stamp = (root / "marking.csv").stat().st_mtime_ns
    assert ensure_synthetic_lesions(20, 64, seed=1) == root
    assert (root / "marking.csv").stat().st_mtime_ns == stamp, "reused, not regenerated"
    other = ensure_synthetic_lesions(20, 64, seed=1, spurious_cue="ink")
    assert other != root and (other / "cues").is_dir()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_make_loaders_batches_and_keeps_masks(lesion_root):
    from course_lib.data import make_loaders

    train, val, _ = split_by_patient(
        load_melanoma(lesion_root), 0.25, test_fraction=0, seed=0
    )
    train_loader, val_loader = make_loaders(
        train, val, image_size=64, batch_size=8, with_mask=True
    )
    images, targets, masks = next(iter(train_loader))
    assert (
        images.shape == (8, 3, 64, 64)
        and targets.shape == (8,)
        and masks.shape == (8, 1, 64, 64)
    )
    assert len(train_loader) == len(train) // 8  # the incomplete last batch is dropped
    # validation keeps every image
    assert sum(len(b[0]) for b in val_loader) == len(val)


def test_a_cue_set_is_the_cue_free_set_plus_cues(tmp_path):
    """Same seed with and without a cue: same patients, labels, lesions; pixels differ only near cues."""
    plain = make_synthetic_lesions(tmp_path / "plain", 60, 64, seed=4)
    cued = make_synthetic_lesions(
        tmp_path / "cued", 60, 64, seed=4, spurious_cue="ruler", cue_rates=(0.3, 0.9)
    )
    columns = [
        "image_id",
        "patient_id",
        "target",
        "diameter",
        "asymmetry",
        "border",
        "colours",
    ]
    pd.testing.assert_frame_equal(plain[columns], cued[columns])
    assert 0 < cued.cue.sum() < len(cued) and plain.cue.sum() == 0
    for image_id, has_cue in zip(cued.image_id, cued.cue):
        lesion = [
            np.asarray(Image.open(tmp_path / d / "masks" / f"{image_id}.png"))
            for d in ("plain", "cued")
        ]
        np.testing.assert_array_equal(*lesion)
        a, b = (
            np.asarray(
                Image.open(tmp_path / d / "images" / f"{image_id}.jpg"), dtype=int
            )
            for d in ("plain", "cued")
        )
        if not has_cue:
            np.testing.assert_array_equal(a, b)
            continue
        cue = np.asarray(Image.open(tmp_path / "cued" / "cues" / f"{image_id}.png")) > 0
        # JPEG codes 16x16 blocks (4:2:0 chroma): blocks that hold a cue pixel are re-coded
        near = np.zeros_like(cue)
        for y, x in zip(*np.nonzero(cue)):
            near[y // 16 * 16 : y // 16 * 16 + 16, x // 16 * 16 : x // 16 * 16 + 16] = (
                True
            )
        difference = np.abs(a - b).max(axis=-1)
        # chroma upsampling at decode blurs block edges by a few levels at most
        if (~near).any():
            assert (
                difference[~near].max() <= 4 and (difference[~near] == 0).mean() > 0.95
            )
        assert difference[cue].mean() > 20, "on the cue they differ"


def test_parallel_generation_is_byte_identical_and_safe_in_an_unguarded_script(
    tmp_path,
):
    """Any number of worker processes writes the same files, also from a plain script whose top
    level calls the generator (no ``if __name__ == "__main__":``), as a course reader writes one."""
    import subprocess
    import sys

    script = tmp_path / "make_data.py"
    script.write_text(
        "from course_lib.data import make_synthetic_lesions\nimport sys\n"
        "make_synthetic_lesions(sys.argv[1], 80, 64, seed=9, spurious_cue='ink', "
        "num_workers=int(sys.argv[2]))\nprint('done')\n"
    )
    for workers in (1, 3):
        run = subprocess.run(
            [sys.executable, str(script), str(tmp_path / f"w{workers}"), str(workers)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0 and run.stdout.count("done") == 1, run.stderr[-2000:]
    one, three = tmp_path / "w1", tmp_path / "w3"
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert (
        files == sorted(p.relative_to(three) for p in three.rglob("*") if p.is_file())
        and len(files) > 160
    )
    assert all((one / f).read_bytes() == (three / f).read_bytes() for f in files)
