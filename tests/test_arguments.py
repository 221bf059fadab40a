"""Arguments checked where they enter, and faults turned into messages (second hostile review).

Each row names the review's case: what used to pass silently or end in a traceback, and the
one clear error (or the supported behaviour) it gets now.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.cli import main
from course_lib.data import DataError, load_melanoma, make_synthetic_lesions, read_rgb
from course_lib.losses import FocalLoss, focal_loss
from course_lib.metrics import classification_metrics
from course_lib.models import AttnVGG, vgg16
from course_lib.runs import read_manifest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "case, make, words",
    [
        ("L26", lambda: AttnVGG(0, width=1 / 8), "num_classes must be an integer >= 1"),
        ("L27", lambda: AttnVGG(1, width=0), "width must be in (0, 4]"),
        ("L28", lambda: AttnVGG(1, width=-1), "width must be in (0, 4]"),
        ("L28 vgg16", lambda: vgg16(1, width=float("nan")), "width must be in (0, 4]"),
        ("L26 vgg16", lambda: vgg16(1.5), "num_classes must be an integer >= 1"),
        (
            "L49",
            lambda: focal_loss(torch.randn(4), torch.tensor([0.0, 2, 0, 1])),
            "[0, 1]",
        ),
        ("L50", lambda: focal_loss(torch.randn(4), torch.ones(4), gamma=-1), "gamma"),
        ("L50 module", lambda: FocalLoss(gamma=float("nan")), "gamma must be >= 0"),
        ("alpha", lambda: FocalLoss(alpha=1.5), "alpha must be in [0, 1]"),
    ],
)
def test_impossible_model_and_loss_arguments_are_refused_by_name(case, make, words):
    with pytest.raises(ValueError) as err:
        make()
    assert words in str(err.value), case


def test_two_outputs_for_the_binary_task_are_scored_on_class_1():
    """Review case FT08: scikit-learn used to reject (N, 2) scores after a whole epoch."""
    targets = np.array([0, 1, 0, 1, 1])
    p1 = np.array([0.1, 0.8, 0.4, 0.3, 0.9])
    two = classification_metrics(targets, np.stack([1 - p1, p1], axis=1))
    assert two == classification_metrics(targets, p1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("arguments") / "data"
    make_synthetic_lesions(root, n_images=64, image_size=64, seed=2)
    return root


def _train(data, out, *extra, env=None):
    command = [sys.executable, "-m", "course_lib.train", "--data-root", str(data)]
    command += ["--out", str(out), "--model", "vgg16", "--width", "0.0625"]
    command += ["--image-size", "64", "--epochs", "1", "--batch-size", "16"]
    command += ["--num-workers", "0", "--profile", "smoke", "--no-progress", *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)


def test_a_learning_rate_beyond_float32_is_refused_when_parsed(data, tmp_path, capsys):
    """Review case A32 (--lr 1e300 used to end in a torch traceback)."""
    assert (
        main(
            ["--data-root", str(data), "--out", str(tmp_path), "--model", "vgg16"]
            + ["--lr", "1e300"]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--lr" in err and "too large" in err


def _bomb(path: Path) -> None:
    Image.new("1", (20000, 20000)).save(path, format="PNG")  # 48 KB, 400 Mpixel


def test_a_decompression_bomb_is_a_data_error_naming_the_file(data, tmp_path):
    """Review cases I07, I07b, I07c: Pillow's DecompressionBombError used to escape."""
    image = tmp_path / "bomb.jpg"
    _bomb(image)
    with pytest.raises(DataError, match=r"cannot decode image .*bomb\.jpg.*this large"):
        read_rgb(str(image))
    copy = tmp_path / "data"
    subprocess.run(["cp", "-r", str(data), str(copy)], check=True)
    victim = sorted((copy / "images").iterdir())[3]
    _bomb(victim)
    with pytest.raises(DataError, match=victim.name):
        load_melanoma(copy, verify=True)
    for extra in ((), ("--verify",)):
        run = _train(copy, tmp_path / f"run{len(extra)}", *extra)
        assert run.returncode == 2, run.stderr[-2000:]
        assert "Traceback" not in run.stderr and victim.name in run.stderr


def test_course_amp_is_honoured_and_validated_by_the_command_line(data, tmp_path):
    """Review case E10: COURSE_AMP used to be ignored by the command line."""
    import os

    env = {**os.environ, "COURSE_AMP": "maybe"}
    run = _train(data, tmp_path / "maybe", env=env)
    assert run.returncode == 2 and "COURSE_AMP='maybe'" in run.stderr, run.stderr
    run = _train(data, tmp_path / "on", env={**os.environ, "COURSE_AMP": "1"})
    assert run.returncode == 0, run.stderr
    assert read_manifest(tmp_path / "on")["run_info"]["train.amp"] is True


def test_a_garbage_course_pretrained_file_is_an_error_before_training(tmp_path, data):
    """Review cases E12, E13: the weights file used to be never opened."""
    import os

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"garbage")
    env = {**os.environ, "COURSE_PRETRAINED": str(garbage)}
    run = _train(data, tmp_path / "run", "--profile", "gpu", "--width", "1", env=env)
    assert run.returncode == 2, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and "could not load the ImageNet VGG16-BN weights" in lines[0]
    )
    assert not (tmp_path / "run" / "metrics.csv").exists()


def _file_size_limit(limit: int):
    """In the child: no file may grow beyond ``limit`` bytes (writes then fail with EFBIG,
    as on a full disk), and SIGXFSZ is ignored so the write reports an error instead.

    The child writes no bytecode: Python's .pyc writer does not notice a short write, and
    a .pyc cut at ``limit`` bytes would break every later import of that module (seen once:
    "EOFError: marshal data too short" in the next test)."""
    import resource
    import signal

    def apply():
        # set before exec, so the child inherits it
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_training_onto_a_full_disk_is_one_line_naming_the_file(data, tmp_path):
    """Review case F02: a failed checkpoint write used to end in torch's traceback."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "course_lib.train", "--data-root", str(data)]
    command += ["--out", str(out), "--model", "vgg16", "--width", "0.0625"]
    command += ["--image-size", "64", "--epochs", "2", "--batch-size", "16"]
    command += ["--num-workers", "0", "--profile", "smoke", "--no-progress"]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=_file_size_limit(200_000),  # run.json fits, a checkpoint does not
    )
    assert run.returncode == 2, run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "cannot write" in lines[0] and ".pt" in lines[0] and "--resume" in lines[0]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_generating_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    """Review cases D13, F01: the generator used to end in Pillow's or tempfile's traceback."""
    run = subprocess.run(
        [sys.executable, "-m", "course_lib.data", "synthetic", str(tmp_path / "syn")]
        + ["--n-images", "20", "--image-size", "64", "--workers", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=_file_size_limit(500),  # the first image does not fit
    )
    assert run.returncode == 2, run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0], run.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []  # no staging folder, no half data set


def test_generating_for_training_onto_a_full_disk_names_the_data_folder(tmp_path):
    """Review case A39: --make-synthetic on a disk that cannot take the images (the advice
    used to be about --out, with a resume command that had lost --make-synthetic)."""
    command = [sys.executable, "-m", "course_lib.train", "--model", "vgg16"]
    command += ["--data-root", str(tmp_path / "new"), "--out", str(tmp_path / "run")]
    command += ["--make-synthetic", "--profile", "smoke", "--no-progress"]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=_file_size_limit(500),
    )
    assert run.returncode == 2, run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert f"cannot generate synthetic lesions in {tmp_path / 'new'}" in lines[0]
    assert "--data-root" in lines[0] and "--resume" not in lines[0]
    assert not (tmp_path / "new").exists()


def test_download_into_a_folder_holding_another_data_set_is_refused(data, tmp_path):
    """Review case D15: the synthetic set used to be accepted as the Kaggle download."""
    from course_lib.data import download_melanoma

    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(data), str(copy)], check=True)
    with pytest.raises(DataError, match="not the Kaggle download's layout"):
        download_melanoma(copy, api=object())
    assert not (copy / ".download-complete").exists()


# The review's caveats: the outcome was right, the message was not.


@pytest.mark.parametrize(
    "command",
    [["course_lib.train", "--model", "vgg16", "--data-root", "."], ["course_lib.data"]],
)
def test_a_seed_beyond_numpys_range_is_refused_by_name_before_anything_is_made(
    tmp_path, command
):
    """Review case A33: the seed used to fail later, unnamed, after --out was created."""
    if command[0] == "course_lib.data":
        command = command + ["synthetic", str(tmp_path / "x"), "--n-images", "2"]
        command += ["--image-size", "32"]
    else:
        command = command + ["--out", str(tmp_path / "run")]
    run = subprocess.run(
        [sys.executable, "-m", *command, "--seed", str(2**32)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "--seed" in run.stderr and "4294967295" in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_empty_validation_loader_is_refused_before_training(tmp_path):
    """Review case FT01: an empty validation loader used to cost a whole epoch first."""
    from torch.utils.data import DataLoader, TensorDataset

    from course_lib.runspec import TrainConfig
    from course_lib.train import fit

    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0.0, 1] * 4)
    train = DataLoader(TensorDataset(x, y), batch_size=4)
    empty = DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4)
    model = vgg16(1, width=1 / 16)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="validation loader yields no batches"):
        fit(model, train, empty, TrainConfig(epochs=1), out_dir=tmp_path / "run")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_a_report_of_several_bad_files_reads_as_one_sentence(data, tmp_path):
    """Review cases I02/I03/I06: the list used to be joined as 'cannot be read:; cannot ...'."""
    copy = tmp_path / "data"
    subprocess.run(["cp", "-r", str(data), str(copy)], check=True)
    first, second = sorted((copy / "images").iterdir())[:2]
    first.write_bytes(b"")
    second.write_bytes(second.read_bytes()[:300])
    run = subprocess.run(
        [sys.executable, "-m", "course_lib.data", "verify", str(copy)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 2
    line = run.stderr.strip()
    assert len(line.splitlines()) == 1 and ":;" not in line
    assert f"cannot be read: cannot decode image {first}" in line
    assert f"; cannot decode image {second}" in line


def test_a_split_that_leaves_no_training_patients_is_refused_by_name(data, tmp_path):
    """--val-fraction and --test-fraction are checked together, before anything is made."""
    run = _train(
        data, tmp_path / "r", "--val-fraction", "0.5", "--test-fraction", "0.5"
    )
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "--val-fraction 0.5 and --test-fraction 0.5 leave no patients" in run.stderr
    assert not (tmp_path / "r").exists()
    run = _train(data, tmp_path / "r", "--test-fraction", "-0.1")
    assert (
        run.returncode == 2 and "--test-fraction: -0.1 is not a fraction" in run.stderr
    )


def test_a_two_way_split_is_asked_for_with_test_fraction_0(data, tmp_path):
    """With --test-fraction 0 every patient is for training or validation; no test.json."""
    run = _train(data, tmp_path / "two", "--test-fraction", "0")
    assert run.returncode == 0, run.stderr
    assert " test (" not in run.stdout and "test AUC" not in run.stdout
    assert not (tmp_path / "two" / "test.json").exists()
    run = _train(data, tmp_path / "three")
    assert run.returncode == 0, run.stderr
    assert " test (" in run.stdout and (tmp_path / "three" / "test.json").is_file()
