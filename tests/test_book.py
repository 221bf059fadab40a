"""The book builds with `make book` (smoke profile), and a failing cell fails the build."""

import html
import shutil

import nbformat
import pytest
from book_build import ROOT, make_book

pytestmark = pytest.mark.slow


def test_book_builds_with_executed_notebooks(built_book):
    assert (built_book / "index.html").is_file()
    toc = (ROOT / "_toc.yml").read_text()
    pages = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert pages
    for notebook in pages:
        assert f"notebooks/{notebook.stem}" in toc, (
            f"{notebook.name} is not in _toc.yml"
        )
        page = (built_book / "notebooks" / f"{notebook.stem}.html").read_text()
        assert "cell_output" in page, f"{notebook.stem}: no executed output in the page"
        assert "Traceback" not in page
        # a cell whose last line returns matplotlib objects prints their repr under the figure
        assert "<Axes:" not in html.unescape(page), f"{notebook.stem}: stray Axes repr"
        # progress bars, library warnings and native log lines have no place on a printed page
        assert "output stderr" not in page, (
            f"{notebook.stem}: a cell writes to stderr in the book"
        )
    setup = html.unescape((built_book / "notebooks" / "00_setup.html").read_text())
    assert "profile 'smoke'" in setup  # the executed cell printed the active profile


def test_colab_button_links_the_committed_notebook(built_book):
    page = (built_book / "notebooks" / "00_setup.html").read_text()
    assert "colab.research.google.com/github/" in page
    assert "/blob/main/notebooks/00_setup.ipynb" in page


def _scratch_book(folder, intro="# Scratch book\n\nA page.\n"):
    """The course's configuration and bibliography around a one-page book."""
    shutil.copy(ROOT / "_config.yml", folder / "_config.yml")
    (folder / "book").mkdir()
    shutil.copy(ROOT / "book" / "references.bib", folder / "book" / "references.bib")
    # the configuration names the book's own Sphinx extensions (offline MathJax, exercises)
    shutil.copytree(ROOT / "book" / "_ext", folder / "book" / "_ext")
    (folder / "book" / "intro.md").write_text(intro)
    (folder / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")


def test_a_failing_cell_fails_the_build(tmp_path):
    """The safety net itself: Jupyter Book 1 only warns on a failing cell unless configured."""
    _scratch_book(tmp_path)
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Broken"),
        nbformat.v4.new_code_cell("raise RuntimeError('deliberately broken cell')"),
    ]
    nbformat.write(nb, tmp_path / "notebooks" / "broken.ipynb")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/broken\n"
    )
    run = make_book(tmp_path, tmp_path)
    assert run.returncode != 0
    assert "deliberately broken cell" in run.stdout + run.stderr


@pytest.mark.parametrize(
    "broken",
    [
        "See {doc}`chapter_that_does_not_exist`.",  # a page reference
        "See [the notebook](../notebooks/99_missing.ipynb).",  # a link to a local file
        "As shown by {cite:p}`nobody2099`.",  # a citation missing from references.bib
        "See {term}`Undefined term`.",  # a glossary term
    ],
)
def test_a_broken_internal_reference_fails_the_build(tmp_path, broken):
    """Internal links are checked: the build treats warnings as errors and is nitpicky."""
    _scratch_book(tmp_path, intro=f"# Scratch book\n\n{broken}\n")
    run = make_book(tmp_path, tmp_path)
    assert run.returncode != 0, "a broken internal reference must fail the build"
    assert "WARNING" in run.stdout + run.stderr
