"""Fault injection: a run that kills itself at an exact point (``tests/test_kill_resume.py``).

A test that kills a training run after a sleep kills it too early or too late on a loaded
machine. Instead the test names a point in ``COURSE_KILL_AT`` and the run sends itself
``SIGKILL`` when it gets there — no clean-up runs, as when a laptop loses power or a cloud
machine is preempted. The points the training loop announces:

- ``epoch E step S``: right after the optimiser step ``S`` (from 1) of epoch ``E``;
- ``epoch E writing last.pt``: inside the write of epoch ``E``'s ``last.pt``, when the
  temporary file is complete but has not yet replaced the old checkpoint;
- ``epoch E before metrics.csv``: after epoch ``E``'s ``last.pt`` is in place and before its
  row reaches ``metrics.csv``.

Under ``torchrun``, ``COURSE_KILL_RANK`` names the one process (its ``RANK``) that dies.
Unset (always, outside the tests) a point costs one look-up in ``os.environ``.
"""

from __future__ import annotations

import os
import signal

__all__ = ["KILL_VAR", "KILL_RANK_VAR", "reached"]

KILL_VAR, KILL_RANK_VAR = "COURSE_KILL_AT", "COURSE_KILL_RANK"


def reached(point: str) -> None:
    """Kill this process with ``SIGKILL`` if ``COURSE_KILL_AT`` names ``point``."""
    if os.environ.get(KILL_VAR) == point and os.environ.get(
        KILL_RANK_VAR, os.environ.get("RANK", "0")
    ) == os.environ.get("RANK", "0"):
        os.kill(os.getpid(), signal.SIGKILL)
