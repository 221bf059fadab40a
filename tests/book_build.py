"""Building the book from the tests: ``make book`` in the smoke profile into a folder of its own."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# kept apart from a reader's `make book` in _build/html
SMOKE_OUT = ROOT / "_build" / "smoke"
SCREENSHOTS = ROOT / "_build" / "screenshots"


def make_book(src: Path, out: Path) -> subprocess.CompletedProcess:
    """``make book`` in the smoke profile, from ``src`` into ``out``."""
    env = {**os.environ, "COURSE_PROFILE": "smoke"}
    return subprocess.run(
        ["make", "-C", str(ROOT), "book", f"BOOK_SRC={src}", f"BOOK_OUT={out}"],
        env=env,
        capture_output=True,
        text=True,
    )
