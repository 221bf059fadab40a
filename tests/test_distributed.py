"""course_lib.distributed: sharding, and fit under torchrun (two gloo processes) against one process."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import RandomSampler, SequentialSampler

from course_lib.checkpoint import load_checkpoint
from course_lib.distributed import ShardSampler, World, shard_loader, unwrap

HELPER = Path(__file__).parent / "helpers" / "ddp_fit.py"
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n,size", [(10, 2), (11, 2), (11, 3), (3, 4)])
def test_padded_shards_cover_the_order_in_equal_parts(n, size):
    shards = [
        list(ShardSampler(SequentialSampler(range(n)), rank, size))
        for rank in range(size)
    ]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(
        ShardSampler(range(n), 0, size)
    )
    assert set().union(*shards) == set(range(n))
    # step k of all processes together = positions [k*size, (k+1)*size) of the order
    assert [shards[r][k] for k in range(len(shards[0])) for r in range(size)][
        :n
    ] == list(range(n))


@pytest.mark.parametrize("n,size", [(10, 2), (11, 3), (2, 3)])
def test_unpadded_shards_score_each_item_once(n, size):
    shards = [
        list(ShardSampler(range(n), rank, size, pad=False)) for rank in range(size)
    ]
    assert sorted(i for s in shards for i in s) == list(range(n))
    assert [len(ShardSampler(range(n), r, size, pad=False)) for r in range(size)] == [
        len(s) for s in shards
    ]


def test_shards_follow_the_wrapped_samplers_seeded_order():
    torch.manual_seed(5)
    whole = list(RandomSampler(range(20)))
    torch.manual_seed(5)
    first = list(ShardSampler(RandomSampler(range(20)), 0, 2))
    assert first == whole[0::2]
    with pytest.raises(ValueError, match="rank 2"):
        ShardSampler(range(4), 2, 2)


def test_shard_loader_keeps_the_loader_settings():
    loader = torch.utils.data.DataLoader(
        list(range(10)), batch_size=3, drop_last=True, shuffle=True
    )
    assert shard_loader(loader, World()) is loader
    shard = shard_loader(loader, World(rank=1, size=2))
    assert (
        shard.batch_size == 3
        and shard.drop_last
        and isinstance(shard.sampler, ShardSampler)
    )
    assert len(list(shard)) == 1  # 5 indices, batches of 3, the incomplete one dropped


def test_unwrap_removes_compile_wrapper():
    core = nn.Linear(2, 1)
    assert unwrap(core) is core
    assert unwrap(torch.compile(core)) is core


def test_fit_under_torchrun_matches_one_process(tmp_path):
    """2 gloo processes with batch 8 == 1 process with batch 16: same losses, AUC, checkpoint."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    single, double = tmp_path / "single", tmp_path / "double"
    subprocess.run(
        [sys.executable, str(HELPER), "16", str(single)],
        check=True,
        env=env,
        timeout=300,
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--standalone",
            str(HELPER),
            "8",
            str(double),
        ],
        env=env,
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    a = pd.read_csv(single / "history.csv").drop(columns="seconds")
    b = pd.read_csv(double / "history.csv").drop(columns="seconds")
    assert len(a) == 3 and a["train_loss"].diff().iloc[1:].lt(0).all(), (
        "the tiny model should learn"
    )
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5, atol=1e-6)
    state = load_checkpoint(double / "last.pt")["model"]
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in state), (
        "plain keys, loadable anywhere"
    )
    reference = load_checkpoint(single / "last.pt")["model"]
    for key, value in reference.items():
        torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-6)
    assert not [p for p in os.listdir(double) if p.endswith(".tmp")]
