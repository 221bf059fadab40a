"""A training run killed with SIGKILL and restarted with --resume loses nothing.

The command line runs in a subprocess that kills itself at a named point (no cleanup
handlers run, as when a laptop sleeps or a cloud notebook is preempted): inside epoch 2's
steps, inside the write of its checkpoint, or between the checkpoint and the metrics row.
The test restarts it with
``--resume``, and compares the rest of its metrics with an uninterrupted run: on the CPU
with a fixed seed they are identical — with the data loaded in the training process and with
two persistent worker processes (whose random streams would otherwise run on from where
the killed run left them).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from course_lib.checkpoint import load_checkpoint
from course_lib.data import make_synthetic_lesions
from course_lib.faults import KILL_VAR

ROOT = Path(__file__).resolve().parents[1]


def _command(data, out, workers, *extra):
    return [
        sys.executable,
        "-m",
        "course_lib.train",
        "--data-root",
        str(data),
        "--out",
        str(out),
        "--model",
        "vgg16",
        "--image-size",
        "64",
        "--width",
        "0.0625",
        "--batch-size",
        "8",
        "--num-workers",
        str(workers),
        "--epochs",
        "3",
        "--profile",
        "smoke",
        "--seed",
        "5",
        "--no-progress",
        *extra,
    ]


def _rows(path):
    return len(pd.read_csv(path)) if path.is_file() else 0


# where the run kills itself (course_lib.faults), and the last epoch saved when it dies
KILL_POINTS = {
    "epoch 2 step 5": 1,  # inside epoch 2's training steps
    "epoch 2 writing last.pt": 1,  # the new checkpoint complete, not yet in place
    "epoch 2 before metrics.csv": 2,  # last.pt has epoch 2, metrics.csv only epoch 1
}


@pytest.mark.parametrize(
    "workers, device, point",
    [
        (0, "cpu", "epoch 2 step 5"),
        (2, "cpu", "epoch 2 step 5"),
        (0, "cpu", "epoch 2 writing last.pt"),
        (2, "cpu", "epoch 2 before metrics.csv"),
        pytest.param(
            2,
            "cuda",
            "epoch 2 step 5",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(
                    not torch.cuda.is_available(),
                    reason="needs a CUDA GPU: run `pytest -m gpu` on a GPU machine",
                ),
            ],
        ),
    ],
)
def test_sigkill_then_resume_matches_an_uninterrupted_run(
    tmp_path, workers, device, point
):
    """The run kills itself at an exact point (COURSE_KILL_AT), so the test does not depend
    on the machine's speed or load: no sleep decides where the kill lands."""
    data = tmp_path / "data"
    make_synthetic_lesions(data, n_images=320, image_size=64, seed=11)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(KILL_VAR, None)
    # on CUDA, some kernels (atomics, TF32 algorithm choice) round differently from run to
    # run; --deterministic asks for kernels that do not, so both devices promise exact equality
    extra = ["--deterministic"] if device == "cuda" else []
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    subprocess.run(
        _command(data, reference, workers, *extra),
        check=True,
        env=env,
        timeout=300,
        capture_output=True,
    )
    expected = pd.read_csv(reference / "metrics.csv")

    killed = subprocess.run(
        _command(data, interrupted, workers, *extra),
        env={**env, KILL_VAR: point},
        timeout=300,
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = KILL_POINTS[point]
    assert load_checkpoint(interrupted / "last.pt")["epoch"] == saved
    assert _rows(interrupted / "metrics.csv") == 1
    left = list(interrupted.glob(".last.pt.*.tmp"))
    assert len(left) == (point == "epoch 2 writing last.pt"), left

    resumed = subprocess.run(
        _command(data, interrupted, workers, *extra, "--resume"),
        env=env,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing at epoch {saved + 1}" in resumed.stdout
    assert not list(interrupted.glob("*.tmp")), "the dead writer's temporary is gone"
    got = pd.read_csv(interrupted / "metrics.csv")
    pd.testing.assert_frame_equal(
        got.drop(columns="seconds"), expected.drop(columns="seconds"), check_exact=True
    )


def test_a_kill_point_that_is_never_reached_changes_nothing(tmp_path, monkeypatch):
    from course_lib.faults import reached

    monkeypatch.setenv(KILL_VAR, "epoch 99 step 1")
    reached("epoch 1 step 1")  # not the named point: returns


def _as_from_a_terminal():
    """In the child: Ctrl-C acts as in a terminal's foreground job. A shell starts background
    jobs (``make test &``, ``nohup``) with SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler: without this, the test's SIGINT would be lost there."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["Ctrl-C to the process group", "SIGTERM"])
def test_an_interrupted_run_says_what_is_saved_and_how_to_resume(tmp_path, how):
    data, out = tmp_path / "data", tmp_path / "run"
    make_synthetic_lesions(data, n_images=320, image_size=64, seed=11)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = _command(data, out, 2)
    # enough epochs that the signal always lands inside the run, however fast the machine
    command[command.index("--epochs") + 1] = "50"
    run = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_as_from_a_terminal,
    )
    try:
        deadline = time.monotonic() + 240
        while _rows(out / "metrics.csv") < 1:
            assert run.poll() is None and time.monotonic() < deadline, (
                "the run ended before epoch 1 was saved"
            )
            time.sleep(0.05)
        time.sleep(0.5)
        if how == "SIGTERM":
            run.send_signal(signal.SIGTERM)
        else:  # a terminal sends SIGINT to every process of the foreground group, workers included
            os.killpg(run.pid, signal.SIGINT)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    lines = [line for line in err.splitlines() if line.strip()]
    assert run.returncode == 130, err[-3000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    saved = load_checkpoint(out / "last.pt")["epoch"]
    assert saved >= 1
    assert lines[0].startswith(
        f"interrupted: epoch {saved} is the last one saved"
    ) and lines[0].endswith("--resume"), lines[0]
