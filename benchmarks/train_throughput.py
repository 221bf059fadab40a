"""Training throughput: the course's ``fit`` against the Paperspace tutorial's loop, same model, data and machine.

    python benchmarks/train_throughput.py [--profile cpu] [--images 320] [--rounds 3] [--results DIR]

The Paperspace tutorial *Image classification with attention* (the AttnVGG tutorial the course
grew from) trains like this, re-created here step by step so the two can be timed side by side:

- its Dataset decodes every image in full (``cv2.imread`` + ``cvtColor``; here PIL's full
  decode, the same work without the OpenCV dependency), then runs torchvision's v1 PIL
  transforms (rotation of the full image, flip, resize, centre crop, ToTensor, Normalize);
- ``__getitem__`` moves each *sample* to the GPU, so the DataLoader cannot use worker
  processes (CUDA in forked workers fails) and decoding runs in the training process;
- the loss is computed on the CPU: ``sigmoid(y_pred.type(torch.FloatTensor))`` copies the
  logits to the host, then a focal loss on *probabilities* (``binary_cross_entropy``);
- ``loss.item()`` after every step (a host-device synchronisation).

``fit`` reads the course's loaders — workers decode with JPEG draft mode and resize, the
batch is augmented on the training device (:class:`course_lib.data.BatchAugment`) — keeps
the loss on the device, stores activations ``channels_last``, and uses mixed precision where
the device runs it natively (:func:`course_lib.config.fast_mixed_precision`).

A third figure is the model alone: training steps on a random batch already on the device,
no data loading at all — the rate ``fit`` would reach if feeding the model cost nothing.

The source images are 512×512 JPEGs like the Kaggle set the course uses; the model, image
size, width and batch size are the profile's. Each round trains one epoch (and validates)
with each loop, alternating, after one warm-up round; the medians are compared.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from model_step import random_batch, training_step  # benchmarks/model_step.py
from PIL import Image
from records import describe_machine, machine_line, save_record  # benchmarks/records.py
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as v1

from course_lib.config import fast_mixed_precision, get_device, get_profile
from course_lib.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ensure_synthetic_lesions,
    load_melanoma,
    make_loaders,
    split_by_patient,
)
from course_lib.losses import FocalLoss
from course_lib.models import AttnVGG
from course_lib.runspec import OptimizerSpec, TrainConfig
from course_lib.train import fit


class TutorialImageDataset(Dataset):
    """The tutorial's ``ImageDataset``: full decode, PIL transforms, each sample sent to the device."""

    def __init__(self, paths, labels, transform, device):
        self.paths, self.labels, self.transform, self.device = (
            list(paths),
            list(labels),
            transform,
            device,
        )

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, idx):
        with Image.open(self.paths[idx]) as image:
            image = image.convert("RGB")  # full-resolution decode
        image = self.transform(image).to(self.device)
        return image, torch.tensor(self.labels[idx]).to(self.device)


class TutorialFocalLoss(nn.Module):
    """The tutorial's focal loss on probabilities (``logits=False``): BCE of a sigmoid output."""

    def __init__(self, alpha=0.25, gamma=2.0):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, probabilities, targets):
        bce = F.binary_cross_entropy(probabilities, targets, reduction="none")
        return (self.alpha * (1 - torch.exp(-bce)) ** self.gamma * bce).mean()


def tutorial_loaders(train_frame, val_frame, size, batch_size, device):
    normalize = v1.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = v1.Compose(
        [
            v1.RandomRotation(10),
            v1.RandomHorizontalFlip(),
            v1.Resize(size),
            v1.CenterCrop(size),
            v1.ToTensor(),
            normalize,
        ]
    )
    val_tf = v1.Compose(
        [v1.Resize(size), v1.CenterCrop(size), v1.ToTensor(), normalize]
    )
    train = TutorialImageDataset(train_frame.path, train_frame.target, train_tf, device)
    val = TutorialImageDataset(val_frame.path, val_frame.target, val_tf, device)
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(
        val, batch_size=batch_size
    )


def tutorial_epoch(model, train_loader, val_loader, optimizer, criterion) -> float:
    """One epoch of the tutorial's loop (the shape mismatch of its loss call fixed with a squeeze)."""
    started = time.perf_counter()
    losses = []
    model.train()
    for x, y in train_loader:
        y_pred, _, _ = model(x)
        loss = criterion(
            torch.sigmoid(y_pred.squeeze(1).type(torch.FloatTensor)),
            y.type(torch.FloatTensor),
        )
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for x, y in val_loader:
            y_val, _, _ = model(x)
            losses.append(
                criterion(
                    torch.sigmoid(y_val.squeeze(1).type(torch.FloatTensor)),
                    y.type(torch.FloatTensor),
                ).item()
            )
    return time.perf_counter() - started


def step_seconds(
    model, batch: int, size: int, device, amp: bool, steps: int = 5
) -> float:
    """Seconds per training step of ``model`` alone: a random batch already on the device, the
    course's loss, AdamW, channels_last and (where fast) mixed precision; median of ``steps``."""
    model.train()
    x, y = random_batch(batch, size, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step = training_step(model, optimizer, x, y, amp)
    times = []
    for _ in range(steps + 1):  # the first step warms up
        started = time.perf_counter()
        step()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile",
        help="run profile (default: COURSE_PROFILE, else cpu/gpu by device)",
    )
    parser.add_argument(
        "--images",
        type=int,
        default=320,
        help="synthetic images (80%% train, 20%% val)",
    )
    parser.add_argument(
        "--source-size",
        type=int,
        default=512,
        help="stored JPEG size (Kaggle's is 512)",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed rounds after one warm-up round"
    )
    parser.add_argument(
        "--image-size", type=int, help="training image side (default: the profile's)"
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        help="loader workers of fit (default: the profile's; the tutorial's loop can use none)",
    )
    parser.add_argument(
        "--results", type=Path, help="also write the results as JSON into this folder"
    )
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    device = get_device()
    gpu = device.type == "cuda"
    amp = fast_mixed_precision(device)
    root = ensure_synthetic_lesions(args.images, args.source_size, seed=0)
    train_frame, val_frame, _ = split_by_patient(
        load_melanoma(root), 0.2, test_fraction=0, seed=0
    )
    size, batch = args.image_size or profile.image_size, profile.batch_size
    workers = profile.num_workers if args.num_workers is None else args.num_workers

    def model():
        torch.manual_seed(0)
        return AttnVGG(num_classes=1, width=profile.width).to(device)

    tutorial_model = model()
    tutorial_opt = torch.optim.Adam(tutorial_model.parameters(), lr=1e-4)
    tutorial_train, tutorial_val = tutorial_loaders(
        train_frame, val_frame, size, batch, device
    )
    course_model = model().to(memory_format=torch.channels_last)
    course_train, course_val = make_loaders(
        train_frame, val_frame, size, batch, workers, device=device
    )
    alone_model = model().to(memory_format=torch.channels_last)
    course_loss = FocalLoss()

    def course_epoch() -> float:
        started = time.perf_counter()
        fit(
            course_model,
            course_train,
            course_val,
            TrainConfig(
                epochs=1,
                optimizer=OptimizerSpec(lr=1e-4),
                loss=course_loss,
                amp=amp,
                channels_last=True,
                device=device,
            ),
            progress=False,
            verbose=False,
        )
        if gpu:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    machine = describe_machine(device)
    print(
        f"{machine_line(machine)}, device {device}"
        + f"; profile {profile.name}: AttnVGG width {profile.width}, {size} px, batch {batch}, "
        f"{workers} workers; {len(train_frame)}/{len(val_frame)} images stored at {args.source_size} px; "
        f"fit with channels_last{' and bf16 autocast' if amp else ''}"
    )
    tutorial_times, course_times, step_times = [], [], []
    for round_ in range(args.rounds + 1):
        t = tutorial_epoch(
            tutorial_model,
            tutorial_train,
            tutorial_val,
            tutorial_opt,
            TutorialFocalLoss(),
        )
        c, a = course_epoch(), step_seconds(alone_model, batch, size, device, amp)
        label = "warm-up" if round_ == 0 else f"round {round_}"
        print(
            f"{label:>8}: tutorial loop {len(train_frame) / t:7.1f} img/s   fit {len(train_frame) / c:7.1f} img/s"
            f"   model alone {batch / a:7.1f} img/s   ratio {t / c:.2f}x"
        )
        if round_:
            tutorial_times.append(t)
            course_times.append(c)
            step_times.append(a)
    tutorial_rate = len(train_frame) / statistics.median(tutorial_times)
    course_rate = len(train_frame) / statistics.median(course_times)
    step_rate = batch / statistics.median(step_times)
    result = {
        "machine": machine,
        "device": device.type,
        "profile": profile.name,
        "image_size": size,
        "width": profile.width,
        "batch_size": batch,
        "num_workers": workers,
        "amp": amp,
        "channels_last": True,
        "train_images": len(train_frame),
        "val_images": len(val_frame),
        "source_size": args.source_size,
        "rounds": args.rounds,
        "tutorial_images_per_s": round(tutorial_rate, 2),
        "fit_images_per_s": round(course_rate, 2),
        "step_images_per_s": round(step_rate, 2),
        "fit_share_of_step_rate": round(course_rate / step_rate, 3),
        "ratio": round(course_rate / tutorial_rate, 3),
        "goal": 15.0 if gpu else 1.8,
    }
    print(
        f"median over {args.rounds} rounds: tutorial loop {tutorial_rate:.1f} img/s, fit {course_rate:.1f} img/s "
        f"({100 * course_rate / step_rate:.0f} % of the model alone, {step_rate:.1f} img/s), "
        f"ratio {result['ratio']:.2f}x (goal {result['goal']}x)"
    )
    save_record(args.results, f"train_throughput-{device.type}.json", result)
    return result


if __name__ == "__main__":
    main()
