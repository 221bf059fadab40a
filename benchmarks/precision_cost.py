"""What mixed precision costs or saves on this machine: one training step, float32 against bf16.

    python benchmarks/precision_cost.py [--profile cpu] [--models vgg16 attnvgg] [--rounds 3] [--results DIR]

A training step (forward, binary cross-entropy, backward, AdamW step) of each model at the
profile's image size, width and batch size, on a random batch on the CPU, once in float32
and once under ``torch.autocast("cpu", dtype=torch.bfloat16)``, alternating in every round
so that a slow moment of a shared machine hits both alike; the step time of each round is
the median of ``torch.utils.benchmark`` (:func:`course_lib.bench.latency_ms`), and the
record keeps the median over rounds. The record says whether the CPU has native bf16
(``course_lib.config.native_bf16``): with AVX512-BF16 or AMX bf16 is a speed-up; without, the
bf16 matmuls and convolutions are emulated and much slower. This is why
``course_lib.config.fast_mixed_precision`` turns autocast on only where bf16 is native, and
why the book's ``cpu`` profile is budgeted in float32.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from model_step import random_batch, training_step  # benchmarks/model_step.py
from records import describe_machine, machine_line, save_record  # benchmarks/records.py
from torch import nn

from course_lib.bench import latency_ms
from course_lib.config import get_profile, native_bf16
from course_lib.models import build_model


def measure(name: str, profile, rounds: int) -> dict:
    torch.manual_seed(0)
    model = build_model(name, num_classes=1, width=profile.width).train()
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    size, batch = profile.image_size, profile.batch_size
    x, y = random_batch(batch, size, "cpu")
    times = {"fp32": [], "bf16": []}
    for _ in range(rounds):
        for precision in times:
            amp = "bf16" if precision == "bf16" else False
            step = training_step(model, optimizer, x, y, amp, nn.BCEWithLogitsLoss())
            step()  # warm-up (first bf16 call builds its kernels)
            times[precision].append(latency_ms(step, min_run_time=1.0))
    medians = {p: statistics.median(t) for p, t in times.items()}
    return {
        "model": name,
        "runs_ms": {p: [round(t, 1) for t in ts] for p, ts in times.items()},
        "median_ms": {p: round(m, 1) for p, m in medians.items()},
        "bf16_over_fp32": round(medians["bf16"] / medians["fp32"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu"))
    parser.add_argument("--models", nargs="+", default=["vgg16", "attnvgg"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--results", type=Path, help="also write the results as JSON into this folder"
    )
    args = parser.parse_args()
    profile = get_profile(args.profile)
    machine = describe_machine()
    machine["native_bf16"] = native_bf16("cpu")
    print(
        f"{machine_line(machine)}, native bf16: {machine['native_bf16']}; profile "
        f"{profile.name}: {profile.image_size} px, width {profile.width}, "
        f"batch {profile.batch_size}"
    )
    rows = []
    for name in args.models:
        rows.append(measure(name, profile, args.rounds))
        row = rows[-1]
        print(
            f"{name:10s} fp32 {row['median_ms']['fp32']:8.1f} ms/step   "
            f"bf16 {row['median_ms']['bf16']:8.1f} ms/step   "
            f"bf16/fp32 {row['bf16_over_fp32']:.2f}x"
        )
    save_record(
        args.results,
        "precision_cost-cpu.json",
        {
            "machine": machine,
            "profile": profile.name,
            "image_size": profile.image_size,
            "width": profile.width,
            "batch_size": profile.batch_size,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
