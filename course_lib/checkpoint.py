"""Checkpoints that are never half-written (introduced in notebook ``02_vgg16_baseline``).

A checkpoint is written to a temporary file in the same folder, flushed to disk, and
renamed over the old one: ``os.replace`` is atomic, so a crash leaves either the old
checkpoint or the new one, never a truncated file. Loading uses ``weights_only=True``,
which refuses to run code hidden in a pickle.

The same idea for whole folders (a generated or downloaded data set): :func:`staged_folder`
fills a temporary folder beside the destination and renames it into place only when the
work succeeded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = ["atomic_open", "staged_folder", "save_atomic", "load_checkpoint", "write_text_atomic"]


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb"):
    """Open a temporary file beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged_folder(dest: str | Path):
    """Yield an empty folder beside ``dest``; when the block succeeds it replaces ``dest``.

    Whatever ``dest`` held before is removed only then; if the block fails (or is
    interrupted) the staging folder is deleted and ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield staging
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_atomic(obj, path: str | Path) -> Path:
    """``torch.save(obj, path)``, atomically."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write a text file atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_atomic` (tensors and plain containers only)."""
    return torch.load(path, map_location=map_location, weights_only=True)
