"""A benchmark's record: what it ran on, and the JSON file it leaves in ``benchmarks/results``.

Shared by ``benchmarks/*.py``; ``render_performance.py`` reads the files back.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device=None) -> dict:
    """When and where: date, CPU model and usable cores, torch version, GPU name if used."""
    import torch

    cores = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )
    gpu = (
        torch.cuda.get_device_name()
        if device is not None and str(device).startswith("cuda")
        else None
    )
    return {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_name(),
        "cores": cores,
        "torch": torch.__version__,
        "gpu": gpu,
    }


def machine_line(machine: dict) -> str:
    cores = machine["cores"]
    where = (
        machine["gpu"] or f"{machine['cpu']}, {cores} core{'' if cores == 1 else 's'}"
    )
    return f"{machine['when']} on {where} (torch {machine['torch']})"


def save_record(results: Path | None, filename: str, record) -> None:
    """Write ``record`` as ``results/filename`` (indented JSON); nothing when ``results`` is None."""
    if results is None:
        return
    results.mkdir(parents=True, exist_ok=True)
    (results / filename).write_text(json.dumps(record, indent=2) + "\n")
