"""Lesion data: synthetic generator, Kaggle layout loader, patient splits, Dataset, loaders, download.

Introduced in notebook ``01_lesion_data``.
"""

from .augment import AugmentParams, BatchAugment, BatchNormalize
from .dataset import MelanomaDataset
from .download import KAGGLE_DATASET, KaggleCredentialsError, download_melanoma
from .errors import DataError
from .images import read_mask, read_rgb, verify_images
from .loaders import DeviceLoader, make_loaders
from .melanoma import balanced_sampler, class_counts, load_melanoma, split_by_patient, undersample
from .synthetic import default_data_dir, ensure_synthetic_lesions, make_synthetic_lesions
from .transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize, eval_transforms, train_transforms

__all__ = [
    "AugmentParams", "BatchAugment", "BatchNormalize", "DataError", "DeviceLoader", "KAGGLE_DATASET",
    "KaggleCredentialsError", "MelanomaDataset", "IMAGENET_MEAN", "IMAGENET_STD", "balanced_sampler",
    "class_counts", "default_data_dir", "denormalize", "download_melanoma", "ensure_synthetic_lesions",
    "eval_transforms", "load_melanoma", "make_loaders", "make_synthetic_lesions", "read_mask", "read_rgb",
    "split_by_patient", "train_transforms", "undersample", "verify_images",
]
