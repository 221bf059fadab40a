"""Model FLOP utilisation of one training step, the model alone, in several configurations.

    python benchmarks/step_mfu.py [--profile gpu] [--models attnvgg vgg16] [--batches 64 128]
                                  [--steps 20] [--no-compile] [--results DIR]

A training step here is what ``fit`` runs for a batch already on the device — forward under
autocast (bf16 where the device has it), the course's focal loss, backward, AdamW — on a random
batch, so that no data loading limits it. FLOPs per image come from
``torch.utils.flop_counter`` (forward and backward, a multiply-add counted as 2). The MFU is
FLOPs per second ÷ the device's dense bf16 peak: the datasheet figure where the GPU is known
(H100/H200 SXM: 989 TFLOP/s), and in every case also ÷ the rate a large bf16 matrix product
reaches on this device in the same run (``matmul peak``), which is what a step could reach at
best.

Configurations, each measured in the same run (interleaved rounds, medians):
``NCHW`` (eager, default memory format), ``channels_last`` (what ``fit`` uses),
``+ cudnn.benchmark`` (cuDNN times its algorithms once per shape and keeps the fastest), and
``+ compile`` (``torch.compile`` of the model) at each batch size.

On a CPU the same script runs with small defaults (the profile's size), to check that it works;
its MFU is not meaningful there (no bf16 dense peak is defined), so only img/s is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from model_step import random_batch, training_step  # benchmarks/model_step.py
from records import describe_machine, machine_line, save_record  # benchmarks/records.py
from torch.utils.flop_counter import FlopCounterMode

from course_lib.config import fast_mixed_precision, get_device, get_profile
from course_lib.models import build_model
from course_lib.train import _autocast, logits_of

# dense (no sparsity) bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s
DATASHEET_BF16_TFLOPS = {
    "H100 80GB HBM3": 989.0,  # H100 SXM
    "H100 PCIe": 756.0,
    "H200": 989.0,
    "A100": 312.0,
    "L4": 121.0,
}


def datasheet_peak(gpu_name: str | None) -> float | None:
    for key, tflops in DATASHEET_BF16_TFLOPS.items():
        if gpu_name and key in gpu_name:
            return tflops
    return None


def matmul_peak_tflops(device, n: int = 8192, repeats: int = 10) -> float:
    """TFLOP/s of an n×n×n bf16 matrix product on this device (median of ``repeats``)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    times = []
    for _ in range(repeats + 2):
        _sync(device)
        started = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - started)
    return 2 * n**3 / statistics.median(times[2:]) / 1e12


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(name: str, width: float) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, num_classes=1, width=width)


def train_step_flops(model, size: int, device, amp: bool) -> float:
    """FLOPs of one training step (forward + backward) per image."""
    x = torch.randn(2, 3, size, size, device=device)
    context, _ = _autocast(device, amp)
    with FlopCounterMode(display=False) as counter:
        with context:
            logits = logits_of(model(x))
        logits.float().sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


class Step:
    """One configuration: a model copy, its optimiser, a random batch on the device, and
    whether cuDNN searches its algorithms (a global switch, set before each timing)."""

    def __init__(
        self, name, width, size, device, amp, batch, memory, benchmark, compiled
    ):
        model = build(name, width).to(device).to(memory_format=memory).train()
        net = torch.compile(model) if compiled else model
        fused = {"fused": True} if device.type == "cuda" else {}
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **fused)
        x, y = random_batch(batch, size, device, memory == torch.channels_last)
        self.step = training_step(net, optimizer, x, y, amp)
        self.device, self.batch, self.benchmark = device, batch, benchmark

    def run(self, steps: int) -> float:
        """Images per second over ``steps`` steps."""
        torch.backends.cudnn.benchmark = self.benchmark
        _sync(self.device)
        started = time.perf_counter()
        for _ in range(steps):
            self.step()
        _sync(self.device)
        return self.batch * steps / (time.perf_counter() - started)


def configurations(batches, gpu: bool, compile_: bool):
    """(label, batch, memory format, cudnn.benchmark, compiled) of each configuration."""
    first = batches[0]
    rows = [
        ("NCHW", first, torch.contiguous_format, False, False),
        ("channels_last", first, torch.channels_last, False, False),
    ]
    if gpu:  # cuDNN's algorithm search exists only on CUDA
        rows.append(
            ("channels_last + cudnn.benchmark", first, torch.channels_last, True, False)
        )
    if compile_:
        rows += [
            (f"+ compile, batch {b}", b, torch.channels_last, True, True)
            for b in batches
        ]
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="run profile (default: as the machine picks)")
    parser.add_argument("--models", nargs="+", default=["attnvgg"])
    parser.add_argument("--batches", nargs="+", type=int, help="default: the profile's")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--results", type=Path)
    args = parser.parse_args(argv)
    profile, device = get_profile(args.profile), get_device()
    amp = fast_mixed_precision(device)
    size, batches = profile.image_size, args.batches or [profile.batch_size]
    machine = describe_machine(device)
    gpu = device.type == "cuda"
    peak = matmul_peak_tflops(device) if gpu else None
    sheet = datasheet_peak(machine["gpu"])
    print(
        f"{machine_line(machine)}, device {device}; {size} px, width {profile.width}, "
        f"{'bf16 autocast' if amp else 'fp32'}"
        + (f"; bf16 matmul peak {peak:.0f} TFLOP/s" if peak else "")
        + (f", datasheet {sheet:.0f}" if sheet else "")
    )
    rows = []
    for name in args.models:
        flops = train_step_flops(
            build(name, profile.width).to(device).train(), size, device, amp
        )
        steps = {}
        for label, *config in configurations(batches, gpu, gpu and not args.no_compile):
            steps[label] = Step(name, profile.width, size, device, amp, *config)
            steps[label].run(3)  # warm-up: compilation, cuDNN's algorithm search
        rates = {label: [] for label in steps}
        for _ in range(args.rounds):
            for label, step in steps.items():
                rates[label].append(step.run(args.steps))
        for label, values in rates.items():
            rate = statistics.median(values)
            row = {
                "model": name,
                "config": label,
                "batch": steps[label].batch,
                "gflop_per_img": round(flops / 1e9, 4),
                "img_s": round(rate, 1),
                "tflops": round(rate * flops / 1e12, 1),
            }
            if peak:
                row["mfu_vs_matmul"] = round(rate * flops / 1e12 / peak, 3)
            if sheet:
                row["mfu"] = round(rate * flops / 1e12 / sheet, 3)
            rows.append(row)
            print(
                f"{name:8s} {label:34s} {row['img_s']:8.1f} img/s {row['tflops']:7.1f} TFLOP/s"
                + (f"  MFU {row['mfu']:.3f}" if "mfu" in row else "")
                + (f" ({row['mfu_vs_matmul']:.3f} of matmul peak)" if peak else "")
            )
        del steps
    torch.backends.cudnn.benchmark = False
    record = {
        "machine": machine,
        "device": device.type,
        "profile": profile.name,
        "image_size": size,
        "width": profile.width,
        "amp": amp,
        "matmul_peak_tflops": round(peak, 1) if peak else None,
        "datasheet_peak_tflops": sheet,
        "rows": rows,
    }
    save_record(args.results, f"step_mfu-{device.type}.json", record)
    return record


if __name__ == "__main__":
    main()
