"""The course's AttnVGG recipe (notebook ``10_attnvgg_melanoma``), reused by notebooks 11 and 12.

One place says how the lesion data is prepared and how AttnVGG is trained in each run
profile, so that the later notebooks reuse notebook 10's checkpoints (``fit(resume=True)``
returns a finished run at once) instead of training the same model again.

The recipe: the profile's synthetic lesions split by patient; AttnVGG at the profile's
width (ImageNet weights where the profile asks for them, which needs the full width);
AdamW with a cosine schedule; focal loss with ``gamma = 2`` and no class weight; mixed
precision where the device runs it natively; ``channels_last``; the last epoch is the model
(no choice of epoch on the validation set).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["lesion_splits", "attnvgg_run_dir", "train_attnvgg", "RUNS", "EPOCHS"]

#: Where runs are checkpointed, relative to the working directory (``notebooks/`` in the book).
RUNS = Path("runs")

#: Epochs of the recipe per profile. In the ``cpu`` profile AttnVGG needs more than the
#: profile's 8: the last-epoch validation AUC was 0.915 and 0.897 after 8 epochs (seeds 0, 1)
#: and 0.908, 0.908 and 0.913 after 12 (seeds 0, 1, 2), on 2 CPU cores with bf16 autocast.
EPOCHS = {"smoke": 1, "cpu": 12, "gpu": 20}


def lesion_splits(profile, seed: int = 0, **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The profile's synthetic lesions (generated once, cached), split 80/20 by patient.

    ``options`` go to :func:`~course_lib.data.make_synthetic_lesions` (e.g. ``spurious_cue``);
    the same ``seed`` with and without a cue gives the same patients, lesions and split.
    """
    from .data import ensure_synthetic_lesions, load_melanoma, split_by_patient

    root = ensure_synthetic_lesions(profile.n_images, profile.image_size, seed=seed, **options)
    return split_by_patient(load_melanoma(root), val_fraction=0.2, seed=seed)


def attnvgg_run_dir(profile, tag: str) -> Path:
    """``runs/attnvgg/<profile>-<size>px/<tag>``: one folder per trained variant."""
    return RUNS / "attnvgg" / f"{profile.name}-{profile.image_size}px" / tag


def train_attnvgg(profile, train_loader, val_loader, tag: str, normalize_attn: bool = True, aux_loss=None,
                  epochs: int | None = None, seed: int = 0, device=None, verbose: bool = True, **model_options):
    """Train (or, when its run folder holds a finished run, reload) AttnVGG with the recipe.

    Returns ``(model, history)``: the model after its last epoch, in eval mode, on ``device``. ``tag`` names the
    run folder (:func:`attnvgg_run_dir`); give each variant its own. ``epochs`` defaults to
    :data:`EPOCHS` of the profile; ``model_options`` go to :class:`~course_lib.models.AttnVGG`.
    """
    from .config import fast_mixed_precision, get_device, seed_everything
    from .losses import FocalLoss
    from .models import AttnVGG
    from .train import fit

    device = device or get_device()
    seed_everything(seed)
    pretrained = profile.pretrained and profile.width == 1.0
    model = AttnVGG(num_classes=1, normalize_attn=normalize_attn, width=profile.width, pretrained=pretrained,
                    **model_options)
    out = attnvgg_run_dir(profile, tag)
    history = fit(model, train_loader, val_loader, epochs=epochs or EPOCHS.get(profile.name, profile.epochs), lr=1e-3,
                  loss_fn=FocalLoss(alpha=None, gamma=2.0), aux_loss=aux_loss, device=device, out_dir=out,
                  resume=True, amp=fast_mixed_precision(device), channels_last=True, seed=seed,
                  progress=False, verbose=verbose)
    return model.eval(), history  # a finished run on disk: fit loaded its last epoch's weights
