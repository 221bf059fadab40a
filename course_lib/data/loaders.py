"""Loaders that feed a device: workers decode, the device augments (notebooks ``01`` and ``02``).

A :class:`DeviceLoader` is a ``torch.utils.data.DataLoader`` whose batches arrive on the
training device, already transformed there: its workers return ``uint8`` images
(:class:`~course_lib.data.MelanomaDataset` with ``image_size``), the batch is copied to the
device (from pinned memory, without blocking, when the device is a GPU), and its
``batch_transform`` — :class:`~course_lib.data.augment.BatchAugment` for training,
:class:`~course_lib.data.augment.BatchNormalize` for evaluation — runs on the whole batch.

**Reproducible to the batch.** Every random choice of an epoch is a function of
``(seed, epoch)``: the order of the images comes from the sampler's own generator, seeded
at the start of each epoch, and the augmentation of batch ``k`` from a generator seeded with
``(seed, epoch, k)``. Nothing random runs in the workers and nothing is drawn from the
global random stream, so a run resumed at epoch 3 draws exactly what an uninterrupted run
draws in epoch 3, whatever ``num_workers`` (``fit`` calls :meth:`DeviceLoader.set_epoch`).
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, RandomSampler

from ..config import get_device
from .augment import BatchAugment, BatchNormalize
from .dataset import MelanomaDataset

__all__ = ["DeviceLoader", "make_loaders", "mix_seed", "quiet_worker_init"]

#: What a worker's helper thread sees when the main process has stopped mid-transfer.
_PARENT_GONE = (ConnectionResetError, BrokenPipeError, EOFError)


def _report_unless_parent_gone(args) -> None:
    if issubclass(args.exc_type, _PARENT_GONE):
        return
    threading.__excepthook__(args)


def quiet_worker_init(worker_id: int) -> None:
    """The workers' ``worker_init_fn``: a helper thread of a worker (the one that hands a
    batch's memory to the main process) whose connection breaks because the main process
    stopped (Ctrl-C, SIGTERM) ends without a word, instead of printing a traceback under
    the run's one-line message. Other errors are reported as usual."""
    threading.excepthook = _report_unless_parent_gone


def mix_seed(*numbers: int) -> int:
    """One 63-bit seed from several integers (a seed, an epoch, a step), via NumPy's SeedSequence."""
    return int(
        np.random.SeedSequence([int(n) for n in numbers])
        .generate_state(2, np.uint32)
        .view(np.uint64)[0]
        >> np.uint64(1)
    )


class DeviceLoader(DataLoader):
    """A DataLoader whose batches are moved to ``device`` and passed through ``batch_transform`` there.

    ``batch_transform(images, masks=None, generator=None)`` returns ``(images, masks)``; each batch
    item after the target (a lesion mask) is handed to it as ``masks``. With ``shuffle=True``
    and no ``sampler``, the order comes from a ``RandomSampler`` with its own generator. Any
    sampler with a ``generator`` attribute (``RandomSampler``, ``WeightedRandomSampler``) is
    re-seeded from ``(seed, epoch)`` at the start of every epoch. Other arguments are the
    DataLoader's.
    """

    def __init__(
        self,
        dataset,
        *,
        batch_transform=None,
        device=None,
        seed: int = 0,
        shuffle: bool = False,
        sampler=None,
        generator: torch.Generator | None = None,
        **options,
    ):
        if shuffle and sampler is None:
            sampler = RandomSampler(dataset, generator=torch.Generator())
        options.setdefault("worker_init_fn", quiet_worker_init)
        # the workers' base seeds come from a generator of their own, never from the global stream
        super().__init__(
            dataset,
            sampler=sampler,
            generator=generator or torch.Generator(),
            **options,
        )
        self.batch_transform = batch_transform
        self.device = (
            torch.device(device) if device is not None else torch.device("cpu")
        )
        self.seed = seed
        self.epoch = 0
        self._epoch_given = False

    def set_epoch(self, epoch: int, seed: int | None = None) -> None:
        """Draw the random choices of ``epoch`` (and of ``seed``, when given) on the next pass."""
        self.epoch, self._epoch_given = int(epoch), True
        if seed is not None:
            self.seed = int(seed)

    def _reseed_order(self, epoch_seed: int) -> None:
        sampler = self.sampler
        while sampler is not None:  # through wrappers such as distributed.ShardSampler
            generator = getattr(sampler, "generator", None)
            if isinstance(generator, torch.Generator):
                generator.manual_seed(epoch_seed)
            sampler = getattr(sampler, "sampler", None)

    def __iter__(self):
        epoch_seed = mix_seed(self.seed, self.epoch)
        self._reseed_order(epoch_seed)
        if not self._epoch_given:  # nobody sets the epoch: count the passes
            self.epoch += 1
        self._epoch_given = False
        generator = torch.Generator()
        for step, batch in enumerate(super().__iter__()):
            yield self._to_device(
                batch, generator.manual_seed(mix_seed(epoch_seed, step))
            )

    def _to_device(self, batch, generator: torch.Generator):
        batch = [
            item.to(self.device, non_blocking=True)
            if isinstance(item, torch.Tensor)
            else item
            for item in batch
        ]
        if self.batch_transform is None:
            return tuple(batch)
        images, target, *rest = batch
        images, masks = self.batch_transform(
            images, rest[0] if rest else None, generator=generator
        )
        return (images, target) + ((masks, *rest[1:]) if rest else ())


def make_loaders(
    train_frame: pd.DataFrame,
    val_frame: pd.DataFrame,
    image_size: int,
    batch_size: int,
    num_workers: int = 0,
    with_mask: bool = False,
    sampler=None,
    device=None,
    seed: int = 0,
    augment: BatchAugment | None = None,
):
    """Training and validation :class:`DeviceLoader` s with the course's pipeline.

    Workers (``num_workers`` processes, kept alive between epochs) decode each image and
    resize it to ``image_size``; batches arrive on ``device`` (default: :func:`course_lib.config.get_device`)
    as normalised floats, the training ones augmented there (``augment``, default
    :class:`BatchAugment`). Training shuffles (or uses ``sampler``) and drops its last
    incomplete batch, so BatchNorm never sees a batch of one; validation keeps every image.
    """
    device = torch.device(device) if device is not None else get_device()
    common = dict(
        batch_size=batch_size,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=device.type == "cuda",
        device=device,
        seed=seed,
    )
    train = MelanomaDataset(train_frame, with_mask=with_mask, image_size=image_size)
    val = MelanomaDataset(val_frame, with_mask=with_mask, image_size=image_size)
    train_loader = DeviceLoader(
        train,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=len(train) > batch_size,
        batch_transform=augment or BatchAugment(),
        **common,
    )
    return train_loader, DeviceLoader(val, batch_transform=BatchNormalize(), **common)
