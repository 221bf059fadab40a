"""The pairing rule of the course's notebooks, as a function the tests (and CI) call.

Every ``notebooks/NN_name.py`` (jupytext py:percent) has a ``notebooks/NN_name.ipynb`` twin
holding the same cells, and the ``.ipynb`` carries no outputs and no execution counts.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat


def _cells(notebook) -> list[tuple[str, str, tuple[str, ...]]]:
    return [
        (cell.cell_type, cell.source.strip(), tuple(cell.metadata.get("tags", ())))
        for cell in notebook.cells
    ]


def pairing_problems(folder: Path) -> list[str]:
    """Everything wrong with the pairs in ``folder``, one readable line each (empty: all good)."""
    problems = []
    scripts = {p.stem: p for p in folder.glob("[0-9][0-9]_*.py")}
    notebooks = {p.stem: p for p in folder.glob("[0-9][0-9]_*.ipynb")}
    for stem in sorted(scripts.keys() - notebooks.keys()):
        problems.append(
            f"{stem}.py has no .ipynb twin (run `jupytext --sync {scripts[stem]}`)"
        )
    for stem in sorted(notebooks.keys() - scripts.keys()):
        problems.append(
            f"{stem}.ipynb has no .py twin (run `jupytext --set-formats ipynb,py:percent`)"
        )
    for stem in sorted(scripts.keys() & notebooks.keys()):
        ipynb = nbformat.read(notebooks[stem], as_version=4)
        for index, cell in enumerate(ipynb.cells):
            if cell.cell_type != "code":
                continue
            if cell.get("outputs"):
                problems.append(
                    f"{stem}.ipynb cell {index} carries outputs (clear them)"
                )
            if cell.get("execution_count") is not None:
                problems.append(f"{stem}.ipynb cell {index} carries an execution count")
        a, b = _cells(jupytext.read(scripts[stem])), _cells(ipynb)
        if a != b:
            first = next(
                (i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))
            )
            problems.append(
                f"{stem}.py and {stem}.ipynb hold different cells ({len(a)} vs {len(b)}; "
                f"first difference at cell {first}): edit the .py, then `jupytext --sync`"
            )
    return problems
