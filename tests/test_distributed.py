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


@pytest.fixture(scope="module")
def lesions(tmp_path_factory):
    from course_lib.data import make_synthetic_lesions

    root = tmp_path_factory.mktemp("torchrun") / "data"
    make_synthetic_lesions(root, n_images=96, image_size=32, seed=1)
    return root


def _torchrun(data, out, *extra, kill_rank=None):
    """The training command line under torchrun, two gloo processes, killed where asked."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("COURSE_KILL_AT", None)
    if kill_rank is not None:
        env.update(COURSE_KILL_AT="epoch 2 step 1", COURSE_KILL_RANK=str(kill_rank))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--standalone", "-m", "course_lib.train", "--data-root", str(data)]
    command += ["--out", str(out), "--model", "attnvgg", "--width", "0.125"]
    command += ["--image-size", "32", "--epochs", "3", "--batch-size", "16"]
    command += ["--num-workers", "0", "--profile", "smoke", "--no-progress", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _ours(stderr: str) -> list[str]:
    """The lines the course printed, without torchrun's own report: its errors, and the line
    of a process that torchrun's SIGTERM stopped (course_lib.cli prints that one without
    "error:", as it does for Ctrl-C). Which of the two a survivor prints depends on whether
    gloo or torchrun reaches it first, so the tests accept either."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith(("error:", "stopped (", "interrupted:"))
    ]


@pytest.mark.parametrize("kill_rank", [1, 0])
def test_a_killed_torchrun_process_leaves_one_line_and_resumes_exactly(
    lesions, tmp_path, kill_rank
):
    """Review cases T04 and T05: one process SIGKILLed mid-epoch (at an exact point, not
    after a sleep): the survivor prints one line with the torchrun resume command, no
    traceback; ``--resume`` then gives the uninterrupted run's history."""
    whole = _torchrun(lesions, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = _torchrun(lesions, tmp_path / "killed", kill_rank=kill_rank)
    assert killed.returncode != 0
    assert "]: Traceback" not in killed.stderr, killed.stderr[-3000:]
    lines = _ours(killed.stderr)
    assert len(lines) == 1, killed.stderr[-3000:]
    # the survivor hears of it from gloo, or (when it was between collectives) from
    # torchrun's SIGTERM: either way one line that says so
    assert (
        "another process of the run stopped" in lines[0]
        or "torchrun ended it because another of its processes failed" in lines[0]
    ), lines[0]
    assert "epoch 1 is the last one saved" in lines[0]
    assert "torchrun --nproc_per_node 2 -m course_lib.train" in lines[0]
    assert lines[0].endswith("--resume")
    resumed = _torchrun(lesions, tmp_path / "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (
        pd.read_csv(tmp_path / run / "metrics.csv").drop(columns="seconds")
        for run in ("whole", "killed")
    )
    pd.testing.assert_frame_equal(a, b)


def test_a_torchrun_into_a_folder_holding_a_run_is_refused_once(lesions, tmp_path):
    """Review case T03: the second process used to add "interrupted: epoch 2 is the last
    one saved ... python -m ... --resume" about a run that was not interrupted."""
    first = _torchrun(lesions, tmp_path / "run", "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    again = _torchrun(lesions, tmp_path / "run", "--epochs", "1")
    assert again.returncode != 0 and "]: Traceback" not in again.stderr
    assert [line[:40] for line in _ours(again.stderr)] == [
        f"error: {tmp_path / 'run'} already holds a run"[:40]
    ]
    assert "interrupted" not in again.stderr
