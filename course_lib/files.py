"""Files and folders that are never half-written (introduced in notebook ``02_vgg16_baseline``).

A file is written to a temporary file in the same folder, flushed to disk, and renamed over
the old one (:func:`atomic_open`): ``os.replace`` is atomic, so a crash leaves either the old
file or the new one, never a truncated file. A whole folder (a generated or downloaded data
set) is filled in a temporary folder beside its destination and renamed into place only
when the work succeeded (:func:`staged_folder`).

A process killed with ``SIGKILL`` (or a machine that loses power) cannot clean up its
temporary file or folder; their names carry the writer's process id, and the next write to
the same destination removes those whose writer is gone. Only names of the exact form the
course writes (``.last.pt.<pid>-<8 characters>.tmp``, ``.<folder>.partial-<pid>-<8
characters>``) are ever removed: a file of yours such as ``.last.pt.backup`` is never touched.

No torch here: the synthetic-data generator's worker processes use this module and start
in a fraction of a second.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .faults import reached

__all__ = ["atomic_open", "staged_folder", "write_text_atomic"]


def _umask() -> int:
    """The process's umask: read from /proc where the kernel shows it (thread-safe), else set and reset."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: mkstemp's and mkdtemp's random part: 8 characters of [a-z0-9_]
_RANDOM = r"[a-z0-9_]{8}"


def _writer_alive(pid: int) -> bool:
    """Whether process ``pid``, the writer of a temporary, still runs."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove_stale(folder: Path, prefix: str, suffix: str = "") -> None:
    """Delete the temporaries ``{prefix}{pid}-{random}{suffix}`` in ``folder`` whose writer
    has ended; any other name, however similar, is left alone."""
    ours = re.compile(re.escape(prefix) + r"(\d+)-" + _RANDOM + re.escape(suffix) + "$")
    try:
        candidates = [(p, ours.match(p.name)) for p in folder.iterdir()]
    except OSError:
        return
    for path, match in candidates:
        if match is None or _writer_alive(int(match.group(1))):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", kill_point: str | None = None):
    """Open a temporary file beside ``path``; on success it replaces ``path`` atomically.

    ``kill_point`` names the moment between the two for fault injection (:mod:`course_lib.faults`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    _remove_stale(path.parent, prefix, suffix=".tmp")
    fd, tmp = tempfile.mkstemp(
        prefix=f"{prefix}{os.getpid()}-", suffix=".tmp", dir=path.parent
    )
    try:
        # mkstemp makes 0600; a checkpoint is an ordinary file
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if kill_point is not None:
            reached(kill_point)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged_folder(dest: str | Path):
    """Yield an empty folder beside ``dest``; when the block succeeds it replaces ``dest``.

    Whatever ``dest`` held before is removed only then; if the block fails (or is
    interrupted) the staging folder is deleted and ``dest`` is left as it was. Callers decide
    whether ``dest`` may be replaced at all (see ``ensure_synthetic_lesions``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{dest.name}.partial-"
    _remove_stale(dest.parent, prefix)
    staging = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=dest.parent))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        yield staging
        if dest.is_dir():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write a text file atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)
