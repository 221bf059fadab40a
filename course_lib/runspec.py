"""A run as a value: what is trained, on what, and how (notebook ``02_vgg16_baseline``).

Three frozen dataclasses say everything that makes a training run what it is:

- :class:`ModelSpec`: the model's name (one of :data:`course_lib.models.MODEL_NAMES`) and
  its options; ``build()`` makes a fresh model;
- :class:`DataSpec`: read off the loaders themselves (:meth:`DataSpec.of`) — a fingerprint of
  the images and labels of each split, the image size, the batch size, the training
  augmentation (a :class:`~course_lib.data.BatchAugment`), the sampler;
- :class:`TrainConfig`: what ``fit`` needs — epochs, the optimiser
  (:class:`OptimizerSpec`: name, learning rate, weight decay, schedule), the loss and an
  auxiliary loss, precision, memory layout, compilation, the seed, and the device, decided
  once here and checked against the loaders' by ``fit``.

A :class:`RunSpec` puts the three together. :meth:`RunSpec.describe` lists every field as
``section.field: value`` (a loss module by its repr and a hash of its tensors), and the run
folder is named by a hash of that list (:meth:`RunSpec.run_dir`): change any setting — the
augmentation, the learning rate, the loss's gamma — and the run trains into a new folder
instead of reusing another run's checkpoint. ``fit`` stores the same list in the folder's
``run.json`` and refuses to resume a run whose list differs, naming the field.

What is deliberately *not* part of a run: the number of loader workers, the folder the data
lives in, and whether the loaders also deliver lesion masks (the course's runs are exact
whatever the workers; the data is identified by its images and labels, not by where it is;
masks change nothing unless a loss reads them, and that loss is part of the
:class:`TrainConfig`). So chapter 12, whose loaders carry masks, reuses chapter 10's run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import fast_mixed_precision, get_device
from .data.errors import DataError

__all__ = [
    "RUNS",
    "OptimizerSpec",
    "TrainConfig",
    "ModelSpec",
    "DataSpec",
    "RunSpec",
    "describe",
    "images_fingerprint",
    "same_device",
]

#: Where runs are checkpointed, relative to the working directory (``notebooks/`` in the book).
RUNS = Path("runs")

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant")


def _positive_finite(name: str, value: float, zero_allowed: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if zero_allowed else value > 0)
    ok = (
        ok and abs(value) <= torch.finfo(torch.float32).max
    )  # the optimiser's precision
    if not ok:
        bound = ">= 0" if zero_allowed else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, not {value!r}")


@dataclass(frozen=True)
class OptimizerSpec:
    """The optimiser and its schedule: AdamW with a cosine decay over the run by default.

    ``name``: "adamw", "adam" or "sgd" (``momentum`` is SGD's); ``schedule``: "cosine"
    (from ``lr`` to 0 over the run's epochs) or "constant".
    """

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.name!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}"
            )
        _positive_finite("lr", self.lr)
        _positive_finite("weight_decay", self.weight_decay, zero_allowed=True)
        _positive_finite("momentum", self.momentum, zero_allowed=True)

    def build(self, parameters, epochs: int):
        """``(optimizer, scheduler or None)`` over ``parameters`` for a run of ``epochs``."""
        parameters = list(parameters)
        if self.name == "sgd":
            optimizer = torch.optim.SGD(
                parameters,
                lr=self.lr,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
            )
        else:
            kind = torch.optim.AdamW if self.name == "adamw" else torch.optim.Adam
            optimizer = kind(parameters, lr=self.lr, weight_decay=self.weight_decay)
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
            if self.schedule == "cosine"
            else None
        )
        return optimizer, scheduler


def same_device(a, b) -> bool:
    """Whether two devices are the same one ("cuda" is the current CUDA device)."""
    a, b = torch.device(a), torch.device(b)
    if a.type != b.type:
        return False
    if a.type == "cuda" and (a.index is None) != (b.index is None):
        current = torch.cuda.current_device()
        return (a.index if a.index is not None else current) == (
            b.index if b.index is not None else current
        )
    return a.index == b.index


@dataclass(frozen=True)
class TrainConfig:
    """What ``fit`` needs to train: every setting that changes the result, and nothing else.

    ``loss``: a loss module for ``(logits, targets)``, or None for ``BCEWithLogitsLoss`` (one
    logit) / ``CrossEntropyLoss`` (more); ``aux_loss(output, *extras)``: a loss added on the
    whole output and the batch's extra items (e.g. lesion masks). ``amp``: mixed precision
    (False, True, "bf16" or "fp16"). ``device``: where the model trains; None picks
    :func:`course_lib.config.get_device` once, here, and the loaders must deliver there.
    """

    epochs: int
    optimizer: OptimizerSpec = OptimizerSpec()
    loss: nn.Module | None = None
    aux_loss: nn.Module | None = None
    amp: bool | str = False
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    device: torch.device | str | None = None

    def __post_init__(self):
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int):
            raise ValueError(f"epochs must be an integer, not {self.epochs!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1 (got {self.epochs})")
        if self.amp not in (False, True, "bf16", "fp16"):
            raise ValueError(
                f"amp must be True, False, 'bf16' or 'fp16', not {self.amp!r}"
            )
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or self.seed < 0
        ):
            raise ValueError(f"seed must be an integer >= 0, not {self.seed!r}")
        device = get_device() if self.device is None else torch.device(self.device)
        object.__setattr__(self, "device", device)

    @classmethod
    def for_profile(cls, profile, device=None, **overrides) -> TrainConfig:
        """The course's settings for a run profile: its epochs, mixed precision where the
        device runs it natively (:func:`~course_lib.config.fast_mixed_precision`),
        ``channels_last``; ``overrides`` replace any field."""
        device = torch.device(device) if device is not None else get_device()
        settings = dict(
            epochs=profile.epochs,
            amp=fast_mixed_precision(device),
            channels_last=True,
            device=device,
        )
        return cls(**{**settings, **overrides})


@dataclass(frozen=True)
class ModelSpec:
    """A model by its name (:data:`course_lib.models.MODEL_NAMES`) and constructor options."""

    name: str
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        from .models import MODEL_NAMES

        if self.name not in MODEL_NAMES:
            raise ValueError(
                f"unknown model {self.name!r}; choose one of {', '.join(MODEL_NAMES)}"
            )
        object.__setattr__(self, "options", dict(sorted(self.options.items())))

    def build(self) -> nn.Module:
        """A fresh model (its initial weights drawn from torch's global generator)."""
        from .models import build_model

        return build_model(self.name, **self.options)


def _fingerprint(*arrays) -> str:
    digest = hashlib.sha1()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:12]


def _size(path) -> int:
    try:
        return os.stat(path).st_size
    except OSError as err:
        raise DataError(
            f"image file not found or unreadable: {path} ({err.strerror})"
        ) from None


def images_fingerprint(paths, targets) -> str:
    """A list of images and their labels, wherever the files lie: each image's file name and
    size, in order, with the labels (the detector's run identity uses it too)."""
    names = "\n".join(Path(p).name for p in paths).encode()
    sizes = np.array([_size(p) for p in paths], np.int64)
    return _fingerprint(
        np.frombuffer(names, np.uint8), sizes, np.asarray(targets, np.float32)
    )


def _dataset_fingerprint(dataset) -> str:
    """The images and labels of a data set: :func:`images_fingerprint` for the course's,
    their values for tensors."""
    paths, targets = getattr(dataset, "paths", None), getattr(dataset, "targets", None)
    if paths is not None and targets is not None:
        return images_fingerprint(paths, targets)
    tensors = getattr(dataset, "tensors", None)  # a TensorDataset
    if tensors is not None:
        return _fingerprint(*(t.detach().cpu().numpy() for t in tensors))
    raise TypeError(
        f"cannot identify the images of a {type(dataset).__name__}: use the course's "
        "loaders (make_loaders, MelanomaDataset inside) or a TensorDataset"
    )


def _sampler_words(loader) -> str:
    sampler = getattr(loader, "sampler", None)
    weights = getattr(sampler, "weights", None)
    if weights is not None:  # WeightedRandomSampler
        return f"{type(sampler).__name__}({_fingerprint(weights.numpy())}, {sampler.num_samples})"
    return type(sampler).__name__ if sampler is not None else "none"


@dataclass(frozen=True)
class DataSpec:
    """The data a run reads, taken from its loaders (:meth:`of`)."""

    train: str
    val: str
    image_size: int | None
    batch_size: int
    augment: object
    sampler: str
    drop_last: bool

    @classmethod
    def of(cls, train_loader, val_loader) -> DataSpec:
        """What the two loaders deliver: images and labels, size, batch, augmentation, order."""
        dataset = train_loader.dataset
        return cls(
            train=_dataset_fingerprint(dataset),
            val=_dataset_fingerprint(val_loader.dataset),
            image_size=getattr(dataset, "image_size", None),
            batch_size=train_loader.batch_size,
            augment=getattr(train_loader, "batch_transform", None)
            or getattr(dataset, "transform", None),
            sampler=_sampler_words(train_loader),
            drop_last=bool(train_loader.drop_last),
        )


def _module_words(module: nn.Module) -> str:
    """A module by its repr and a hash of its tensors (``pos_weight`` is not in the repr)."""
    tensors = [t.detach().float().cpu().numpy() for t in module.state_dict().values()]
    return f"{module!r} [{_fingerprint(*tensors)}]" if tensors else repr(module)


def describe(value, prefix: str = "") -> dict:
    """``{"section.field": value}`` for a dataclass, recursively; modules by their words."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        words = {}
        if prefix:
            words[prefix] = type(value).__name__
        for f in dataclasses.fields(value):
            name = f"{prefix}.{f.name}" if prefix else f.name
            words.update(describe(getattr(value, f.name), name))
        return words
    if isinstance(value, dict):
        return {f"{prefix}.{k}": _plain(v) for k, v in value.items()} or {prefix: {}}
    return {prefix: _plain(value)}


def _plain(value):
    if isinstance(value, nn.Module):
        return _module_words(value)
    if isinstance(value, torch.device):
        return value.type  # cuda:0 and cuda:1 train the same run
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


@dataclass(frozen=True)
class RunSpec:
    """One training run: the model, the data, the training settings."""

    model: ModelSpec
    data: DataSpec
    train: TrainConfig

    def describe(self) -> dict:
        """Every field as ``{"section.field": value}``: what ``run.json`` stores."""
        return describe(self)

    def fingerprint(self) -> str:
        """A 10-character hash of :meth:`describe`: equal for equal runs, and only for them."""
        text = json.dumps(self.describe(), sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    def run_dir(self, tag: str, root: str | Path = RUNS) -> Path:
        """``root/<model>/<size>px/<tag>-seed<S>-<fingerprint>``: the run's own folder."""
        size = self.data.image_size
        return (
            Path(root)
            / self.model.name
            / (f"{size}px" if size else "any-size")
            / f"{tag}-seed{self.train.seed}-{self.fingerprint()}"
        )
