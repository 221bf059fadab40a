"""The layering of course_lib: no import cycles, and each command line loads only what it needs."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from import_graph import cycles, import_graph, layers  # noqa: E402


def test_course_lib_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 30  # the walk found the package
    assert cycles(graph) == []


def test_the_trainer_sits_above_the_pieces_it_trains():
    depth = {m: k for k, names in enumerate(layers(import_graph())) for m in names}
    for lower in ("course_lib.models", "course_lib.data.loaders", "course_lib.runspec"):
        assert depth[lower] < depth["course_lib.train"]
    assert depth["course_lib.train"] < depth["course_lib.cli"]
    assert "course_lib.train" not in import_graph()["course_lib.gradcam"]


def _loaded_by(*argv) -> tuple[int, set]:
    """Run ``python -m ...`` in a fresh interpreter; its exit status and the modules it loaded."""
    probe = (
        "import json, runpy, sys\n"
        f"sys.argv = {list(argv)!r}\n"
        "try:\n"
        "    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
        "except SystemExit as stop:\n"
        "    code = stop.code or 0\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT
    )
    code, modules = json.loads(run.stdout.strip().splitlines()[-1])
    return code, set(modules)


def test_the_data_command_line_loads_no_training_code():
    code, modules = _loaded_by("course_lib.data", "--help")
    assert code == 0
    heavy = {"torch", "course_lib.train", "course_lib.cli", "course_lib.distributed"}
    assert not heavy & modules, heavy & modules


def test_the_training_command_line_runs_through_its_package_main():
    """``python -m course_lib.train`` runs ``train/__main__.py``; the loop's module is only
    imported. (It used to run ``train.py`` as a script, which ``cli`` then imported a
    second time: with no cycle, a module run with ``-m`` is never imported again.)"""
    assert (ROOT / "course_lib" / "train" / "__main__.py").is_file()
    loop = (ROOT / "course_lib" / "train" / "__init__.py").read_text()
    assert 'if __name__ == "__main__"' not in loop
    code, modules = _loaded_by("course_lib.train", "--help")
    assert code == 0 and "course_lib.cli" in modules
