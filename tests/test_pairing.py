"""Every notebook is a .py/.ipynb pair with the same cells and no outputs (CI's pairing check)."""

import shutil
from pathlib import Path

import nbformat
from pairing import pairing_problems

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_course_notebooks_are_paired_and_clean():
    assert sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")), "no notebooks found"
    assert pairing_problems(NOTEBOOKS) == []


def test_every_notebook_has_the_same_setup_cell():
    cells = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        tagged = [
            c.source for c in nb.cells if "course-setup" in c.metadata.get("tags", [])
        ]
        assert len(tagged) == 1, f"{path.name}: expected one cell tagged course-setup"
        cells[path.name] = tagged[0]
    assert len(set(cells.values())) == 1, "the setup cells differ between notebooks"


def _scratch_copy(tmp_path):
    source = NOTEBOOKS / "00_setup"
    for suffix in (".py", ".ipynb"):
        shutil.copy(source.with_suffix(suffix), tmp_path / f"00_setup{suffix}")
    assert pairing_problems(tmp_path) == []
    return tmp_path / "00_setup.py", tmp_path / "00_setup.ipynb"


def test_check_catches_a_changed_cell(tmp_path):
    py, _ = _scratch_copy(tmp_path)
    py.write_text(py.read_text().replace("seed_everything(0)", "seed_everything(1)", 1))
    assert any("hold different cells" in p for p in pairing_problems(tmp_path))


def test_check_catches_a_missing_twin(tmp_path):
    py, ipynb = _scratch_copy(tmp_path)
    ipynb.unlink()
    assert any("no .ipynb twin" in p for p in pairing_problems(tmp_path))
    py.unlink()
    shutil.copy(NOTEBOOKS / "00_setup.ipynb", ipynb)
    assert any("no .py twin" in p for p in pairing_problems(tmp_path))


def test_check_catches_outputs(tmp_path):
    _, ipynb = _scratch_copy(tmp_path)
    nb = nbformat.read(ipynb, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.execution_count = 3
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nbformat.write(nb, ipynb)
    problems = pairing_problems(tmp_path)
    assert any("carries outputs" in p for p in problems)
    assert any("execution count" in p for p in problems)
