"""Measuring cost: parameters, FLOPs (notebook ``02``), latency and peak memory (``07``, ``09``).

- FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts the floating
  point operations of every matmul and convolution actually dispatched (a multiply-add is
  2 FLOPs, so FLOPs = 2 x MACs).
- Latency comes from ``torch.utils.benchmark.Timer``: warm-up, repeated blocks until a minimum
  run time, the median reported. Compare only numbers measured side by side in one run;
  :func:`cost_table` measures several models in interleaved rounds and keeps each one's median.
- Peak memory is the high-water mark of memory held by tensors during a call: CUDA's
  allocator statistics on a GPU; on the CPU, the allocation and free events recorded by
  ``torch.profiler`` (``profile_memory=True``), summed in time order. Both are exact
  counts of tensor bytes, not noisy process-level readings.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
from contextlib import contextmanager

import pandas as pd
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "count_parameters",
    "count_flops",
    "latency_ms",
    "peak_memory_bytes",
    "cost_table",
]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(
        p.numel() for p in module.parameters() if p.requires_grad or not trainable_only
    )


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


def latency_ms(
    fn, *args, min_run_time: float = 0.5, threads: int | None = None
) -> float:
    """Median wall time of ``fn(*args)`` in milliseconds, by ``torch.utils.benchmark.Timer``."""
    # torch.utils.benchmark imports cpp_extension, which logs "No CUDA runtime is found" when a
    # CUDA build of torch runs on a machine without a GPU; that says nothing about latency
    # (so the import stays here, after the logger is quietened)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import benchmark

    timer = benchmark.Timer(
        stmt="fn(*args)",
        globals={"fn": fn, "args": args},
        num_threads=threads or torch.get_num_threads(),
    )
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


@contextmanager
def _native_stderr_silenced():
    """Send what C++ code writes to the process's stderr (file descriptor 2) to /dev/null.

    The profiler's library (kineto) logs a line when it starts and stops, straight to fd 2,
    whatever the log level; in a notebook those lines would land in the cell's output.
    Python's own ``sys.stderr`` (warnings, tracebacks) is not affected in a Jupyter kernel.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_bytes(fn, *args, device=None) -> int:
    """Peak bytes of tensor memory allocated while ``fn(*args)`` runs (beyond what was held before)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = fn(*args)
        torch.cuda.synchronize(device)
        del out
        return torch.cuda.max_memory_allocated(device) - before

    with (
        _native_stderr_silenced(),
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
    ):
        out = fn(*args)
        del out
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:
        raise RuntimeError(
            "this torch version's profiler exposes no allocation events; upgrade torch"
        )
    events = sorted(
        (e for e in results.events() if e.name() == "[memory]"),
        key=lambda e: e.start_ns(),
    )
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def cost_table(
    models: dict,
    image_size: int,
    batch_size: int = 8,
    rounds: int = 3,
    min_run_time: float = 0.3,
    baseline: str | None = None,
):
    """Parameters, FLOPs per image and latency per batch of several models, side by side.

    ``models`` maps a label to a model. Latency (forward pass, no gradients, on the model's
    device) is measured in ``rounds`` interleaved rounds — every model once per round — and
    each model's median over the rounds is kept, so slow drifts of a shared machine hit all
    models alike. With ``baseline`` (a label), the table adds extra parameters and the latency
    ratio against it. Returns a ``pandas.DataFrame`` indexed by label (notebook ``09``).
    """
    rows = {
        label: {
            "parameters": count_parameters(model),
            "MFLOPs / image": count_flops(model, (1, 3, image_size, image_size)) / 1e6,
        }
        for label, model in models.items()
    }
    times: dict[str, list[float]] = {label: [] for label in models}
    for _ in range(rounds):
        for label, model in models.items():
            was_training = model.training
            model.eval()
            device = next(model.parameters()).device
            example = torch.randn(batch_size, 3, image_size, image_size, device=device)
            with torch.no_grad():
                times[label].append(
                    latency_ms(model, example, min_run_time=min_run_time)
                )
            model.train(was_training)
    column = f"ms / batch of {batch_size}"
    for label in models:
        rows[label][column] = statistics.median(times[label])
    table = pd.DataFrame(rows).T
    table["parameters"] = table["parameters"].astype(int)
    if baseline is not None:
        table["extra parameters"] = (
            table["parameters"] - table.loc[baseline, "parameters"]
        )
        table["latency vs baseline"] = table[column] / table.loc[baseline, column]
    return table
