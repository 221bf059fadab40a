"""The command line: ``python -m course_lib.train`` (notebooks ``02`` and ``10``).

    python -m course_lib.train --data-root DIR --model vgg16 --out DIR [--epochs N] [--image-size S]
                               [--resume | --overwrite] [--profile P] [--val-fraction F]
                               [--test-fraction F] [--seed S]
                               [--amp] [--deterministic] [--channels-last] [--compile] [--verify] [--make-synthetic]
    torchrun --nproc_per_node 2 -m course_lib.train ...   # the same, on two processes

It splits the data by patient into training, validation and test sides, trains with
:func:`course_lib.train.fit`, writes ``metrics.csv`` and checkpoints into ``--out``, and
finally scores the last epoch's model once on the held-out test patients (``test.json``:
the AUC and its 95 % patient-bootstrap interval; ``--test-fraction 0`` holds out none). Values not given come from the run profile.

Every argument is checked before any work starts. A mistake — a bad value, a missing or
broken data set, an ``--out`` that already holds a run, a checkpoint of another model — ends
the program with one line that says what is wrong and what to do, and exit status 2; an
interruption (Ctrl-C, or ``SIGTERM`` from a scheduler) says which epoch is saved and how to
resume, with exit status 130.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_checkpoint
from .cli_args import (
    INTERRUPTED,
    USAGE_ERROR,
    Parser,
    number,
    one_line,
    seed_number,
    write_failure,
)
from .config import (
    AMP_VAR,
    ProfileError,
    fast_mixed_precision,
    get_device,
    get_profile,
    seed_everything,
)
from .data import (
    DataError,
    class_counts,
    load_melanoma,
    make_loaders,
    make_synthetic_lesions,
    split_by_patient,
)
from .distributed import barrier, init_from_environment, launched_world, shutdown
from .evaluation import auc_ci
from .files import write_text_atomic
from .models import MODEL_NAMES
from .models.attnvgg import WeightsError
from .runs import RunFolderError, check_run_folder
from .runspec import DataSpec, ModelSpec, OptimizerSpec, RunSpec, TrainConfig
from .train import evaluate, fit

__all__ = ["main", "parser"]


def _multiple_of_32(text: str) -> int:
    value = number(int, 32, what="at least 32")(text)
    if value % 32:
        raise argparse.ArgumentTypeError(
            f"{value} is not a multiple of 32 (VGG halves the image five times); "
            f"try {max(32, round(value / 32) * 32)}"
        )
    return value


def _add_speed_switches(p: argparse.ArgumentParser) -> None:
    """How a step runs: precision, determinism, memory layout, compilation (notebook ``10``)."""
    p.add_argument("--amp", action="store_true", help="mixed precision")
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic kernels (slower on a GPU): a repeated or resumed run on the same GPU "
        "reproduces the numbers exactly",
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="NHWC memory layout (faster on GPUs)",
    )
    p.add_argument(
        "--compile", action="store_true", help="train a torch.compile'd model"
    )


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m course_lib.train",
        description=(
            "Train a course model on a melanoma data set (Kaggle or simple layout), split by patient. "
            "Values not given come from the run profile."
        ),
    )
    p.add_argument(
        "--data-root", required=True, type=Path, help="folder with marking.csv"
    )
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    p.add_argument(
        "--out", required=True, type=Path, help="folder for checkpoints and metrics.csv"
    )
    p.add_argument("--epochs", type=number(int, 1, what="a positive number of epochs"))
    p.add_argument("--image-size", type=_multiple_of_32, help="a multiple of 32")
    p.add_argument(
        "--width",
        type=number(float, 0, 4, low_open=True, what="a width multiplier in (0, 4]"),
        help="VGG channel multiplier (1 is the real VGG16)",
    )
    p.add_argument("--batch-size", type=number(int, 1, what="a positive batch size"))
    p.add_argument(
        "--lr",
        type=number(float, 0, low_open=True, what="a positive learning rate"),
        default=1e-3,
    )
    p.add_argument(
        "--num-workers", type=number(int, 0, what="a number of workers >= 0")
    )
    p.add_argument(
        "--profile", choices=("smoke", "cpu", "gpu"), help="default: COURSE_PROFILE"
    )
    p.add_argument(
        "--val-fraction",
        type=number(
            float,
            0,
            1,
            low_open=True,
            high_open=True,
            what="a fraction strictly between 0 and 1",
        ),
        default=0.2,
    )
    p.add_argument(
        "--test-fraction",
        type=number(
            float, 0, 1, high_open=True, what="a fraction of at least 0 and below 1"
        ),
        default=0.2,
        help="patients held out for one final test AUC after training (0: none)",
    )
    p.add_argument("--seed", type=seed_number(), default=0)
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last.pt",
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run --out holds (its files only)",
    )
    _add_speed_switches(p)
    p.add_argument(
        "--verify", action="store_true", help="decode every image once before training"
    )
    p.add_argument(
        "--make-synthetic",
        action="store_true",
        help="generate the profile's synthetic lesions into --data-root when it holds no data set",
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def _resume_command(argv: list[str]) -> str:
    """The command that continues this run (under torchrun when it ran under torchrun)."""
    kept = [a for a in argv if a not in ("--overwrite", "--resume", "--make-synthetic")]
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", 1)))
    start = (
        ["torchrun", "--nproc_per_node", str(processes)]
        if processes > 1
        else ["python"]
    )
    return shlex.join([*start, "-m", "course_lib.train", *kept, "--resume"])


def _lost_peer(err: BaseException) -> bool:
    """Whether ``err`` says that another process of a torchrun run has gone."""
    words = ("closed by peer", "connection reset", "broken pipe", "nccl", "gloo")
    return launched_world().distributed and any(w in str(err).lower() for w in words)


def _saved(out: Path) -> str:
    """What the run folder holds: the last epoch its last.pt saved, or nothing."""
    try:
        done = load_checkpoint(out / "last.pt")["epoch"]
    except (CheckpointError, KeyError, TypeError):
        done = 0
    return (
        f"epoch {done} is the last one saved, in {out / 'last.pt'}"
        if done
        else "no epoch was completed, so nothing was saved"
    )


class _Terminated(KeyboardInterrupt):
    """SIGTERM: a scheduler's preemption, or torchrun ending the survivors of a failure."""


def _interrupted(out: Path, argv: list[str], terminated: bool) -> str | None:
    """The line an interrupted run prints, or None for a process that leaves it to another.

    Ctrl-C reaches every process of a torchrun run: the first one speaks for all. SIGTERM
    comes from torchrun when a process failed (the failed one cannot speak, and the first
    may be it), so every process it reaches speaks; none can tell Ctrl-C from a failed peer
    for sure, and the line says so.
    """
    launched = launched_world()
    if launched.distributed and not terminated and not launched.is_main:
        return None
    why = (
        "stopped (interrupted, or torchrun ended it because another of its processes "
        "failed: see its report)"
        if launched.distributed
        else "interrupted"
    )
    return f"{why}: {_saved(out)}; continue with: {_resume_command(argv)}"


def _raise_keyboard_interrupt(signum, frame):
    raise _Terminated


def _data(args, profile, size, current):
    """Load (or, with --make-synthetic, first generate) the data set and split it by patient."""
    if (
        args.make_synthetic
        and current.is_main
        and not (args.data_root / "marking.csv").exists()
    ):
        try:
            make_synthetic_lesions(
                args.data_root, profile.n_images, size, seed=args.seed
            )
        except OSError as err:  # a full or read-only disk: nothing half-written is left
            if write_failure(err) is None:
                raise
            raise DataError(
                f"cannot generate synthetic lesions in {args.data_root} "
                f"({err.strerror or err}); nothing was left half-written: free space or "
                "choose another --data-root"
            ) from None
        print(f"generated {profile.n_images} synthetic lesions in {args.data_root}")
    barrier()
    frame = load_melanoma(args.data_root, verify=args.verify)
    return split_by_patient(
        frame, args.val_fraction, args.test_fraction, seed=args.seed
    )


def _sides(split) -> str:
    """ "N train (class counts) / ... images, P / ... patients" for the non-empty sides."""
    named = [
        (name, part) for name, part in zip(("train", "val", "test"), split) if len(part)
    ]
    images = " / ".join(f"{len(p)} {name} ({class_counts(p)})" for name, p in named)
    patients = " / ".join(str(p.patient_id.nunique()) for _, p in named)
    return f"{images} images, {patients} patients"


def _run(args, argv: list[str]) -> int:
    profile = get_profile(args.profile)
    epochs = profile.epochs if args.epochs is None else args.epochs
    size = profile.image_size if args.image_size is None else args.image_size
    width = profile.width if args.width is None else args.width
    batch_size = profile.batch_size if args.batch_size is None else args.batch_size
    workers = profile.num_workers if args.num_workers is None else args.num_workers
    if not args.make_synthetic and not args.data_root.is_dir():
        raise DataError(
            f"--data-root {args.data_root} is not a folder (add --make-synthetic to generate "
            "synthetic lesions there)"
        )
    current = init_from_environment()  # under torchrun: join the other processes
    # every process checks (they read the same folder, so all refuse or none, and none
    # waits at the next barrier for a first process that has gone); the first one says so
    check_run_folder(args.out, resume=args.resume, overwrite=args.overwrite)
    train_frame, val_frame, test_frame = _data(args, profile, size, current)
    seed_everything(args.seed, deterministic=args.deterministic)
    device = get_device()  # decided once: the loaders deliver there, fit trains there
    train_loader, val_loader = make_loaders(
        train_frame, val_frame, size, batch_size, workers, device=device, seed=args.seed
    )
    # COURSE_AMP=1 or 0 decides, as in the notebooks (an invalid value is refused); --amp: on
    amp = args.amp or (
        bool(os.environ.get(AMP_VAR, "").strip()) and fast_mixed_precision(device)
    )
    config = TrainConfig(
        epochs=epochs,
        optimizer=OptimizerSpec(lr=args.lr),
        amp=amp,
        channels_last=args.channels_last,
        compile=args.compile,
        seed=args.seed,
        device=device,
    )
    # the profile's ImageNet weights (gpu; COURSE_PRETRAINED), at full width only
    pretrained = profile.pretrained and width == 1.0
    spec = RunSpec(
        ModelSpec(
            args.model, {"width": width, **({"pretrained": True} if pretrained else {})}
        ),
        DataSpec.of(train_loader, val_loader),
        config,
    )
    model = spec.model.build()
    if current.is_main:
        print(
            f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters; "
            f"{_sides((train_frame, val_frame, test_frame))}; profile {profile.name}, "
            f"{size} px, {epochs} epochs"
            + (
                f", {current.size} processes of batch {batch_size}"
                if current.distributed
                else ""
            )
        )
    history = fit(
        model,
        train_loader,
        val_loader,
        config,
        out_dir=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        run_info=spec.describe(),
        progress=not args.no_progress,
    )
    if len(history) and current.is_main:
        best = history.loc[history["val_auc"].idxmax()]
        print(
            f"best val_auc {best['val_auc']:.4f} at epoch {int(best['epoch'])}; "
            f"metrics in {args.out / 'metrics.csv'}"
        )
        if len(test_frame):
            _report_test(model, test_frame, size, batch_size, workers, device, args.out)
    shutdown()
    return 0


def _report_test(model, test_frame, size, batch_size, workers, device, out) -> None:
    """The last epoch's model on the held-out patients: AUC with a patient bootstrap interval.

    Printed and written to ``<out>/test.json``; the test images took no part in training or
    in choosing anything (the model is the last epoch's, whatever the validation curve). A
    test side too small for a bootstrap gets its AUC without an interval, and says why.
    """
    loader = make_loaders(
        test_frame, test_frame, size, batch_size, workers, device=device
    )[1]
    run = evaluate(model, loader, device, return_predictions=True)
    patients = test_frame["patient_id"].to_numpy()
    result = {
        "test_auc": run["auc"],
        "images": len(test_frame),
        "patients": int(test_frame["patient_id"].nunique()),
    }
    try:
        interval = auc_ci(run["targets"], run["scores"], groups=patients)
    except ValueError as err:  # a few patients only: the AUC stands, its interval not
        result.update(low=None, high=None, level=0.95, method=f"no interval: {err}")
        words = f"(no interval: {one_line(err)})"
    else:
        result.update(
            low=interval.low,
            high=interval.high,
            level=interval.level,
            method="BCa bootstrap over patients (course_lib.evaluation.auc_ci)",
        )
        words = f"(95 % interval {interval.low:.3f} to {interval.high:.3f})"
    write_text_atomic(json.dumps(result, indent=2) + "\n", Path(out) / "test.json")
    print(
        f"test AUC of the last epoch {result['test_auc']:.3f} {words} on "
        f"{len(test_frame)} held-out images ({result['patients']} patients); in "
        f"{Path(out) / 'test.json'}"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cli = parser()
    try:
        args = cli.parse_args(argv)
        if args.val_fraction + args.test_fraction >= 1:
            cli.error(
                f"--val-fraction {args.val_fraction} and --test-fraction "
                f"{args.test_fraction} leave no patients for training (their sum must "
                "stay below 1)"
            )
    except SystemExit as stop:  # --help, or a one-line usage error
        return int(stop.code or 0)
    previous = signal.getsignal(signal.SIGTERM)
    try:  # a scheduler's SIGTERM (preemption) ends the run like Ctrl-C: with a message
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    except ValueError:  # not the main thread (e.g. called from a test's thread)
        previous = None
    try:
        return _run(args, argv)
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, _Terminated)
        if (line := _interrupted(args.out, argv, terminated)) is not None:
            print(line, file=sys.stderr)
        return INTERRUPTED
    except OSError as err:  # a full or read-only disk: every file written is whole
        words = write_failure(err)
        if words is None:
            raise
        print(
            f"error: {words}; {_saved(args.out)} (every file is written whole or not "
            f"at all); free space or choose another --out, then: {_resume_command(argv)}",
            file=sys.stderr,
        )
        return USAGE_ERROR
    except torch.OutOfMemoryError:
        print(
            "error: the device ran out of memory: lower --batch-size or --image-size (or --width)",
            file=sys.stderr,
        )
        return USAGE_ERROR
    except (
        DataError,
        WeightsError,
        RunFolderError,
        CheckpointError,
        ProfileError,
        FloatingPointError,
        ValueError,
    ) as err:
        # every process refuses the same folder: the first one says so
        if not (isinstance(err, RunFolderError) and not launched_world().is_main):
            print(f"error: {one_line(err)}", file=sys.stderr)
        return USAGE_ERROR
    except RuntimeError as err:  # after its subclasses above (RunFolderError, ...)
        if not _lost_peer(err):
            raise
        # torchrun's SIGTERM for the survivors follows: let it not cut this line short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(
            f"error: another process of the run stopped ({one_line(err)[:120]}); "
            f"{_saved(args.out)}; continue with: {_resume_command(argv)}",
            file=sys.stderr,
        )
        return USAGE_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
