"""The habits of a maintained project: short functions, and ruff's lint and format passing.

`make test` runs this file with the rest; `ruff check .` and `ruff format --check .` are what
a contributor runs before a commit (CONTRIBUTING.md).
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LONGEST = 80  # lines, signature and docstring included


def _function_lengths():
    for path in sorted((ROOT / "course_lib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                yield name, node.end_lineno - node.lineno + 1


def test_no_function_in_course_lib_is_longer_than_80_lines():
    lengths = dict(_function_lengths())
    assert len(lengths) > 100  # the walk found the library
    too_long = {name: n for name, n in lengths.items() if n > LONGEST}
    assert not too_long, f"split these into named steps: {too_long}"


def test_fit_reads_as_its_steps():
    """The training loop is visible in ``fit`` itself: one ``for epoch`` loop that calls each
    step by name (CONTRIBUTING.md, "Code style", says why this beats a shorter ``fit``)."""
    tree = ast.parse((ROOT / "course_lib" / "train" / "__init__.py").read_text())
    (fit,) = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "fit"
    ]
    assert fit.end_lineno - fit.lineno + 1 <= LONGEST
    (loop,) = [
        n
        for n in ast.walk(fit)
        if isinstance(n, ast.For) and getattr(n.target, "id", "") == "epoch"
    ]
    called = {
        n.func.id
        for n in ast.walk(loop)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    steps = {"train_one_epoch", "_validate", "_record_epoch", "save_epoch"}
    assert steps <= called, f"fit's epoch loop no longer calls {steps - called}"


def _ruff(*args):
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which(
        "ruff"
    )
    if ruff is None:
        pytest.fail(
            "ruff is missing: it is installed by the project's test extra (make setup)"
        )
    return subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint_passes():
    run = _ruff("check", "--no-cache", ".")
    assert run.returncode == 0, run.stdout + run.stderr


def test_ruff_format_leaves_every_file_as_it_is():
    run = _ruff("format", "--check", "--no-cache", ".")
    assert run.returncode == 0, run.stdout + run.stderr
