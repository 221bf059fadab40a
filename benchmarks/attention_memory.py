"""Self-attention memory: the naive matrix against ``scaled_dot_product_attention``.

    python benchmarks/attention_memory.py [--sides 14 28 56 112] [--channels 64] [--results DIR]

SAGAN self-attention (notebook 07) on a C-channel map of side S has S²×S² attention weights.
For each side this measures the peak tensor memory and the time of the attention core of
``course_lib.attention.SelfAttention2d``:

- written out: ``softmax(q kᵀ) v`` with ``torch.bmm`` — the whole matrix is stored;
- ``fused=False``: SDPA with SAGAN's shapes (q, k of C/8 channels, v of C), which the CPU
  kernels can only serve with their math fallback;
- ``fused=True`` (the library's default): q and k zero-padded to C channels (exact), which
  lets SDPA use its flash kernel and never store the matrix.

Peak memory comes from ``course_lib.bench.peak_memory_bytes`` (exact tensor bytes: CUDA's
allocator statistics, or the profiler's allocation events on the CPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from records import describe_machine, machine_line, save_record  # benchmarks/records.py

from course_lib.attention import SelfAttention2d
from course_lib.bench import latency_ms, peak_memory_bytes
from course_lib.config import get_device


def written_out(block: SelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """The attention core as SAGAN writes it: the (HW)×(HW) matrix, then a weighted sum."""
    n, c, h, w = x.shape
    q, k = block.query(x).flatten(2), block.key(x).flatten(2)  # (N, C/8, HW)
    weights = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)  # (N, HW, HW)
    return torch.bmm(block.value(x).flatten(2), weights.transpose(1, 2)).view(
        n, c, h, w
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[14, 28, 56, 112])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument(
        "--results", type=Path, help="also write the results as JSON into this folder"
    )
    args = parser.parse_args(argv)
    device = get_device()
    machine = describe_machine(device)
    print(machine_line(machine), f"device {device}; C = {args.channels}, one image")
    torch.manual_seed(0)
    block = SelfAttention2d(args.channels).to(device).eval()
    unfused = SelfAttention2d(args.channels, fused=False).to(device).eval()
    unfused.load_state_dict(block.state_dict())
    methods = {
        "written out (bmm + softmax)": lambda x: written_out(block, x),
        "SDPA, SAGAN shapes": unfused.attend,
        "SDPA, q/k padded (course_lib)": block.attend,
    }
    rows = []
    for side in args.sides:
        x = torch.randn(1, args.channels, side, side, device=device)
        with torch.no_grad():
            reference = written_out(block, x)
            row = {
                "side": side,
                "positions": side * side,
                "matrix MiB (fp32)": (side * side) ** 2 * 4 / 2**20,
            }
            for name, fn in methods.items():
                torch.testing.assert_close(fn(x), reference, rtol=1e-4, atol=1e-4)
                row[f"{name}: peak MiB"] = (
                    peak_memory_bytes(fn, x, device=device) / 2**20
                )
                row[f"{name}: ms"] = latency_ms(fn, x, min_run_time=0.2)
        row["memory ratio written out / padded SDPA"] = (
            row["written out (bmm + softmax): peak MiB"]
            / row["SDPA, q/k padded (course_lib): peak MiB"]
        )
        rows.append(row)
        print(
            f"{side:4d}x{side:<4d} "
            + "  ".join(
                f"{k.split(':')[0]}: {row[k]:.1f} MiB"
                for k in row
                if k.endswith("peak MiB")
            )
            + f"  ratio {row['memory ratio written out / padded SDPA']:.1f}x"
        )
    record = {
        "machine": machine,
        "device": device.type,
        "channels": args.channels,
        "rows": rows,
    }
    save_record(args.results, f"attention_memory-{device.type}.json", record)
    return record


if __name__ == "__main__":
    main()
