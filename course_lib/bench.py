"""Counting parameters and FLOPs (introduced in notebook ``02_vgg16_baseline``).

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts the floating
point operations of every matmul and convolution actually dispatched (a multiply-add is
2 FLOPs, so FLOPs = 2 x MACs).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_flops"]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_flops(model: nn.Module, input_size=(1, 3, 224, 224), by_module: bool = False):
    """FLOPs of one forward pass on a zero input of ``input_size``.

    Returns the total, or with ``by_module=True`` a dict {module name: FLOPs} as counted
    by ``FlopCounterMode`` (names are dotted paths; "Global" is the total).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(input_size, device=device))
    model.train(was_training)
    if not by_module:
        return counter.get_total_flops()
    return {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
