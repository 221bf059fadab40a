"""Training throughput: the course's ``fit`` against seed 000's loop, same model, data and machine.

    python benchmarks/train_throughput.py [--profile cpu] [--images 320] [--rounds 3] [--results DIR]

Seed 000 (the AttnVGG tutorial the course grew from) trains like this, re-created here step
by step so the two can be timed side by side:

- its Dataset decodes every image in full (``cv2.imread`` + ``cvtColor``; here PIL's full
  decode, the same work without the OpenCV dependency), then runs torchvision's v1 PIL
  transforms (rotation of the full image, flip, resize, centre crop, ToTensor, Normalize);
- ``__getitem__`` moves each *sample* to the GPU, so the DataLoader cannot use worker
  processes (CUDA in forked workers fails) and decoding runs in the training process;
- the loss is computed on the CPU: ``sigmoid(y_pred.type(torch.FloatTensor))`` copies the
  logits to the host, then a focal loss on *probabilities* (``binary_cross_entropy``);
- ``loss.item()`` after every step (a host-device synchronisation).

``fit`` decodes with JPEG draft mode (the decoder skips detail the training size cannot
show), transforms uint8 tensors with torchvision v2, uses the profile's worker processes
with pinned memory, keeps the loss on the device, stores activations ``channels_last``, and
uses bf16 autocast where the device runs it natively (GPUs; CPUs with AVX512-BF16 or AMX —
:func:`course_lib.config.fast_mixed_precision`).

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
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as v1

from course_lib.config import fast_mixed_precision, get_device, get_profile
from course_lib.data import ensure_synthetic_lesions, load_melanoma, make_loaders, split_by_patient
from course_lib.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from course_lib.losses import FocalLoss
from course_lib.models import AttnVGG
from course_lib.train import fit
from records import describe_machine, machine_line, save_record  # benchmarks/records.py


class SeedImageDataset(Dataset):
    """Seed 000's ``ImageDataset``: full decode, PIL transforms, each sample sent to the device."""

    def __init__(self, paths, labels, transform, device):
        self.paths, self.labels, self.transform, self.device = list(paths), list(labels), transform, device

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, idx):
        with Image.open(self.paths[idx]) as image:
            image = image.convert("RGB")  # full-resolution decode
        image = self.transform(image).to(self.device)
        return image, torch.tensor(self.labels[idx]).to(self.device)


class SeedFocalLoss(nn.Module):
    """Seed 000's focal loss on probabilities (``logits=False``): BCE of a sigmoid output."""

    def __init__(self, alpha=0.25, gamma=2.0):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, probabilities, targets):
        bce = F.binary_cross_entropy(probabilities, targets, reduction="none")
        return (self.alpha * (1 - torch.exp(-bce)) ** self.gamma * bce).mean()


def seed_loaders(train_frame, val_frame, size, batch_size, device):
    normalize = v1.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = v1.Compose([v1.RandomRotation(10), v1.RandomHorizontalFlip(), v1.Resize(size),
                           v1.CenterCrop(size), v1.ToTensor(), normalize])
    val_tf = v1.Compose([v1.Resize(size), v1.CenterCrop(size), v1.ToTensor(), normalize])
    train = SeedImageDataset(train_frame.path, train_frame.target, train_tf, device)
    val = SeedImageDataset(val_frame.path, val_frame.target, val_tf, device)
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(val, batch_size=batch_size)


def seed_epoch(model, train_loader, val_loader, optimizer, criterion) -> float:
    """One epoch of seed 000's loop (the shape mismatch of its loss call fixed with a squeeze)."""
    started = time.perf_counter()
    losses = []
    model.train()
    for x, y in train_loader:
        y_pred, _, _ = model(x)
        loss = criterion(torch.sigmoid(y_pred.squeeze(1).type(torch.FloatTensor)), y.type(torch.FloatTensor))
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for x, y in val_loader:
            y_val, _, _ = model(x)
            losses.append(criterion(torch.sigmoid(y_val.squeeze(1).type(torch.FloatTensor)),
                                    y.type(torch.FloatTensor)).item())
    return time.perf_counter() - started


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="run profile (default: COURSE_PROFILE, else cpu/gpu by device)")
    parser.add_argument("--images", type=int, default=320, help="synthetic images (80%% train, 20%% val)")
    parser.add_argument("--source-size", type=int, default=512, help="stored JPEG size (Kaggle's is 512)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up round")
    parser.add_argument("--results", type=Path, help="also write the results as JSON into this folder")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    device = get_device()
    gpu = device.type == "cuda"
    amp = fast_mixed_precision(device)
    root = ensure_synthetic_lesions(args.images, args.source_size, seed=0)
    train_frame, val_frame = split_by_patient(load_melanoma(root), 0.2, seed=0)
    size, batch = profile.image_size, profile.batch_size

    def model():
        torch.manual_seed(0)
        return AttnVGG(num_classes=1, width=profile.width).to(device)

    seed_model = model()
    seed_opt = torch.optim.Adam(seed_model.parameters(), lr=1e-4)
    seed_train, seed_val = seed_loaders(train_frame, val_frame, size, batch, device)
    course_model = model()
    course_train, course_val = make_loaders(train_frame, val_frame, size, batch, profile.num_workers)
    course_loss = FocalLoss()

    def course_epoch() -> float:
        started = time.perf_counter()
        fit(course_model, course_train, course_val, epochs=1, lr=1e-4, loss_fn=course_loss, device=device,
            amp=amp, channels_last=True, progress=False, verbose=False)
        if gpu:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    machine = describe_machine(device)
    print(f"{machine_line(machine)}, device {device}"
          + f"; profile {profile.name}: AttnVGG width {profile.width}, {size} px, batch {batch}, "
          f"{profile.num_workers} workers; {len(train_frame)}/{len(val_frame)} images stored at {args.source_size} px; "
          f"fit with channels_last{' and bf16 autocast' if amp else ''}")
    seed_times, course_times = [], []
    for round_ in range(args.rounds + 1):
        s, c = seed_epoch(seed_model, seed_train, seed_val, seed_opt, SeedFocalLoss()), course_epoch()
        label = "warm-up" if round_ == 0 else f"round {round_}"
        print(f"{label:>8}: seed 000 loop {len(train_frame) / s:7.1f} img/s   fit {len(train_frame) / c:7.1f} img/s"
              f"   ratio {s / c:.2f}x")
        if round_:
            seed_times.append(s)
            course_times.append(c)
    seed_rate = len(train_frame) / statistics.median(seed_times)
    course_rate = len(train_frame) / statistics.median(course_times)
    result = {
        "machine": machine, "device": device.type, "profile": profile.name, "image_size": size,
        "width": profile.width, "batch_size": batch, "num_workers": profile.num_workers, "amp": amp,
        "channels_last": True, "train_images": len(train_frame), "val_images": len(val_frame),
        "source_size": args.source_size, "rounds": args.rounds,
        "seed_images_per_s": round(seed_rate, 2), "fit_images_per_s": round(course_rate, 2),
        "ratio": round(course_rate / seed_rate, 3), "goal": 5.0 if gpu else 1.5,
    }
    print(f"median over {args.rounds} rounds: seed 000 loop {seed_rate:.1f} img/s, fit {course_rate:.1f} img/s, "
          f"ratio {result['ratio']:.2f}x (goal {result['goal']}x)")
    save_record(args.results, f"train_throughput-{device.type}.json", result)
    return result


if __name__ == "__main__":
    main()
