"""What the two command lines share (``python -m course_lib.train`` and ``python -m course_lib.data``).

An argparse parser whose errors are one line and exit status 2, number parsers that name
the allowed range, and the one-line form of an exception. Standard library only: the data
command's ``--help`` loads neither torch nor the training code.
"""

from __future__ import annotations

import argparse
import errno
import math

#: The largest float32: a learning rate or factor beyond it overflows in the optimiser.
FLOAT32_MAX = 3.4028234663852886e38

__all__ = [
    "USAGE_ERROR",
    "INTERRUPTED",
    "Parser",
    "number",
    "seed_number",
    "one_line",
    "write_failure",
]

#: Exit statuses: a usage or data error, and an interruption (128 + SIGINT, as shells report it).
USAGE_ERROR, INTERRUPTED = 2, 130


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"error: {message} (see --help)\n")


#: The largest seed NumPy's generators accept.
SEED_MAX = 2**32 - 1


def seed_number():
    """The parser of ``--seed``: 0 ... 2**32 - 1 (NumPy's range), named in the error."""
    return number(int, 0, SEED_MAX, what=f"a seed in 0 ... {SEED_MAX} (2**32 - 1)")


def number(kind, low=None, high=None, low_open=False, high_open=False, what=""):
    """A parser of ``kind`` (int or float) values in a range; ``what`` names the range."""

    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if isinstance(value, float) and abs(value) > FLOAT32_MAX:
            raise argparse.ArgumentTypeError(
                f"{text} is too large (beyond float32, {FLOAT32_MAX:.3g}): it is not {what}"
            )
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    return parse


def one_line(err: BaseException) -> str:
    """An exception's message on one line; for errors re-raised from a DataLoader worker, the original."""
    text = str(err).strip()
    # "Caught DataError in DataLoader worker ... \n...\nmodule.DataError: msg"
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # "2 files cannot be read:\n a\n b" -> "2 files cannot be read: a; b"
    joined = lines[0] if lines else ""
    for line in lines[1:]:
        joined += (" " if joined.endswith(":") else "; ") + line
    return joined


#: The errors of a disk that cannot take a file: full, read-only, over quota, no permission.
_WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EFBIG}


def write_failure(err: BaseException) -> str | None:
    """ "cannot write PATH: REASON" for an OSError of a full or read-only disk, else None."""
    if not isinstance(err, OSError) or err.errno not in _WRITE_ERRORS:
        return None
    where = err.filename or "a file"
    return f"cannot write {where}: {err.strerror or err}"
