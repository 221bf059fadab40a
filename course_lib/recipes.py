"""The course's AttnVGG recipe (notebook ``10_attnvgg_melanoma``), reused by notebooks 11–13.

One place says how the lesion data is prepared, loaded and how AttnVGG is trained in each
run profile, so that the later notebooks reuse notebook 10's checkpoints (``fit(resume=True)``
returns a finished run at once) instead of training the same model again.

The recipe: the profile's synthetic lesions split by patient; the profile's loaders
(:func:`profile_loaders`); AttnVGG at the profile's width (ImageNet weights where the profile
asks for them, which needs the full width); AdamW with a cosine schedule over the profile's
epochs; focal loss with ``gamma = 2`` and no class weight; mixed precision where the device
runs it natively; ``channels_last``; the last epoch is the model (no choice of epoch on the
validation set).

**A run knows what it holds.** The recipe is a :class:`~course_lib.runspec.RunSpec` trained
by :func:`~course_lib.train.train_run`: its folder, ``runs/attnvgg/<size>px/<tag>-seed<S>-<id>``,
carries the seed and a fingerprint of every setting — the images and labels of both splits,
the augmentation, the model options, the optimiser, the loss, the epochs, the precision —
and ``fit`` stores the same description in the run's manifest and checks it before
resuming. A different seed, different data or a different option never reloads another run.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from .checkpoint import load_checkpoint, save_atomic
from .config import get_device, seed_everything
from .data import (
    BatchNormalize,
    DeviceLoader,
    MelanomaDataset,
    Split,
    ensure_synthetic_lesions,
    load_melanoma,
    make_loaders,
    split_by_patient,
)
from .detection import detection_loaders, lesion_detector, train_detector
from .losses import FocalLoss
from .runspec import RUNS, ModelSpec, TrainConfig, images_fingerprint
from .train import train_run

__all__ = [
    "lesion_splits",
    "profile_loaders",
    "eval_loader",
    "train_attnvgg",
    "train_lesion_detector",
    "RUNS",
]


def lesion_splits(profile, seed: int = 0, **options) -> Split:
    """The profile's synthetic lesions (generated once, cached), split 60/20/20 by patient.

    Returns :class:`~course_lib.data.Split` ``(train, val, test)``, the split of every
    chapter from 01 on: the test side is scored once, for the reported figures, and never
    chooses anything. ``options`` go to :func:`~course_lib.data.make_synthetic_lesions`
    (e.g. ``spurious_cue``); the same ``seed`` with and without a cue gives the same
    patients, lesions and split.
    """
    root = ensure_synthetic_lesions(
        profile.n_images, profile.image_size, seed=seed, **options
    )
    return split_by_patient(
        load_melanoma(root), val_fraction=0.2, test_fraction=0.2, seed=seed
    )


def profile_loaders(
    profile,
    train_frame: pd.DataFrame,
    val_frame: pd.DataFrame,
    *,
    with_mask: bool = False,
    device=None,
    seed: int = 0,
    sampler=None,
):
    """Training and validation loaders at the profile's image size, batch size and workers."""
    return make_loaders(
        train_frame,
        val_frame,
        profile.image_size,
        profile.batch_size,
        num_workers=profile.num_workers,
        with_mask=with_mask,
        sampler=sampler,
        device=device,
        seed=seed,
    )


def eval_loader(profile, frame: pd.DataFrame, *, with_mask: bool = False, device=None):
    """One loader over every image of ``frame``, unaugmented, in order: for scores and maps."""
    device = device if device is not None else get_device()
    return DeviceLoader(
        MelanomaDataset(frame, with_mask=with_mask, image_size=profile.image_size),
        batch_size=profile.batch_size,
        num_workers=profile.num_workers,
        persistent_workers=profile.num_workers > 0,
        batch_transform=BatchNormalize(),
        device=device,
        pin_memory=str(device).startswith("cuda"),
    )


def _profile_identity(recipe: str, profile, epochs: int, seed: int) -> dict:
    """What the detector's run identity starts with: the recipe, the profile, epochs, seed."""
    return {
        "recipe": recipe,
        "profile": profile.name,
        "image_size": profile.image_size,
        "width": profile.width,
        "batch_size": profile.batch_size,
        "epochs": epochs,
        "seed": seed,
    }


def train_attnvgg(
    profile,
    train_loader,
    val_loader,
    tag: str,
    normalize_attn: bool = True,
    aux_loss=None,
    epochs: int | None = None,
    seed: int = 0,
    device=None,
    verbose: bool = True,
    **model_options,
):
    """Train (or, when its run folder holds the finished run, reload) AttnVGG with the recipe.

    Returns ``(model, history)``: the model after its last epoch, in eval mode, on ``device``;
    ``history.attrs["run_dir"]`` is the run's folder. ``tag`` names the variant; the folder also
    carries the seed and a fingerprint of data and options (see the module's docstring).
    ``epochs`` defaults to the profile's; ``model_options`` go to :class:`~course_lib.models.AttnVGG`.
    """
    pretrained = profile.pretrained and profile.width == 1.0
    if profile.name == "gpu" and not pretrained and verbose:
        print(
            "ImageNet weights off (COURSE_PRETRAINED=0, or a width below 1): AttnVGG trains "
            "from scratch, so expect a lower AUC than with them"
        )
    config = TrainConfig.for_profile(
        profile,
        device,
        loss=FocalLoss(alpha=None, gamma=2.0),
        aux_loss=aux_loss,
        seed=seed,
        **({"epochs": epochs} if epochs else {}),
    )
    model = ModelSpec(
        "attnvgg",
        {
            "width": profile.width,
            "normalize_attn": normalize_attn,
            "pretrained": pretrained,
            **model_options,
        },
    )
    return train_run(
        model, train_loader, val_loader, config, tag=tag, root=RUNS, verbose=verbose
    )


def train_lesion_detector(
    profile,
    train_frame: pd.DataFrame,
    epochs: int | None = None,
    seed: int = 0,
    device=None,
    verbose: bool = True,
):
    """Train (or reload) the lesion detector of notebook 13 with the profile's settings.

    Returns ``(model, history)``, the model in eval mode. The run is saved atomically to
    ``runs/detector/<profile>-<size>px/seed<S>-<fingerprint>/detector.pt`` (the fingerprint
    covers the training images, labels, epochs and settings) and reloaded from there.
    ``epochs`` defaults to half the profile's (the boxes are learned quickly).
    """
    device = device or get_device()
    epochs = epochs or max(1, profile.epochs // 2)
    identity = {
        **_profile_identity("fcos", profile, epochs, seed),
        "lr": 1e-3,
        "fpn_channels": 64,
        "head_convs": 2,
        "train_data": images_fingerprint(train_frame["path"], train_frame["target"]),
    }
    fingerprint = hashlib.sha1(
        json.dumps(identity, sort_keys=True).encode()
    ).hexdigest()[:8]
    path = (
        RUNS
        / "detector"
        / f"{profile.name}-{profile.image_size}px"
        / f"seed{seed}-{fingerprint}"
        / "detector.pt"
    )
    seed_everything(seed)
    model = lesion_detector(
        width=profile.width,
        image_size=profile.image_size,
        fpn_channels=64,
        head_convs=2,
    )
    if path.is_file():
        saved = load_checkpoint(path)
        model.load_state_dict(saved["model"])
        history = pd.DataFrame(saved["history"])
    else:
        train_loader, _ = detection_loaders(
            train_frame, train_frame.iloc[:0], profile.image_size, profile.batch_size
        )
        history = train_detector(
            model, train_loader, epochs=epochs, device=device, verbose=verbose
        )
        save_atomic(
            {
                "model": model.state_dict(),
                "history": history.to_dict("list"),
                "identity": identity,
            },
            path,
        )
    history.attrs["run_dir"] = str(path.parent)
    return model.to(device).eval(), history
