"""Figures a reader can read in the book: every notebook uses the course style, and no figure is
wider than 10 inches or uses text smaller than course_lib.viz.MIN_FONT_SIZE (see its docstring)."""

import re
from pathlib import Path

import pytest

from course_lib.viz import MIN_FONT_SIZE

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")) + sorted(
    (ROOT / "course_lib").rglob("*.py")
)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_uses_the_course_style(path):
    # setup_notebook() sets it (course_lib.notebook); chapter 00 also calls it by name
    text = path.read_text()
    assert "course_lib.setup_notebook()" in text or "use_course_style()" in text


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_no_small_text_and_no_wide_figures(path):
    text = path.read_text()
    small = [
        float(v)
        for v in re.findall(r"fontsize=(\d+(?:\.\d+)?)", text)
        if float(v) < MIN_FONT_SIZE
    ]
    assert not small, f"font sizes below {MIN_FONT_SIZE} pt: {small}"
    widths = [float(w) for w in re.findall(r"figsize=\((\d+(?:\.\d+)?),", text)]
    assert all(w <= 10 for w in widths), f"figures wider than 10 inches: {widths}"
