"""Lesion data: synthetic generator, Kaggle layout loader, patient splits, Dataset, loaders, download.

Introduced in notebook ``01_lesion_data``. The names below are imported on first use (PEP 562),
so ``import course_lib.data.synthetic`` does not load torch: the generator's worker processes
start in a fraction of a second instead of three.
"""

from importlib import import_module

#: Each public name and the submodule that defines it.
_SOURCES = {
    "AugmentParams": "augment",
    "BatchAugment": "augment",
    "BatchNormalize": "augment",
    "MelanomaDataset": "dataset",
    "KAGGLE_DATASET": "download",
    "KaggleCredentialsError": "download",
    "download_melanoma": "download",
    "DataError": "errors",
    "read_mask": "images",
    "read_rgb": "images",
    "verify_images": "images",
    "DeviceLoader": "loaders",
    "make_loaders": "loaders",
    "balanced_sampler": "melanoma",
    "class_counts": "melanoma",
    "load_melanoma": "melanoma",
    "split_by_patient": "melanoma",
    "Split": "melanoma",
    "undersample": "melanoma",
    "default_data_dir": "synthetic",
    "ensure_synthetic_lesions": "synthetic",
    "make_synthetic_lesions": "synthetic",
    "IMAGENET_MEAN": "augment",
    "IMAGENET_STD": "augment",
    "denormalize": "transforms",
    "eval_transforms": "transforms",
    "train_transforms": "transforms",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value  # the next access is an ordinary attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_SOURCES))
