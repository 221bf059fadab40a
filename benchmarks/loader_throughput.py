"""What it costs a CPU core to feed the network: the per-image pipeline against the batch-split one.

    python benchmarks/loader_throughput.py [--quick] [--images 256] [--rounds 5] [--results DIR]

Both read the same 512 px JPEGs laid out like the Kaggle data and produce 224 px training
batches. Everything runs on one core (one thread, pinned where the OS allows), in alternating
rounds; each figure is the median over the rounds.

- **per-image** (the course before): a worker decodes (JPEG draft), then crops, flips,
  rotates, jitters the colour, converts and normalises each image with torchvision v2;
- **batch-split** (the course now): a worker decodes and resizes to 224 px and hands over
  ``uint8``; the random crop, flips, rotation, colour jitter and normalisation run on whole
  batches on the training device (:class:`course_lib.data.BatchAugment`). On a GPU that part
  costs the CPU nothing, so the CPU's cost per image is the worker's alone.

It prints ``ratio N.NNx``: the batch-split pipeline's images per second per CPU core over the
per-image pipeline's, when a GPU trains (goal: at least 3x). It also reports the batched
augmentation run *on the CPU* (a machine without a GPU) against the per-image augmentation
(it must cost less), and, when Kornia is installed, Kornia's batched augmentation of the same
kind — the measurement behind the course's choice of its own two fused passes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from records import describe_machine, machine_line, save_record  # benchmarks/records.py
from torchvision.transforms.v2.functional import pil_to_tensor

from course_lib.data import (
    BatchAugment,
    MelanomaDataset,
    ensure_synthetic_lesions,
    load_melanoma,
    train_transforms,
)
from course_lib.data.images import read_rgb
from course_lib.data.melanoma import KAGGLE_IMAGE_DIR


def kaggle_layout(source: Path, where: Path) -> Path:
    """The synthetic set at ``source`` seen through the Kaggle layout (links, no copies)."""
    images = where / KAGGLE_IMAGE_DIR
    images.mkdir(parents=True)
    for jpeg in (source / "images").iterdir():
        (images / jpeg.name).symlink_to(jpeg)
    (where / "marking.csv").symlink_to(source / "marking.csv")
    return where


def kornia_augment(size: int):
    """Kornia's batched augmentation of the same kind, or None when Kornia is not installed."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    from course_lib.data import IMAGENET_MEAN, IMAGENET_STD

    sequence = K.AugmentationSequential(
        K.RandomResizedCrop((size, size), scale=(0.7, 1.0), ratio=(0.9, 1.1)),
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
        K.RandomRotation(20.0),
        K.ColorJitter(0.1, 0.1, 0.05, p=1.0),
        K.Normalize(torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)),
    )
    return lambda batch: sequence(batch.float() / 255)


def seconds_per_image(work, count: int) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) / count


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="96 images, 3 rounds (under two minutes)"
    )
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=224, help="training image size")
    parser.add_argument(
        "--source-size",
        type=int,
        default=512,
        help="stored JPEG size (Kaggle's is 512)",
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--results", type=Path, help="also write the results as JSON into this folder"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.rounds = 96, 3
    # cached between runs
    source = ensure_synthetic_lesions(args.images, args.source_size, seed=0)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    torch.set_num_threads(1)
    machine = describe_machine()
    machine["cores"] = 1
    with tempfile.TemporaryDirectory() as tmp:
        frame = load_melanoma(kaggle_layout(source, Path(tmp) / "kaggle"))
        n, size = len(frame), args.size
        per_image = MelanomaDataset(frame, train_transforms(size), draft_size=size)
        worker = MelanomaDataset(frame, image_size=size)
        # what the augmentation starts from
        decoded = [pil_to_tensor(read_rgb(p, size)) for p in frame["path"]]
        transform = train_transforms(size)
        batches = [
            torch.stack(
                [worker[i][0] for i in range(start, min(start + args.batch, n))]
            )
            for start in range(0, n, args.batch)
        ]
        augment, kornia = BatchAugment(), kornia_augment(size)
        generator = torch.Generator().manual_seed(0)
        work = {
            "per-image pipeline (decode + augment)": lambda: [
                per_image[i] for i in range(n)
            ],
            "batch-split worker (decode + resize)": lambda: [
                worker[i] for i in range(n)
            ],
            "per-image augmentation alone": lambda: [
                transform(image) for image in decoded
            ],
            "batched augmentation on the CPU": lambda: [
                augment(b, generator=generator) for b in batches
            ],
        }
        if kornia is not None:
            work["Kornia batched augmentation on the CPU"] = lambda: [
                kornia(b) for b in batches
            ]
        print(
            f"{machine_line(machine)}; {n} images stored at {args.source_size} px (Kaggle layout), "
            f"{size} px batches of {args.batch}, {args.rounds} rounds after a warm-up"
        )
        times: dict[str, list[float]] = {name: [] for name in work}
        for round_ in range(args.rounds + 1):
            for name, job in work.items():
                spent = seconds_per_image(job, n)
                if round_:
                    times[name].append(spent)
    ms = {name: 1e3 * statistics.median(values) for name, values in times.items()}
    for name, value in ms.items():
        print(f"{name:42s} {value:7.3f} ms/image  {1e3 / value:8.1f} images/s per core")
    old, new = (
        ms["per-image pipeline (decode + augment)"],
        ms["batch-split worker (decode + resize)"],
    )
    cpu_only = new + ms["batched augmentation on the CPU"]
    augment_ratio = (
        ms["per-image augmentation alone"] / ms["batched augmentation on the CPU"]
    )
    result = {
        "machine": machine,
        "images": n,
        "source_size": args.source_size,
        "image_size": size,
        "batch": args.batch,
        "rounds": args.rounds,
        "ms_per_image": {k: round(v, 3) for k, v in ms.items()},
        "ratio": round(old / new, 2),
        "ratio_cpu_only": round(old / cpu_only, 2),
        "augment_ratio": round(augment_ratio, 2),
        "goal": 3.0,
    }
    if kornia is not None:
        result["kornia_vs_course"] = round(
            ms["Kornia batched augmentation on the CPU"]
            / ms["batched augmentation on the CPU"],
            2,
        )
    print(
        f"ratio {result['ratio']:.2f}x  (images/s per CPU core feeding a GPU: batch-split / per-image; goal 3x)"
    )
    print(
        f"on a machine without a GPU (augmentation on the CPU too): {result['ratio_cpu_only']:.2f}x; "
        f"batched augmentation vs per-image augmentation: {augment_ratio:.2f}x less CPU per image"
        + (
            f"; Kornia's batched augmentation costs {result['kornia_vs_course']:.2f}x the course's"
            if kornia is not None
            else ""
        )
    )
    save_record(args.results, "loader_throughput-cpu.json", result)
    return result


if __name__ == "__main__":
    main()
