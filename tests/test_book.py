"""The book builds with `make book` (smoke profile), and a failing cell fails the build."""

import html
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
SMOKE_OUT = ROOT / "_build" / "smoke"  # kept apart from a reader's `make book` in _build/html


def make_book(src: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COURSE_PROFILE": "smoke"}
    return subprocess.run(
        ["make", "-C", str(ROOT), "book", f"BOOK_SRC={src}", f"BOOK_OUT={out}"],
        env=env, capture_output=True, text=True,
    )


@pytest.fixture(scope="session")
def built_book():
    shutil.rmtree(SMOKE_OUT, ignore_errors=True)
    run = make_book(ROOT, SMOKE_OUT)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return SMOKE_OUT / "_build" / "html"


def test_book_builds_with_executed_notebooks(built_book):
    assert (built_book / "index.html").is_file()
    toc = (ROOT / "_toc.yml").read_text()
    pages = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert pages
    for notebook in pages:
        assert f"notebooks/{notebook.stem}" in toc, f"{notebook.name} is not in _toc.yml"
        page = (built_book / "notebooks" / f"{notebook.stem}.html").read_text()
        assert "cell_output" in page, f"{notebook.stem}: no executed output in the page"
        assert "Traceback" not in page
    setup = html.unescape((built_book / "notebooks" / "00_setup.html").read_text())
    assert "profile 'smoke'" in setup  # the executed cell printed the active profile


def test_colab_button_links_the_committed_notebook(built_book):
    page = (built_book / "notebooks" / "00_setup.html").read_text()
    assert "colab.research.google.com/github/" in page
    assert "/blob/main/notebooks/00_setup.ipynb" in page


def test_a_failing_cell_fails_the_build(tmp_path):
    """The safety net itself: Jupyter Book 1 only warns on a failing cell unless configured."""
    for name in ("_config.yml",):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "book" / "references.bib", tmp_path / "book" / "references.bib")
    (tmp_path / "book" / "intro.md").write_text("# Scratch book\n\nA page.\n")
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Broken"),
                nbformat.v4.new_code_cell("raise RuntimeError('deliberately broken cell')")]
    nbformat.write(nb, tmp_path / "notebooks" / "broken.ipynb")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/broken\n"
    )
    run = make_book(tmp_path, tmp_path)
    assert run.returncode != 0
    assert "deliberately broken cell" in run.stdout + run.stderr
