"""Checkpoints that are never half-written (introduced in notebook ``02_vgg16_baseline``).

A checkpoint is written with :func:`course_lib.files.atomic_open`: to a temporary file beside
it, flushed, then renamed over the old one, so a crash leaves the old checkpoint or the new
one, never a truncated file. Loading uses ``weights_only=True``, which refuses to run code
hidden in a pickle, and a file that cannot be read is reported with its name, not with the
unpickler's traceback.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .files import atomic_open, staged_folder, write_text_atomic

__all__ = [
    "atomic_open",
    "staged_folder",
    "save_atomic",
    "load_checkpoint",
    "write_text_atomic",
    "CheckpointError",
]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not a checkpoint at all."""


def save_atomic(obj, path: str | Path, kill_point: str | None = None) -> Path:
    """``torch.save(obj, path)``, atomically (``kill_point``: see :mod:`course_lib.faults`)."""
    with atomic_open(path, "wb", kill_point=kill_point) as f:
        try:
            torch.save(obj, f)
        except RuntimeError as err:  # torch's writer wraps a full disk's OSError
            cause = err.__context__
            if isinstance(cause, OSError):
                raise OSError(cause.errno, cause.strerror, str(path)) from None
            raise
    return Path(path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_atomic` (tensors and plain containers only).

    Raises :class:`CheckpointError` naming the file when it is missing, empty, truncated or
    not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{path} is empty (0 bytes): it is not a usable checkpoint"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, garbage, a pickle with code in it, ...
        text = str(err).strip()
        first = text.splitlines()[0].split(". ")[0] if text else type(err).__name__
        raise CheckpointError(
            f"{path} cannot be read as a checkpoint ({type(err).__name__}: {first}); "
            "it is truncated, corrupt, or not a course checkpoint"
        ) from err
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} holds a {type(state).__name__}, not a checkpoint dictionary"
        )
    return state
