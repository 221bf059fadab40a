"""Training on several processes with ``torchrun`` (notebook ``10_attnvgg_melanoma``).

``fit`` needs no changes from its caller to run under::

    torchrun --nproc_per_node N -m course_lib.train ...      # or any script that calls fit

``torchrun`` starts N copies of the program and tells each its ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE`` through environment variables. :func:`init_from_environment` reads them and
joins the process group (NCCL between GPUs, gloo on the CPU). Each process then

- trains a :class:`~torch.nn.parallel.DistributedDataParallel` copy of the model, which
  averages the gradients of all processes after every backward pass;
- reads only its shard of every epoch's batches (:class:`ShardSampler`);
- contributes its validation scores to one list that every process sees
  (:func:`gather_predictions`), so metrics are computed over the whole validation set;
- lets process 0 alone write checkpoints and print.

Why a sampler that *wraps* another one rather than torch's ``DistributedSampler``: every
process seeds its copy of the loader's own sampler (shuffling, or the class-balancing
``WeightedRandomSampler`` of notebook 02) identically at each epoch — from ``(seed, epoch)``,
see :class:`~course_lib.data.DeviceLoader` — so all draw the *same* order; each process keeps
every N-th index of it. With N processes and per-process batch
``b``, step ``k`` of the N processes together covers exactly the indices of step ``k`` of a
single process with batch ``N·b`` — the same gradient, as the test of this module checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from .data.loaders import DeviceLoader

__all__ = [
    "World",
    "init_from_environment",
    "launched_world",
    "world",
    "ShardSampler",
    "shard_loader",
    "gather_predictions",
    "all_reduce",
    "barrier",
    "shutdown",
    "unwrap",
]


@dataclass(frozen=True)
class World:
    """Where this process stands: its ``rank`` among ``size`` processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """The current process group (a world of one when none was started)."""
    if dist.is_available() and dist.is_initialized():
        return World(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
        )
    return World()


def launched_world() -> World:
    """The world ``torchrun``'s variables describe (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``), known before the process group is joined; a world of one without them."""
    return World(
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def init_from_environment(backend: str | None = None) -> World:
    """Join the process group described by ``torchrun``'s variables; a no-op without them.

    ``backend`` defaults to NCCL when CUDA is available, else gloo (the CPU backend). On a
    GPU machine each process is bound to the GPU numbered by its ``LOCAL_RANK``.
    """
    launched = launched_world()
    if not launched.distributed or not dist.is_available() or dist.is_initialized():
        return world()
    if torch.cuda.is_available():
        torch.cuda.set_device(launched.local_rank)
    dist.init_process_group(
        backend or ("nccl" if torch.cuda.is_available() else "gloo")
    )
    return world()


class ShardSampler(Sampler):
    """Every ``size``-th index of ``sampler``'s order, starting at ``rank``.

    With ``pad=True`` (training) the order is first padded by repeating its start, so every
    process gets the same number of indices — DistributedDataParallel needs every process to
    take the same number of steps. With ``pad=False`` (validation) nothing is repeated, so
    each image is scored exactly once; shards may then differ in length by one.
    """

    def __init__(self, sampler, rank: int, size: int, pad: bool = True):
        if not 0 <= rank < size:
            raise ValueError(f"rank {rank} is not in a world of {size}")
        self.sampler, self.rank, self.size, self.pad = sampler, rank, size, pad

    def __iter__(self):
        order = list(self.sampler)
        if self.pad and len(order) % self.size:
            order += order[: self.size - len(order) % self.size]
        return iter(order[self.rank :: self.size])

    def __len__(self) -> int:
        n = len(self.sampler)
        return -(-n // self.size) if self.pad else len(range(self.rank, n, self.size))


def shard_loader(loader: DataLoader, current: World, pad: bool = True) -> DataLoader:
    """A copy of ``loader`` that yields only this process's shard (same batch size, workers, ...).

    A :class:`~course_lib.data.DeviceLoader` stays one, with its device, batch transform and seed.
    """
    if not current.distributed:
        return loader
    options = dict(
        batch_size=loader.batch_size,
        drop_last=loader.drop_last,
        sampler=ShardSampler(loader.sampler, current.rank, current.size, pad=pad),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        persistent_workers=loader.persistent_workers,
        worker_init_fn=loader.worker_init_fn,
        timeout=loader.timeout,
    )
    if isinstance(loader, DeviceLoader):
        return DeviceLoader(
            loader.dataset,
            batch_transform=loader.batch_transform,
            device=loader.device,
            seed=loader.seed,
            **options,
        )
    return DataLoader(loader.dataset, **options)


def gather_predictions(*arrays):
    """Concatenate each array across processes (every process gets the whole result).

    Used for validation scores and targets: AUC is not an average of per-shard AUCs, so the
    predictions themselves are gathered. Works on any backend (``all_gather_object``).
    """
    current = world()
    if not current.distributed:
        return arrays

    gathered: list = [None] * current.size
    dist.all_gather_object(gathered, arrays)
    return tuple(
        np.concatenate([part[i] for part in gathered]) for i in range(len(arrays))
    )


def all_reduce(value: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``value`` reduced over all processes with ``op`` ("sum", "min" or "max");
    ``value`` itself in a world of one."""
    if world().distributed:
        value = value.clone()
        dist.all_reduce(
            value,
            op={
                "sum": dist.ReduceOp.SUM,
                "min": dist.ReduceOp.MIN,
                "max": dist.ReduceOp.MAX,
            }[op],
        )
    return value


def shutdown() -> None:
    """Leave the process group (at the end of a ``torchrun`` program)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (e.g. until process 0 has written a checkpoint)."""
    if world().distributed:
        dist.barrier()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel and/or ``torch.compile`` wrappers.

    Checkpoints store *its* ``state_dict``, so they load into an unwrapped model (no
    ``module.`` or ``_orig_mod.`` prefixes) whatever wrappers trained it.
    """
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model
