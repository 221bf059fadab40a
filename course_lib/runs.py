"""Run folders: what a training run leaves on disk, and how it is protected (notebook ``10_attnvgg_melanoma``).

``fit(out_dir=...)`` writes ``last.pt`` (everything needed to resume), ``best.pt`` (the
weights of the best epoch), ``metrics.csv`` (one row per epoch) and ``run.json``, a manifest
that says *which* run the folder holds: the model (its class, parameter count and a
fingerprint of its tensor shapes), the number of epochs, and whatever the caller adds in
``run_info`` (the command line adds the model name, width, image size, seed and data).

Four rules keep runs from being lost or mixed up:

1. a folder that holds a run is never trained into again unless the caller says how:
   ``resume=True`` continues it, ``overwrite=True`` replaces it (:func:`prepare_run_folder`);
2. a run is resumed only by the same model with the same options, the same data and the same
   number of processes (:func:`check_same_run`); a folder with files of a run but no
   ``last.pt`` is resumed only when its ``run.json`` says it is this run
   (:func:`check_resumable`) — otherwise there is nothing to resume, and it is refused;
3. one writer per folder: training holds an exclusive lock on ``.run.lock`` in the folder
   (:func:`run_folder_lock`); a second training into it is refused at once, naming the
   process that holds it. The operating system releases the lock when that process ends,
   even by ``SIGKILL``, so a killed run never leaves a stale lock;
4. the folder is checked before any work: a path that is a file, or a folder that cannot be
   written, fails at once rather than after the first epoch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
from torch import nn

from .files import write_text_atomic

__all__ = [
    "RUN_FILES",
    "MANIFEST",
    "RunFolderError",
    "check_run_folder",
    "prepare_run_folder",
    "describe_run",
    "model_signature",
    "check_same_run",
    "check_resumable",
    "run_folder_lock",
    "read_manifest",
    "write_manifest",
]

#: The files ``fit`` writes into a run folder; ``overwrite=True`` removes these and nothing else.
MANIFEST = "run.json"
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", MANIFEST)
#: The lock file of a folder being trained into (it holds the trainer's process id).
LOCK = ".run.lock"


class RunFolderError(RuntimeError):
    """A run folder cannot be used as asked: it holds another run, or cannot be written."""


def describe_run(out: Path) -> str | None:
    """A short description of the run in ``out`` ("6 epochs done, best val_auc 0.619"), or None."""
    present = [
        name for name in RUN_FILES if name != MANIFEST and (out / name).is_file()
    ]
    if not present:
        return None
    try:
        metrics = pd.read_csv(out / "metrics.csv")
        best = metrics["val_auc"].max()
        return (
            f"{len(metrics)} epoch(s) done, best val_auc {best:.3f}"
            if len(metrics)
            else f"files {', '.join(present)}"
        )
    except Exception:  # no metrics.csv, or one without val_auc: name the files
        return f"files {', '.join(present)}"


def _check_writable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunFolderError(
            f"{out} is a file, not a folder: choose a folder for the run's checkpoints"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as err:
        raise RunFolderError(
            f"cannot write into {out} ({err.strerror or err}): choose another folder"
        ) from None


def check_run_folder(
    out: str | Path, resume: bool = False, overwrite: bool = False
) -> Path:
    """Check ``out`` before any work, changing nothing in it (it is created when missing).

    Raises :class:`RunFolderError` when ``out`` is a file or cannot be written, or when it
    holds a run and neither ``resume`` nor ``overwrite`` was given.
    """
    out = Path(out)
    if resume and overwrite:
        raise RunFolderError(
            "resume and overwrite exclude each other: continue the run, or replace it"
        )
    _check_writable(out)
    existing = describe_run(out)
    if existing is not None and not (resume or overwrite):
        raise RunFolderError(
            f"{out} already holds a run ({existing}); nothing was changed. To continue it, resume "
            "(--resume, or fit(resume=True)); to keep it and train another, choose a new folder; "
            "to replace it, ask for that explicitly (--overwrite, or fit(overwrite=True))"
        )
    return out


def prepare_run_folder(
    out: str | Path, resume: bool = False, overwrite: bool = False
) -> Path:
    """:func:`check_run_folder`, then, with ``overwrite``, remove the run ``out`` holds (its files only)."""
    out = check_run_folder(out, resume, overwrite)
    if overwrite:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    return out


def model_signature(model: nn.Module) -> dict:
    """The model's class, parameter count and a fingerprint of its tensors' names and shapes."""
    state = model.state_dict()
    shapes = ";".join(f"{name}:{tuple(t.shape)}" for name, t in state.items())
    return {
        "class": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "fingerprint": hashlib.sha1(shapes.encode()).hexdigest()[:12],
    }


def read_manifest(out: str | Path) -> dict | None:
    try:
        return json.loads((Path(out) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def write_manifest(out: str | Path, manifest: dict) -> None:
    write_text_atomic(
        json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n",
        Path(out) / MANIFEST,
    )


def _model_words(manifest: dict) -> str:
    signature, info = manifest.get("model") or {}, manifest.get("run_info") or {}
    named = ", ".join(f"{k} {info[k]}" for k in ("model", "width") if k in info)
    return (
        f"{named}: " if named else ""
    ) + f"{signature.get('class')} with {signature.get('parameters', 0):,} parameters"


def check_same_run(saved: dict, wanted: dict, where: Path) -> None:
    """Refuse to resume a run whose manifest ``saved`` differs from ``wanted`` (same keys).

    The model is compared by its signature; every other entry (epochs, and the caller's
    ``run_info``) by value. The message lists each difference and what to do.
    """
    model_then, model_now = saved.get("model") or {}, wanted.get("model") or {}
    if model_then and model_then != model_now:
        raise RunFolderError(
            f"{where} holds a checkpoint of another model ({_model_words(saved)}) than the one being "
            f"trained ({_model_words(wanted)}): resume with the same model and options, or train into a "
            "new folder"
        )
    saved_info, wanted_info = saved.get("run_info") or {}, wanted.get("run_info") or {}
    differences = [
        f"{key}: {saved_info.get(key)!r} then, {wanted_info.get(key)!r} now"
        for key in sorted(set(saved_info) | set(wanted_info))
        if key in saved_info
        and key in wanted_info
        and saved_info[key] != wanted_info[key]
    ]
    if saved.get("processes", 1) != wanted.get("processes", 1):
        differences.append(
            f"processes: {saved.get('processes', 1)} then, {wanted.get('processes', 1)} "
            "now (each process reads its own batches: the effective batch would change)"
        )
    if saved.get("epochs") is not None and saved.get("epochs") != wanted.get("epochs"):
        differences.insert(
            0,
            f"epochs: {saved['epochs']} then, {wanted['epochs']} now (the learning-rate "
            "schedule was laid out for the first number: resuming with another would "
            "restart or cut it)",
        )
    if differences:
        raise RunFolderError(
            f"{where} holds a run with other settings — "
            + "; ".join(differences)
            + ". Resume it with its own settings, or start a new run in another folder "
            "(or replace it with --overwrite)"
        )


@contextlib.contextmanager
def run_folder_lock(out: str | Path):
    """Hold ``out``'s lock for the block: one writer per run folder.

    Raises :class:`RunFolderError` at once, naming the holder's process id, when another
    process trains into ``out``. Where ``fcntl`` is missing (Windows) there is no lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on the course's platforms
        yield
        return
    _check_writable(Path(out))  # a folder (created when missing) that can be written
    path = Path(out) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RunFolderError(
                f"{out} is being trained into by another process right now (pid "
                f"{holder}); nothing was changed. Wait for it to finish, or train into "
                "another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_resumable(out: Path, wanted: dict) -> None:
    """Before resuming from nothing (no ``last.pt``): refuse a folder that holds files of
    another run, or files without a ``run.json`` that says they are this run's."""
    existing = describe_run(out)
    if existing is None:
        return  # an empty folder: the run starts there
    saved = read_manifest(out)
    if saved is None:
        raise RunFolderError(
            f"{out} holds files of a run ({existing}) but no last.pt and no run.json: "
            "there is nothing to resume, and they may be yours; nothing was changed. "
            "Train into another folder, or replace them with --overwrite "
            "(fit(overwrite=True))"
        )
    check_same_run(saved, wanted, out)
