"""What each attention module costs: parameters, FLOPs and latency, every model side by side.

    python benchmarks/module_cost.py [--profiles smoke cpu gpu] [--rounds 3] [--results DIR]

For each profile, the six VGG16 variants of notebook 09 and AttnVGG at the profile's image
size and width: parameters, FLOPs per image (``FlopCounterMode``) and the median latency of
a forward pass on a batch of 8, measured in interleaved rounds on this machine's device
(``course_lib.bench.cost_table``). The ``gpu`` profile's full-width models at 224 px run here
too — on a CPU they measure the same FLOPs, and latencies a GPU would beat by far.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from records import describe_machine, machine_line, save_record  # benchmarks/records.py

from course_lib.bench import cost_table
from course_lib.config import get_device, get_profile
from course_lib.models import COMPARED_MODELS, build_model

# chapter 09's six, ECA, AttnVGG
MODELS = {
    **COMPARED_MODELS,
    "ECA": "vgg16-eca",
    "AttnVGG": "attnvgg",
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["smoke", "cpu", "gpu"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--results", type=Path, help="also write the results as JSON into this folder"
    )
    args = parser.parse_args(argv)
    device = get_device()
    machine = describe_machine(device)
    print(machine_line(machine), f"device {device}")
    profiles = []
    for name in args.profiles:
        profile = get_profile(name)
        torch.manual_seed(0)
        models = {
            label: build_model(key, num_classes=1, width=profile.width).to(device)
            for label, key in MODELS.items()
        }
        table = cost_table(
            models,
            profile.image_size,
            batch_size=args.batch_size,
            rounds=args.rounds,
            baseline="baseline (GAP)",
        )
        print(f"\nprofile {name}: {profile.image_size} px, width {profile.width}")
        print(table.round(3).to_string())
        profiles.append(
            {
                "profile": name,
                "image_size": profile.image_size,
                "width": profile.width,
                "rows": [
                    {"model": label, **{k: float(v) for k, v in row.items()}}
                    for label, row in table.iterrows()
                ],
            }
        )
    record = {
        "machine": machine,
        "device": device.type,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "profiles": profiles,
    }
    save_record(args.results, f"module_cost-{device.type}.json", record)
    return record


if __name__ == "__main__":
    main()
