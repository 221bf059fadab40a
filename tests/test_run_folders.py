"""course_lib.runs: a run folder is guarded by what the run is, and has one writer.

The cases of the second hostile review that lost data (R14, R17b, C01) or silently changed a
run (R18, T06), each with the outcome the course promises now.
"""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_lib.cli import main
from course_lib.data import make_synthetic_lesions
from course_lib.runs import LOCK, RunFolderError, check_same_run, run_folder_lock
from course_lib.runspec import TrainConfig
from course_lib.train import fit

ROOT = Path(__file__).resolve().parents[1]
CLI = ["--model", "vgg16", "--width", "0.0625", "--image-size", "64", "--epochs", "1"]
CLI += ["--batch-size", "16", "--num-workers", "0", "--profile", "smoke"]
CLI += ["--no-progress"]


def _toy():
    torch.manual_seed(0)
    loader = DataLoader(
        TensorDataset(torch.randn(16, 4), torch.tensor([0.0, 1.0] * 8)), batch_size=8
    )
    return nn.Linear(4, 1), loader


def _fit(out, **options):
    model, loader = _toy()
    return fit(
        model,
        loader,
        loader,
        TrainConfig(epochs=1, device="cpu"),
        out_dir=out,
        progress=False,
        verbose=False,
        **options,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders") / "data"
    make_synthetic_lesions(root, n_images=96, image_size=64, seed=3)
    return root


def test_a_second_trainer_is_refused_at_once_naming_the_holder(tmp_path):
    with (
        run_folder_lock(tmp_path),
        pytest.raises(RunFolderError, match=rf"another process .*pid {os.getpid()}"),
    ):
        _fit(tmp_path)
    assert not (tmp_path / "last.pt").exists()  # the refused one wrote nothing
    _fit(tmp_path)  # the lock is free again: trains


def test_a_second_command_line_run_into_the_same_folder_is_one_line_and_status_2(
    data, tmp_path
):
    """Review case C01, with the first trainer stood in for by a lock held by this test."""
    out = tmp_path / "run"
    with run_folder_lock(out):
        run = subprocess.run(
            [sys.executable, "-m", "course_lib.train", "--data-root", str(data)]
            + ["--out", str(out), *CLI],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {os.getpid()}" in lines[0], run.stderr
    assert not (out / "metrics.csv").exists()


def test_a_killed_trainer_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from course_lib.runs import run_folder_lock\n"
            f"with run_folder_lock({str(tmp_path)!r}):\n"
            "    print('held', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderError, match=f"pid {holder.pid}"):
            _fit(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    _fit(tmp_path)  # the operating system released the dead process's lock
    assert (tmp_path / LOCK).is_file() and (tmp_path / "last.pt").is_file()


def test_resume_without_last_pt_never_replaces_another_run(data, tmp_path):
    """Review case R14: the run's run.json is compared even when last.pt is gone."""
    out = tmp_path / "run"
    assert main(["--data-root", str(data), "--out", str(out), *CLI]) == 0
    (out / "last.pt").unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK}
    other = [a if a != "vgg16" else "vgg16-se" for a in CLI]
    assert main(["--data-root", str(data), "--out", str(out), *other, "--resume"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK} == before


def test_resume_into_a_folder_of_your_own_files_is_refused(data, tmp_path, capsys):
    """Review case R17b: a metrics.csv without run.json is not a run to resume."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.csv").write_text("epoch,val_auc\n1,0.99\n")
    assert main(["--data-root", str(data), "--out", str(out), *CLI, "--resume"]) == 2
    assert "no last.pt and no run.json" in capsys.readouterr().err
    assert (out / "metrics.csv").read_text() == "epoch,val_auc\n1,0.99\n"


def test_the_same_run_killed_before_its_first_last_pt_starts_again(tmp_path):
    _fit(tmp_path)
    (tmp_path / "last.pt").unlink()  # as if killed while writing epoch 1's checkpoint
    history = _fit(tmp_path, resume=True)  # run.json says it is this run: it restarts
    assert len(history) == 1 and (tmp_path / "last.pt").is_file()


def test_resume_on_another_data_set_at_the_same_path_is_refused(data, tmp_path, capsys):
    """Review case R18: the data is identified by its images, labels and split."""
    copy, out = tmp_path / "data", tmp_path / "run"
    make_synthetic_lesions(copy, n_images=96, image_size=64, seed=3)
    assert main(["--data-root", str(copy), "--out", str(out), *CLI]) == 0
    frame = pd.read_csv(copy / "marking.csv", dtype=str)
    frame["patient_id"] = frame["patient_id"].iloc[::-1].to_numpy()  # another split
    frame.to_csv(copy / "marking.csv", index=False)
    assert main(["--data-root", str(copy), "--out", str(out), *CLI, "--resume"]) == 2
    assert "data.train" in capsys.readouterr().err


def test_resume_with_another_number_of_processes_is_refused(tmp_path):
    """Review case T06: each process reads its own batches, so the run would change."""
    saved = {"model": {}, "epochs": 6, "processes": 1, "run_info": {}}
    with pytest.raises(RunFolderError, match="processes: 1 then, 2 now"):
        check_same_run(saved, {**saved, "processes": 2}, tmp_path)
