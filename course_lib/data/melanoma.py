"""The melanoma data: read either layout, validate it, split it by patient (notebook ``01_lesion_data``).

Two layouts are understood:

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
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from .errors import DataError, listed
from .images import verify_images

__all__ = [
    "REQUIRED_COLUMNS",
    "load_melanoma",
    "split_by_patient",
    "Split",
    "undersample",
    "balanced_sampler",
    "KAGGLE_IMAGE_DIR",
    "class_counts",
    "listed",
]

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


def _read_marking(csv: Path) -> pd.DataFrame:
    try:
        # ids are names, not numbers: "0000123" must stay "0000123"
        frame = pd.read_csv(
            csv, dtype={"image_id": str, "patient_id": str}, encoding="utf-8-sig"
        )
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        ValueError,
    ) as err:
        raise DataError(f"{csv} is not a readable CSV file: {err}") from err
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        hint = ""
        if len(frame.columns) == 1 and any(sep in frame.columns[0] for sep in ";\t|"):
            hint = " (the file seems to use another separator than a comma: save it as comma-separated)"
        raise DataError(
            f"{csv} lacks the column(s) {', '.join(missing)}; it has: "
            f"{', '.join(map(str, frame.columns))}{hint}"
        )
    if frame.empty:
        raise DataError(f"{csv} lists no images")
    return frame


def _check_targets(frame: pd.DataFrame, csv: Path) -> None:
    numeric = pd.to_numeric(frame["target"], errors="coerce")
    bad = frame.loc[~numeric.isin([0, 1]), "target"]
    if len(bad):
        shown = listed(repr(v) if isinstance(v, str) else v for v in bad.unique())
        raise DataError(
            f"{csv}: target must be 0 or 1, found {len(bad)} other value(s) in {len(frame)} rows: {shown}"
        )
    frame["target"] = numeric.astype(int)


def load_melanoma(
    root: str | Path, verify: bool = False, workers: int = 8
) -> pd.DataFrame:
    """Read and validate a melanoma data set in either layout.

    Returns the marking table with at least ``image_id, patient_id, target, path`` and,
    where a ``masks/`` folder exists, ``mask_path`` (``cue_path`` where a ``cues/`` folder
    holds a spurious cue's mask). Ids are read as text, so ``0000123`` keeps its zeros.
    Raises :class:`DataError` naming what is wrong: a missing ``marking.csv``, missing columns,
    targets outside {0, 1}, duplicate ids, or image files that are not there.

    With ``verify=True`` every image and mask is also decoded once (``workers`` threads) and all
    unreadable files are reported together — worth it once after a download or a copy, so that
    a corrupt file fails now rather than in the middle of an epoch.
    """
    root = Path(root)
    csv = root / "marking.csv"
    if not csv.is_file():
        hint = " (the folder does not exist)" if not root.exists() else ""
        raise DataError(
            f"no marking.csv in {root}{hint}: is this the melanoma data set's root folder?"
        )
    frame = _read_marking(csv)
    frame["image_id"] = frame["image_id"].astype(str).str.strip()
    _check_targets(frame, csv)
    dupes = frame.loc[frame["image_id"].duplicated(), "image_id"]
    if len(dupes):
        raise DataError(
            f"{csv}: {len(dupes)} duplicate image_id(s): {listed(dupes.unique())}"
        )
    # images without a patient (some external ISIC images) count as patients of their own
    patients = frame["patient_id"].astype(object)
    no_patient = patients.isna() | (patients.astype(str).str.strip() == "")
    patients[no_patient] = "NOPATIENT_" + frame.loc[no_patient, "image_id"]
    frame["patient_id"] = patients.astype(str)

    images = _image_dir(root)
    present = {p.name for p in images.iterdir()}
    names = frame["image_id"] + ".jpg"
    absent = names[~names.isin(present)]
    if len(absent):
        raise DataError(
            f"{len(absent)} of {len(frame)} image file(s) listed in {csv.name} are missing "
            f"from {images}: {listed(absent)}"
        )
    frame["path"] = [str(images / n) for n in names]
    for column, folder in (("mask_path", root / "masks"), ("cue_path", root / "cues")):
        if folder.is_dir():
            files = {p.name for p in folder.iterdir()}
            frame[column] = [
                str(folder / f"{i}.png") if f"{i}.png" in files else None
                for i in frame["image_id"]
            ]
    if verify:
        verify_images(
            frame["path"],
            frame.get("mask_path", ()),
            workers=workers,
        )
    return frame


def _fold_counts(
    fractions: tuple[float, ...], max_folds: int = 100
) -> tuple[int, tuple[int, ...]]:
    """``(n_folds, ks)``: the fewest folds of which ``ks[i]`` make a share within 0.025 of
    ``fractions[i]`` for every ``i`` (a zero fraction takes no fold), leaving one for training."""
    for n in range(2, max_folds + 1):
        ks = tuple(round(f * n) for f in fractions)
        if (
            all((k >= 1) == (f > 0) for k, f in zip(ks, fractions))
            and sum(ks) < n
            and all(abs(k / n - f) <= 0.025 for k, f in zip(ks, fractions))
        ):
            return n, ks
    return max_folds, tuple(
        max(1, round(f * max_folds)) if f > 0 else 0 for f in fractions
    )


def class_counts(frame: pd.DataFrame) -> str:
    """``"N benign, M melanoma"`` for a marking frame."""
    melanoma = int(frame["target"].sum())
    return f"{len(frame) - melanoma} benign, {melanoma} melanoma"


class Split(NamedTuple):
    """The three sides of a patient split (:func:`split_by_patient`).

    ``train`` fits the weights; ``val`` chooses among settings and epochs; ``test`` is looked
    at once, for the figure that is reported. ``test`` is empty when the split was asked for
    without one (``test_fraction=0``).
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def split_by_patient(
    frame: pd.DataFrame,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    *,
    seed: int = 0,
) -> Split:
    """Split into :class:`Split` ``(train, val, test)``: no patient on two sides, class ratio kept.

    Uses scikit-learn's ``StratifiedGroupKFold``: the patients are dealt into ``n`` folds of
    about equal class balance; the first folds form the validation set, the next ones the
    test set, the rest the training set, with shares the closest simple fractions to those
    asked for (1 + 1 of 5 folds for 0.2 and 0.2; 2 of 7 for a validation share of 0.3 without
    a test set). The validation side does not depend on ``test_fraction`` when the fold count
    does not: with 0.2 and 0.2 it is the same as that of a two-way 80/20 split, and the test
    side is carved out of that split's training side.

    Raises :class:`DataError` when there are too few patients for that many folds, or when a
    side would lack a class (an AUC needs both classes), and ``ValueError`` for fractions
    outside their range.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(
            f"val_fraction must be between 0 and 1 (exclusive), not {val_fraction}"
        )
    if not 0 <= test_fraction < 1:
        raise ValueError(
            f"test_fraction must be at least 0 and below 1, not {test_fraction}"
        )
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must stay below 1 (training needs images), "
            f"not {val_fraction} + {test_fraction}"
        )
    if frame["target"].nunique() < 2:
        raise DataError(
            f"the data set holds one class only ({class_counts(frame)}): a classifier needs both "
            "benign and melanoma images"
        )
    n_splits, (k_val, k_test) = _fold_counts((val_fraction, test_fraction))
    n_patients = frame["patient_id"].nunique()
    if n_patients < n_splits:
        raise DataError(
            f"{n_patients} patients cannot be split {n_splits} ways (needed for a "
            f"validation share of {val_fraction} and a test share of {test_fraction})"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    side = np.zeros(len(frame), dtype=int)  # 0 train, 1 validation, 2 test
    dealt = folds.split(frame, frame["target"], groups=frame["patient_id"])
    for index, (_, fold) in zip(range(k_val + k_test), dealt):
        side[fold] = 1 if index < k_val else 2
    split = Split(*(frame[side == s].reset_index(drop=True) for s in (0, 1, 2)))
    for name, part in (("validation", split.val), ("training", split.train)) + (
        (("test", split.test),) if k_test else ()
    ):
        if part["target"].nunique() < 2:
            raise DataError(
                f"the {name} split holds {class_counts(part)} (of {class_counts(frame)} in all): "
                "every side needs both classes; use more images or patients, or other fractions"
            )
    return split


def undersample(frame: pd.DataFrame, n_negatives: int, seed: int = 0) -> pd.DataFrame:
    """All positives plus ``n_negatives`` randomly drawn negatives (the Paperspace tutorial's balancing).

    Cheap and simple, but it throws data away; :func:`balanced_sampler` keeps every image.
    Apply it to the *training* split only: the validation set must keep the true class ratio.
    """
    negatives = frame[frame["target"] == 0]
    chosen = negatives.sample(min(n_negatives, len(negatives)), random_state=seed)
    return (
        pd.concat([frame[frame["target"] == 1], chosen])
        .sample(frac=1, random_state=seed)
        .reset_index(drop=True)
    )


def balanced_sampler(
    frame: pd.DataFrame, num_samples: int | None = None, seed: int | None = None
):
    """A ``WeightedRandomSampler`` that draws both classes equally often (with replacement)."""
    # the rest of this module (CSV checks, splits) works without torch
    import torch
    from torch.utils.data import WeightedRandomSampler

    counts = np.bincount(frame["target"].to_numpy(), minlength=2).astype(float)
    if (counts == 0).any():
        raise DataError("balanced_sampler needs both classes in the frame")
    weights = (1.0 / counts)[frame["target"].to_numpy()]
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double),
        num_samples or len(frame),
        replacement=True,
        generator=generator,
    )
