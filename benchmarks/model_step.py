"""A training step of a model alone: the work ``fit`` does per batch, without loading data.

Shared by ``train_throughput.py`` (the model-alone rate beside ``fit``), ``precision_cost.py``
(float32 against bf16) and ``step_mfu.py`` (FLOP utilisation); each times it its own way.
"""

from __future__ import annotations

import torch

from course_lib.losses import FocalLoss

# the autocast choice ``fit`` makes for ``amp`` (bf16 where the device has it, else fp16)
from course_lib.train import _autocast, logits_of


def random_batch(batch: int, size: int, device, channels_last: bool = True):
    """Images ``(batch, 3, size, size)`` and binary targets (about 30 % positive) on ``device``."""
    x = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, (torch.rand(batch, device=device) < 0.3).float()


def training_step(model, optimizer, x, y, amp=False, loss_fn=None):
    """A function that runs one step on ``(x, y)``: forward (under autocast when ``amp``), the
    loss on the device (the course's focal loss unless ``loss_fn``), backward, optimiser step."""
    context, _ = _autocast(x.device, amp)
    loss_fn = loss_fn if loss_fn is not None else FocalLoss()

    def step():
        with context:
            logits = logits_of(model(x))
        loss = loss_fn(logits.squeeze(1).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step
