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

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from .errors import DataError, listed
from .images import verify_images

__all__ = [
    "REQUIRED_COLUMNS",
    "load_melanoma",
    "split_by_patient",
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


def _fold_counts(val_fraction: float, max_folds: int = 100) -> tuple[int, int]:
    """``(n_folds, k)``: the fewest folds of which ``k`` make a share within 0.025 of ``val_fraction``."""
    for n in range(2, max_folds + 1):
        k = round(val_fraction * n)
        if 1 <= k < n and abs(k / n - val_fraction) <= 0.025:
            return n, k
    return max_folds, max(1, round(val_fraction * max_folds))


def class_counts(frame: pd.DataFrame) -> str:
    """``"N benign, M melanoma"`` for a marking frame."""
    melanoma = int(frame["target"].sum())
    return f"{len(frame) - melanoma} benign, {melanoma} melanoma"


def split_by_patient(frame: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0):
    """Split into ``(train, val)`` with no patient on both sides, keeping the class ratio.

    Uses scikit-learn's ``StratifiedGroupKFold``: the patients are dealt into ``n`` folds of
    about equal class balance and ``k`` of them form the validation set, with ``k / n`` the
    closest simple fraction to ``val_fraction`` (1 of 5 folds for 0.2, 2 of 7 for 0.3, 7 of 10
    for 0.7). Raises :class:`DataError` when there are too few patients for that many folds,
    or when either side would lack a class (an AUC needs both classes in validation).
    """
    if not 0 < val_fraction < 1:
        raise ValueError(
            f"val_fraction must be between 0 and 1 (exclusive), not {val_fraction}"
        )
    if frame["target"].nunique() < 2:
        raise DataError(
            f"the data set holds one class only ({class_counts(frame)}): a classifier needs both "
            "benign and melanoma images"
        )
    n_splits, k = _fold_counts(val_fraction)
    n_patients = frame["patient_id"].nunique()
    if n_patients < n_splits:
        raise DataError(
            f"{n_patients} patients cannot be split {n_splits} ways "
            f"(needed for a validation share of {val_fraction})"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    val_idx = np.sort(
        np.concatenate(
            [
                test
                for _, (_, test) in zip(
                    range(k),
                    folds.split(frame, frame["target"], groups=frame["patient_id"]),
                )
            ]
        )
    )
    in_val = np.zeros(len(frame), dtype=bool)
    in_val[val_idx] = True
    train, val = (
        frame[~in_val].reset_index(drop=True),
        frame[in_val].reset_index(drop=True),
    )
    for name, part in (("validation", val), ("training", train)):
        if part["target"].nunique() < 2:
            raise DataError(
                f"the {name} split holds {class_counts(part)} (of {class_counts(frame)} in all): "
                "both sides need both classes; use more images or patients, or another val_fraction"
            )
    return train, val


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
