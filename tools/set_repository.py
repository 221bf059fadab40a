"""Set where the course is published: ``make repository URL=https://github.com/you/your-fork``.

The published location is one setting, ``repository.url`` in ``_config.yml`` (the book's
launch buttons link there). The notebooks' setup cell needs the same value on Colab, before
anything is installed, so it carries a copy; this script writes the URL to both (and to the
README's Colab link) and re-pairs the notebooks. ``tests/test_setup_cell.py`` checks that
they agree.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_GITHUB = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+$")


def current_url() -> str:
    match = re.search(
        r"^repository:\n  url: (\S+)", (ROOT / "_config.yml").read_text(), flags=re.M
    )
    if match is None:
        raise SystemExit("error: _config.yml has no repository.url")
    return match.group(1)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not _GITHUB.match(argv[0].rstrip("/")):
        print(
            "error: give the fork's GitHub address, e.g. make repository URL=https://github.com/you/fork",
            file=sys.stderr,
        )
        return 2
    new, old = argv[0].rstrip("/"), current_url()
    files = [
        ROOT / "_config.yml",
        ROOT / "README.md",
        *sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")),
    ]
    for path in files:
        path.write_text(path.read_text().replace(old, new))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jupytext",
            "--sync",
            "--quiet",
            *map(str, sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))),
        ],
        check=True,
    )
    print(f"published location: {old} -> {new} (in {len(files)} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
