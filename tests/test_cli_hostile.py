"""The command line against a hostile user: every mistake is one readable line and exit status 2.

Each case runs ``python -m course_lib.train`` (in-process, through ``course_lib.cli.main``) with
one thing wrong. It must end with exit status 2, exactly one line on stderr that starts with
``error:``, no traceback, and a finished run that sits beside it must be unchanged to the byte.
"""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from course_lib.cli import main
from course_lib.data import make_synthetic_lesions
from course_lib.runs import LOCK

BASE = [
    "--model",
    "vgg16",
    "--image-size",
    "64",
    "--width",
    "0.0625",
    "--batch-size",
    "16",
    "--epochs",
    "2",
    "--profile",
    "smoke",
    "--no-progress",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "data"
    make_synthetic_lesions(root, n_images=120, image_size=64, seed=2)
    return root


@pytest.fixture(scope="module")
def finished_run(data):
    out = data.parent / "finished"
    assert main(["--data-root", str(data), "--out", str(out), *BASE]) == 0
    return out


def _snapshot(folder: Path) -> dict:
    """Every file's bytes; not the course's lock file, which names the last trainer's pid."""
    return {
        p.relative_to(folder): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK
    }


def _edited(data: Path, where: Path, edit) -> Path:
    """A copy of the data set whose marking.csv went through ``edit`` (a frame -> frame or None)."""
    shutil.copytree(data, where)
    frame = pd.read_csv(
        where / "marking.csv", dtype={"image_id": str, "patient_id": str}
    )
    frame = edit(frame)
    if frame is not None:
        frame.to_csv(where / "marking.csv", index=False)
    return where


def _unwritable() -> Path:
    """A folder no one may create things in, root included (sysfs refuses new entries)."""
    probe = Path("/sys/attention-course-test")
    try:
        probe.mkdir()
    except OSError:
        return probe
    probe.rmdir()
    pytest.fail(
        "/sys accepts new folders on this machine: the unwritable-folder case needs another place"
    )


def _frame_cases():
    def drop_target(f):
        return f.drop(columns=["target"])

    def yes_target(f):
        f["target"] = f["target"].astype(object)
        f.loc[3, "target"] = "yes"
        return f

    def duplicate(f):
        f.loc[1, "image_id"] = f.loc[0, "image_id"]
        return f

    def one_class(f):
        f["target"] = 0
        return f

    def one_melanoma_patient(f):
        f["target"] = 0
        f.loc[f.patient_id == f.patient_id.iloc[0], "target"] = 1
        return f

    return {
        "csv without target column": (drop_target, "lacks the column(s) target"),
        "target 'yes'": (yes_target, "found 1 other value(s)"),
        "duplicate image ids": (duplicate, "duplicate image_id"),
        "one class only": (one_class, "one class only"),
        "validation without melanoma": (
            one_melanoma_patient,
            "every side needs both classes",
        ),
    }


FRAME_CASES = _frame_cases()

USAGE_CASES = {
    "--epochs 0": (["--epochs", "0"], "positive number of epochs"),
    "--epochs -3": (["--epochs", "-3"], "positive number of epochs"),
    "--epochs two": (["--epochs", "two"], "not an integer"),
    "--image-size 0": (["--image-size", "0"], "at least 32"),
    "--image-size -64": (["--image-size", "-64"], "at least 32"),
    "--image-size 100": (["--image-size", "100"], "multiple of 32"),
    "--image-size 16": (["--image-size", "16"], "at least 32"),
    "--batch-size 0": (["--batch-size", "0"], "positive batch size"),
    "--width 0": (["--width", "0"], "width multiplier"),
    "--width -1": (["--width", "-1"], "width multiplier"),
    "--width nan": (["--width", "nan"], "finite"),
    "--lr 0": (["--lr", "0"], "positive learning rate"),
    "--lr -1": (["--lr", "-1"], "positive learning rate"),
    "--lr nan": (["--lr", "nan"], "finite"),
    "--lr inf": (["--lr", "inf"], "finite"),
    "--num-workers -1": (["--num-workers", "-1"], "workers"),
    "--val-fraction 0": (["--val-fraction", "0"], "strictly between 0 and 1"),
    "--val-fraction 1": (["--val-fraction", "1"], "strictly between 0 and 1"),
    "--val-fraction 1.5": (["--val-fraction", "1.5"], "strictly between 0 and 1"),
    "--val-fraction -0.2": (["--val-fraction", "-0.2"], "strictly between 0 and 1"),
    "--seed -1": (["--seed", "-1"], "a seed in 0 ... 4294967295"),
    "--profile nosuch": (["--profile", "nosuch"], "invalid choice"),
    "--model nosuch": (["--model", "nosuch"], "invalid choice"),
    "--resume and --overwrite": (["--resume", "--overwrite"], "not allowed with"),
    "unknown flag --learning-rate": (["--learning-rate", "0.1"], "unrecognized"),
}


@pytest.fixture
def run_cli(capsys, finished_run):
    """Run the command line; check the one-line-error contract and that the finished run is untouched."""
    before = _snapshot(finished_run)

    def run(argv, expect):
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert code == 2, (code, captured.err[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
        assert "Traceback" not in captured.err + captured.out
        assert expect in lines[0], lines[0]
        assert _snapshot(finished_run) == before, "the finished run was changed"
        return lines[0]

    return run


@pytest.mark.parametrize("case", list(USAGE_CASES))
def test_bad_arguments(case, run_cli, data, tmp_path):
    extra, expect = USAGE_CASES[case]
    # the last value counts
    run_cli(["--data-root", data, "--out", tmp_path / "out", *BASE, *extra], expect)
    assert not (tmp_path / "out").exists(), (
        "nothing is created when an argument is wrong"
    )


@pytest.mark.parametrize("missing", ["--out", "--data-root"])
def test_missing_required_arguments(missing, run_cli, data, tmp_path):
    argv = {"--data-root": data, "--out": tmp_path / "o"}
    argv.pop(missing)
    run_cli([x for kv in argv.items() for x in kv] + BASE, "required")


@pytest.mark.parametrize("case", list(FRAME_CASES))
def test_bad_data_sets(case, run_cli, data, tmp_path):
    edit, expect = FRAME_CASES[case]
    root = _edited(data, tmp_path / "data", edit)
    run_cli(["--data-root", root, "--out", tmp_path / "out", *BASE], expect)
    assert not (tmp_path / "out" / "last.pt").exists(), "refused before training"


def test_data_root_problems(run_cli, data, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    run_cli(
        ["--data-root", tmp_path / "file", "--out", tmp_path / "o", *BASE],
        "is not a folder",
    )
    run_cli(
        ["--data-root", tmp_path / "missing", "--out", tmp_path / "o", *BASE],
        "is not a folder",
    )
    (tmp_path / "empty").mkdir()
    run_cli(
        ["--data-root", tmp_path / "empty", "--out", tmp_path / "o", *BASE],
        "no marking.csv",
    )
    root = _edited(data, tmp_path / "semicolons", lambda f: None)
    pd.read_csv(root / "marking.csv").to_csv(root / "marking.csv", sep=";", index=False)
    run_cli(["--data-root", root, "--out", tmp_path / "o", *BASE], "another separator")
    header_only = _edited(data, tmp_path / "header", lambda f: f.iloc[:0])
    run_cli(
        ["--data-root", header_only, "--out", tmp_path / "o", *BASE], "lists no images"
    )
    zero = _edited(data, tmp_path / "zero", lambda f: None)
    (zero / "marking.csv").write_bytes(b"")
    run_cli(["--data-root", zero, "--out", tmp_path / "o", *BASE], "not a readable CSV")
    gone = _edited(data, tmp_path / "gone", lambda f: None)
    first = sorted((gone / "images").iterdir())[0]
    first.unlink()
    run_cli(["--data-root", gone, "--out", tmp_path / "o", *BASE], first.name)


def test_out_problems(run_cli, data, tmp_path):
    (tmp_path / "file").write_text("x")
    run_cli(["--data-root", data, "--out", tmp_path / "file", *BASE], "is a file")
    run_cli(
        ["--data-root", data, "--out", tmp_path / "file" / "sub", *BASE],
        "cannot write into",
    )
    run_cli(
        ["--data-root", data, "--out", _unwritable() / "run", *BASE],
        "cannot write into",
    )


def test_a_finished_run_is_never_overwritten(run_cli, data, finished_run):
    message = run_cli(
        ["--data-root", data, "--out", finished_run, *BASE], "already holds a run"
    )
    assert (
        "2 epoch(s) done" in message
        and "--resume" in message
        and "--overwrite" in message
    )


@pytest.mark.parametrize(
    "change, expect",
    [
        (["--epochs", "3"], "epochs: 2 then, 3 now"),
        (["--model", "vgg16-se"], "another model"),
        (["--width", "0.125"], "another model"),
        (["--seed", "4"], "seed: 0 then, 4 now"),
        (["--image-size", "96"], "image_size: 64 then, 96 now"),
    ],
)
def test_resume_refuses_another_run(change, expect, run_cli, data, finished_run):
    run_cli(
        ["--data-root", data, "--out", finished_run, *BASE, *change, "--resume"], expect
    )


@pytest.mark.parametrize("damage", ["truncated", "empty", "text"])
def test_resume_from_a_broken_checkpoint(damage, run_cli, data, finished_run, tmp_path):
    out = tmp_path / "broken"
    shutil.copytree(finished_run, out)
    last = out / "last.pt"
    content = {
        "truncated": last.read_bytes()[:2000],
        "empty": b"",
        "text": b"hello, not a checkpoint",
    }[damage]
    last.write_bytes(content)
    message = run_cli(["--data-root", data, "--out", out, *BASE, "--resume"], str(last))
    assert "delete" in message and last.read_bytes() == content, (
        "the message says what to do; the file stays"
    )


def test_corrupt_image_is_named_with_and_without_verify(run_cli, data, tmp_path):
    root = _edited(data, tmp_path / "data", lambda f: None)
    victim = sorted((root / "images").iterdir())[5]
    victim.write_bytes(victim.read_bytes()[:200])
    message = run_cli(
        ["--data-root", root, "--out", tmp_path / "o1", *BASE, "--verify"], victim.name
    )
    assert "1 of" in message
    # found mid-epoch, in this process or in a worker process
    for workers in (
        "0",
        "2",
    ):
        run_cli(
            [
                "--data-root",
                root,
                "--out",
                tmp_path / f"o-{workers}",
                *BASE,
                "--num-workers",
                workers,
            ],
            victim.name,
        )


def test_make_synthetic_never_writes_into_a_folder_with_other_things(
    run_cli, tmp_path, capsys
):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("my notes")
    run_cli(
        ["--data-root", folder, "--out", tmp_path / "o", *BASE, "--make-synthetic"],
        "not empty",
    )
    assert [p.name for p in folder.iterdir()] == ["todo.txt"]
    # review cases A36, A37: nothing claims to be generating before the refusal
    assert "generat" not in capsys.readouterr().out


def test_unknown_profile_in_the_environment(run_cli, data, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "laptop")
    run_cli(
        ["--data-root", data, "--out", tmp_path / "o", "--model", "vgg16"],
        "is not a run profile",
    )


def test_exploding_learning_rate_names_epoch_and_step_and_saves_nothing(
    run_cli, data, tmp_path
):
    out = tmp_path / "boom"
    argv = ["--data-root", data, "--out", out, *BASE, "--lr", "1e6", "--epochs", "1"]
    argv[argv.index("vgg16")] = "attnvgg"
    message = run_cli(argv, "non-finite at epoch 1")
    assert "step" in message
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()


def test_overwrite_replaces_the_run_and_keeps_other_files(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(["--data-root", str(data), "--out", str(out), *BASE, "--epochs", "1"]) == 0
    )
    (out / "notes.txt").write_text("keep me")
    assert (
        main(["--data-root", str(data), "--out", str(out), *BASE, "--overwrite"]) == 0
    )
    assert len(pd.read_csv(out / "metrics.csv")) == 2
    assert (out / "notes.txt").read_text() == "keep me"
