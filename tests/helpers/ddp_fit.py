"""Train a tiny model with ``fit`` and write its history; run alone or under ``torchrun``.

    python tests/helpers/ddp_fit.py BATCH OUT_DIR
    torchrun --nproc_per_node 2 tests/helpers/ddp_fit.py BATCH/2 OUT_DIR

The model has no BatchNorm and no dropout, and the data no random augmentation, so the two
runs must compute the same gradients: two processes with batch b see, between them, exactly
the images a single process sees with batch 2b (``course_lib.distributed.ShardSampler``).
"""

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_lib.distributed import shutdown, world
from course_lib.runspec import OptimizerSpec, TrainConfig
from course_lib.train import fit


def main() -> None:
    batch, out = int(sys.argv[1]), Path(sys.argv[2])
    torch.manual_seed(0)
    x = torch.randn(96, 3, 8, 8)
    y = ((x[:, 0].mean((1, 2)) + 0.5 * torch.randn(96)) > 0).long()
    train = DataLoader(
        TensorDataset(x[:64], y[:64]), batch_size=batch, shuffle=True, drop_last=True
    )
    # 32 images: uneven shards
    val = DataLoader(TensorDataset(x[64:], y[64:]), batch_size=5)
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 1),
    )
    history = fit(
        model,
        train,
        val,
        TrainConfig(epochs=3, optimizer=OptimizerSpec(lr=0.05), seed=7, device="cpu"),
        out_dir=out,
        progress=False,
        verbose=False,
    )
    if world().is_main:
        history.to_csv(out / "history.csv", index=False)
    shutdown()


if __name__ == "__main__":
    main()
