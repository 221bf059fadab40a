"""The melanoma data: read either layout, validate it, split it by patient (notebook ``01_lesion_data``).

Two layouts are understood (COURSE.md §5):

- **Kaggle** (``shonenkov/melanoma-merged-external-data-512x512-jpeg``): ``marking.csv`` and
  ``512x512-dataset-melanoma/512x512-dataset-melanoma/{image_id}.jpg``;
- **simple** (what :func:`~course_lib.data.synthetic.make_synthetic_lesions` writes):
  ``marking.csv``, ``images/{image_id}.jpg`` and optionally ``masks/{image_id}.png``.

Images of one patient look alike (same skin, same camera), so a split that puts one patient
on both sides lets a model recognise the *patient* instead of the lesion and overstates its
accuracy. :func:`split_by_patient` keeps every patient on one side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

__all__ = ["REQUIRED_COLUMNS", "load_melanoma", "split_by_patient", "undersample", "balanced_sampler",
           "KAGGLE_IMAGE_DIR"]

REQUIRED_COLUMNS = ("image_id", "patient_id", "target")
KAGGLE_IMAGE_DIR = Path("512x512-dataset-melanoma") / "512x512-dataset-melanoma"


def _image_dir(root: Path) -> Path:
    for candidate in (root / KAGGLE_IMAGE_DIR, root / "images"):
        if candidate.is_dir():
            return candidate
    raise DataError(
        f"{root} has a marking.csv but no image folder: expected {KAGGLE_IMAGE_DIR}/ "
        "(the Kaggle layout) or images/ (the simple layout)"
    )


def _first(items, n=5) -> str:
    items = list(items)
    more = f", … ({len(items) - n} more)" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more


def load_melanoma(root: str | Path) -> pd.DataFrame:
    """Read and validate a melanoma data set in either layout.

    Returns the marking table with at least ``image_id, patient_id, target, path`` and,
    where a ``masks/`` folder exists, ``mask_path``. Raises :class:`DataError` naming what is
    wrong: a missing ``marking.csv``, missing columns, targets outside {0, 1}, duplicate ids,
    or image files that are not there.
    """
    root = Path(root)
    csv = root / "marking.csv"
    if not csv.is_file():
        hint = " (the folder does not exist)" if not root.exists() else ""
        raise DataError(f"no marking.csv in {root}{hint}: is this the melanoma data set's root folder?")
    try:
        frame = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{csv} is not a readable CSV file: {err}") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{csv} lacks the column(s) {', '.join(missing)}; it has: {', '.join(map(str, frame.columns))}")
    frame["image_id"] = frame["image_id"].astype(str)
    bad = frame.loc[~frame["target"].isin([0, 1]), "target"]
    if len(bad):
        raise DataError(f"{csv}: target must be 0 or 1, found {len(bad)} other value(s): {_first(bad.unique())}")
    frame["target"] = frame["target"].astype(int)
    dupes = frame.loc[frame["image_id"].duplicated(), "image_id"]
    if len(dupes):
        raise DataError(f"{csv}: {len(dupes)} duplicate image_id(s): {_first(dupes.unique())}")
    # images without a patient (some external ISIC images) count as patients of their own
    no_patient = frame["patient_id"].isna()
    frame.loc[no_patient, "patient_id"] = "NOPATIENT_" + frame.loc[no_patient, "image_id"]
    frame["patient_id"] = frame["patient_id"].astype(str)

    images = _image_dir(root)
    present = {p.name for p in images.iterdir()}
    names = frame["image_id"] + ".jpg"
    absent = names[~names.isin(present)]
    if len(absent):
        raise DataError(f"{len(absent)} of {len(frame)} image file(s) listed in {csv.name} are missing "
                        f"from {images}: {_first(absent)}")
    frame["path"] = [str(images / n) for n in names]
    masks = root / "masks"
    if masks.is_dir():
        mask_files = {p.name for p in masks.iterdir()}
        frame["mask_path"] = [str(masks / f"{i}.png") if f"{i}.png" in mask_files else None for i in frame["image_id"]]
    return frame


def split_by_patient(frame: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0):
    """Split into ``(train, val)`` with no patient on both sides, keeping the class ratio.

    Uses scikit-learn's ``StratifiedGroupKFold`` with ``round(1 / val_fraction)`` folds and
    keeps one fold for validation, so the validation share is close to ``val_fraction``.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, not {val_fraction}")
    n_splits = max(2, round(1 / val_fraction))
    if frame["patient_id"].nunique() < n_splits:
        raise DataError(f"{frame['patient_id'].nunique()} patients cannot be split {n_splits} ways")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_idx, val_idx = next(folds.split(frame, frame["target"], groups=frame["patient_id"]))
    return frame.iloc[train_idx].reset_index(drop=True), frame.iloc[val_idx].reset_index(drop=True)


def undersample(frame: pd.DataFrame, n_negatives: int, seed: int = 0) -> pd.DataFrame:
    """All positives plus ``n_negatives`` randomly drawn negatives (seed 000's balancing).

    Cheap and simple, but it throws data away; :func:`balanced_sampler` keeps every image.
    Apply it to the *training* split only: the validation set must keep the true class ratio.
    """
    negatives = frame[frame["target"] == 0]
    chosen = negatives.sample(min(n_negatives, len(negatives)), random_state=seed)
    return pd.concat([frame[frame["target"] == 1], chosen]).sample(frac=1, random_state=seed).reset_index(drop=True)


def balanced_sampler(frame: pd.DataFrame, num_samples: int | None = None, seed: int | None = None):
    """A ``WeightedRandomSampler`` that draws both classes equally often (with replacement)."""
    import torch
    from torch.utils.data import WeightedRandomSampler

    counts = np.bincount(frame["target"].to_numpy(), minlength=2).astype(float)
    if (counts == 0).any():
        raise DataError("balanced_sampler needs both classes in the frame")
    weights = (1.0 / counts)[frame["target"].to_numpy()]
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), num_samples or len(frame),
                                 replacement=True, generator=generator)
