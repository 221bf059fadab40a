"""Lesion data: synthetic generator, Kaggle layout loader, patient splits, Dataset, download.

Introduced in notebook ``01_lesion_data``.
"""

from .dataset import MelanomaDataset, make_loaders, read_rgb
from .download import KAGGLE_DATASET, KaggleCredentialsError, download_melanoma
from .errors import DataError
from .melanoma import balanced_sampler, load_melanoma, split_by_patient, undersample
from .synthetic import default_data_dir, ensure_synthetic_lesions, make_synthetic_lesions
from .transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize, eval_transforms, train_transforms

__all__ = [
    "DataError", "KaggleCredentialsError", "KAGGLE_DATASET", "MelanomaDataset", "make_loaders", "read_rgb",
    "balanced_sampler", "default_data_dir", "download_melanoma", "ensure_synthetic_lesions", "load_melanoma", "make_synthetic_lesions",
    "split_by_patient", "undersample", "IMAGENET_MEAN", "IMAGENET_STD", "denormalize",
    "eval_transforms", "train_transforms",
]
