"""Compare the results printed by two builds of the book, notebook by notebook.

    python tools/compare_builds.py BUILD_A BUILD_B   # each a _build/jupyter_execute folder

Every text output of every code cell is compared line by line, after removing what is
expected to differ between two runs of the same book: timings ("(8.1 s)", "in 72 s"), run
folders (their names carry a fingerprint of the settings), progress bars and object
addresses. Prints a table (notebook, result lines, equal or the first difference) and exits
with status 1 when any notebook printed different results. Used for the evidence that two
fresh builds train the same models (CONTRIBUTING.md, "Reproducible runs").
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

import nbformat

_VARIABLE = [
    (re.compile(r"\(\d+(\.\d+)? s\)"), "(<time>)"),
    (re.compile(r"\b\d+(\.\d+)? s\b"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)? (ms|min|seconds)\b"), "<time>"),
    (re.compile(r"runs/\S+"), "<run folder>"),
    (re.compile(r" at 0x[0-9a-f]+"), ""),
]
_SKIPPED = re.compile(
    r"^(epoch \d+/\d+: .*it/s\]|no checkpoint in |reloaded the finished)"
)


def result_lines(path: Path) -> list[str]:
    """The text a notebook printed, with the run-to-run variable parts blanked."""
    lines = []
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            for line in text.splitlines():
                if not line.strip() or _SKIPPED.match(line.strip()):
                    continue
                for pattern, blank in _VARIABLE:
                    line = pattern.sub(blank, line)
                lines.append(line.rstrip())
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: compare_builds.py BUILD_A BUILD_B", file=sys.stderr)
        return 2
    a, b = (Path(p) for p in argv)
    differ = 0
    print("| notebook | result lines | the two builds |")
    print("|---|---|---|")
    for left in sorted(a.rglob("[0-9][0-9]_*.ipynb")):
        right = b / left.relative_to(a)
        one, two = result_lines(left), result_lines(right) if right.exists() else []
        ops = difflib.SequenceMatcher(a=one, b=two, autojunk=False).get_opcodes()
        changed = [op for op in ops if op[0] != "equal"]
        differ += bool(changed)
        if not changed:
            verdict = "equal"
        else:
            gone = sum(i2 - i1 for _, i1, i2, _, _ in changed)
            added = sum(j2 - j1 for _, _, _, j1, j2 in changed)
            _, i1, i2, j1, j2 = changed[0]
            first = f"`{one[i1] if i1 < i2 else ''}` → `{two[j1] if j1 < j2 else ''}`"
            verdict = f"{gone} line(s) only in A, {added} only in B; first: {first}"
        print(f"| {left.stem} | {len(one)} / {len(two)} | {verdict} |")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
